#include "train/export.h"

#include <torch/torch.h>

#include "io/checkpoint.h"
#include "io/tensor_files.h"
#include "train/backbone.h"

namespace moco::train {

void export_backbone(const ExportOptions& o) {
  const std::string& checkpoint = o.checkpoint();
  const std::string& format = o.format();
  const std::string& output = o.file();
  validate_flags(o);
  TORCH_CHECK(format == "torchvision" || format == "safetensors",
              "expected --format torchvision or safetensors, got '", format,
              "'");
  TORCH_CHECK(!output.empty(), "expected an output path");
  const auto b = load_backbone(checkpoint);
  // In the model's own order (conv1, bn1, layer1..4), as torchvision's
  // state_dict() lists them.
  auto net = make_classifier(b, 1);
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (const auto& p : net->named_parameters()) {
    if (p.key().rfind("fc.", 0) != 0) tensors.emplace_back(p.key(), p.value().detach());
  }
  for (const auto& p : net->named_buffers()) {
    if (p.key().rfind("fc.", 0) != 0) tensors.emplace_back(p.key(), p.value());
  }
  if (format == "safetensors") {
    io::write_safetensors(output, tensors,
                          {{"format", "pt"},
                           {"arch", b.options.arch()},
                           {"source", checkpoint}});
    return;
  }
  c10::impl::GenericDict sd(c10::StringType::get(), c10::TensorType::get());
  for (const auto& [k, v] : tensors) sd.insert(k, v.contiguous());
  io::save_pickle(output, sd);
}

}  // namespace moco::train
