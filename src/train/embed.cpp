#include "train/embed.h"

#include <torch/torch.h>

#include <filesystem>

#include "core/log.h"
#include "data/dataset.h"
#include "io/checkpoint.h"
#include "io/tensor_files.h"
#include "train/backbone.h"
#include "train/knn.h"
#include "train/runtime.h"

namespace moco::train {

namespace fs = std::filesystem;

namespace {

// One line per row: where the image came from, its label, whether readable.
std::string listing(const data::ImageSet& set, const torch::Tensor& readable) {
  std::string out;
  for (int64_t i = 0; i < set.size(); ++i) {
    out += set.on_disk() ? set.files[i] : set.description + "#" + std::to_string(i);
    out += '\t';
    out += std::to_string(set.labelled() ? set.labels[i].item<int64_t>() : -1);
    if (!readable[i].item<bool>()) out += "\tunreadable";
    out += '\n';
  }
  return out;
}

}  // namespace

int64_t run_embed(const EmbedOptions& o) {
  validate_flags(o);
  TORCH_CHECK(!o.data().empty(), "expected DATA, the dataset to embed");
  TORCH_CHECK(!o.pretrained().empty(), "expected --pretrained CKPT");
  use_threads(o.threads());
  const auto device = resolve_device(o.device());
  auto splits = data::open_dataset(o.data(), open_options(o));
  const data::ImageSet& set = data::split_named(splits, o.split(), o.data());
  data::require_indexed(splits.train, "embed");
  const auto b = load_backbone(o.pretrained());
  check_channels(b, set, o.data());
  auto net = o.head() ? make_encoder(b) : make_classifier(b, 1);
  net->to(device);
  net->eval();
  // Normalised as the pretraining normalised this dataset.
  const auto transform = data::eval_transform(
      o.split() == "train" ? splits.train : splits.labelled_train(),
      evaluation_crop(&b, set, o.crop_size(), "embed"));
  const auto f = extract_features(
      [&](const torch::Tensor& x) {
        return o.head() ? net->forward(x) : net->forward_features(x);
      },
      set, torch::Tensor(), transform,
      FeatureOptions()
          .batch(o.batch_size())
          .workers(resolve_workers(o.workers()))
          .device(device)
          .l2_normalise(false));
  io::write_npy(o.output(), f.values);
  std::string list_path = o.output();
  if (fs::path(list_path).extension() == ".npy") {
    list_path = list_path.substr(0, list_path.size() - 4);
  }
  list_path += ".txt";
  io::atomic_write(list_path, listing(set, f.readable));
  log_info("embed: ", f.values.size(0), " x ", f.values.size(1), " features of ",
           set.description, " -> ", o.output(), " (+ ", list_path, ")");
  return f.values.size(0);
}

}  // namespace moco::train
