#include "train/export.h"

#include <filesystem>

#include <torch/torch.h>

#include <fmt/format.h>

#include "core/log.h"
#include "core/text.h"
#include "io/checkpoint.h"
#include "io/tensor_files.h"
#include "train/backbone.h"

namespace moco::train {

namespace fs = std::filesystem;

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  if (s.size() < suffix.size()) return false;
  return to_lower(s.substr(s.size() - suffix.size())) == suffix;
}

void replace_all(std::string& s, const std::string& from, const std::string& to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) {
    s.replace(at, from.size(), to);
  }
}

}  // namespace

std::string export_format(const std::string& format, const std::string& output) {
  if (!format.empty()) return format;
  if (ends_with(output, ".pth") || ends_with(output, ".pt") ||
      ends_with(output, ".pth.tar")) {
    return "torchvision";
  }
  if (ends_with(output, ".pkl")) return "detectron2";
  if (ends_with(output, ".safetensors")) return "safetensors";
  TORCH_CHECK(false, "cannot tell the format of ", output,
              " from its extension: expected .pth or .pt (torchvision), .pkl "
              "(detectron2) or .safetensors, or --format torchvision | "
              "detectron2 | safetensors");
  return "";
}

std::string detectron2_name(const std::string& name) {
  // The mapping of MoCo's convert-pretrain-to-detectron2.py.
  std::string k = name;
  if (k.find("layer") == std::string::npos) k = "stem." + k;
  for (int t = 1; t <= 4; ++t) {
    replace_all(k, "layer" + std::to_string(t), "res" + std::to_string(t + 1));
  }
  for (int t = 1; t <= 3; ++t) {
    replace_all(k, "bn" + std::to_string(t), "conv" + std::to_string(t) + ".norm");
  }
  replace_all(k, "downsample.0", "shortcut");
  replace_all(k, "downsample.1", "shortcut.norm");
  return k;
}

std::string export_backbone(const ExportOptions& o) {
  const std::string& checkpoint = o.checkpoint();
  const std::string& output = o.file();
  validate_flags(o);
  TORCH_CHECK(!output.empty(), "expected an output path");
  // An export is backbone weights only: written over its own checkpoint
  // (or any file kept) it would destroy what it came from.
  std::error_code ec;
  TORCH_CHECK(!fs::equivalent(checkpoint, output, ec), "moco export: OUTPUT ", output,
              " is the checkpoint it exports (", checkpoint,
              "); writing there would replace the checkpoint with its backbone");
  TORCH_CHECK(o.force() || !fs::exists(fs::symlink_status(output)), "moco export: ", output,
              " exists; pass --force to replace it, or choose another OUTPUT");
  const std::string format = export_format(o.format(), output);
  const auto b = load_backbone(checkpoint);
  // A classifier's fc (lincls, finetune, a torchvision state dict) is part
  // of the model; a pretraining checkpoint's fc is the projection head,
  // which no downstream model has.
  const bool keep_fc = b.kind != "MoCo pretraining checkpoint" &&
                       b.head.count("fc.weight") && b.head.count("fc.bias") &&
                       b.head.size() == 2 && format != "detectron2";
  // In the model's own order (conv1, bn1, layer1..4, fc), as torchvision's
  // state_dict() lists them.
  auto net = keep_fc ? make_encoder(b) : make_classifier(b, 1);
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (const auto& p : net->named_parameters()) {
    if (keep_fc || p.key().rfind("fc.", 0) != 0) {
      tensors.emplace_back(p.key(), p.value().detach());
    }
  }
  for (const auto& p : net->named_buffers()) {
    if (keep_fc || p.key().rfind("fc.", 0) != 0) tensors.emplace_back(p.key(), p.value());
  }
  if (format == "safetensors") {
    io::write_safetensors(output, tensors,
                          {{"format", "pt"},
                           {"arch", b.options.arch()},
                           {"source", checkpoint}});
  } else if (format == "detectron2") {
    std::vector<std::pair<std::string, torch::Tensor>> renamed;
    for (const auto& [k, v] : tensors) {
      // detectron2's FrozenBatchNorm2d has no num_batches_tracked; it would
      // only be reported as an unused key.
      if (ends_with(k, "num_batches_tracked")) continue;
      renamed.emplace_back(detectron2_name(k), v);
    }
    io::write_detectron2_pickle(output, renamed, "moco");
  } else {
    c10::impl::GenericDict sd(c10::StringType::get(), c10::TensorType::get());
    for (const auto& [k, v] : tensors) sd.insert(k, v.contiguous());
    io::save_pickle(output, sd);
  }
  log_info("exported ", b.kind, " ", checkpoint, " (", b.options.arch(),
           keep_fc ? fmt::format(", with its {}-class fc", b.head.at("fc.weight").size(0))
                   : std::string(", backbone only"),
           ") to ", output, " as ", format);
  return format;
}

}  // namespace moco::train
