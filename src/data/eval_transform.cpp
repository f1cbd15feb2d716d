#include "data/eval_transform.h"

#include "data/image_decode.h"

#include <torch/torch.h>

#include "data/dataset.h"
#include "data/loader.h"

namespace moco::data {

bool is_small(const ImageSet& set) {
  return !set.on_disk() && set.height() <= 64 && set.width() <= 64;
}

int64_t typical_image_side(const ImageSet& set, int64_t samples) {
  if (!set.on_disk()) return std::min(set.height(), set.width());
  std::vector<int64_t> sides;
  const auto idx = subset_indices(set.size(), samples);
  for (int64_t i = 0; i < idx.size(0); ++i) {
    const auto& path = set.files[static_cast<size_t>(idx[i].item<int64_t>())];
    try {
      const auto info = read_image_info(read_file(path), path);
      sides.push_back(std::min(info.height, info.width));
    } catch (const std::exception&) {
      continue;  // the loader reports unreadable files
    }
  }
  if (sides.empty()) return 0;
  std::nth_element(sides.begin(), sides.begin() + sides.size() / 2, sides.end());
  return sides[sides.size() / 2];
}

std::pair<std::vector<double>, std::vector<double>> normalization(
    const ImageSet& set) {
  if (is_small(set)) {
    auto idx = subset_indices(set.size(), 10000);
    auto x = set.images.index_select(0, idx).to(torch::kFloat64).div_(255.0);
    auto mean = x.mean({0, 2, 3});
    auto std = x.std({0, 2, 3});
    return {std::vector<double>(mean.data_ptr<double>(),
                                mean.data_ptr<double>() + mean.numel()),
            std::vector<double>(std.data_ptr<double>(),
                                std.data_ptr<double>() + std.numel())};
  }
  if (set.channels() == 1) return {{0.449}, {0.226}};
  return {{0.485, 0.456, 0.406}, {0.229, 0.224, 0.225}};
}

torch::Tensor normalize_images(const torch::Tensor& u8,
                               const std::vector<double>& mean,
                               const std::vector<double>& std) {
  const int64_t c = u8.size(1);
  auto m = torch::tensor(mean).view({1, c, 1, 1}).to(torch::kFloat32);
  auto s = torch::tensor(std).view({1, c, 1, 1}).to(torch::kFloat32);
  return u8.to(torch::kFloat32).div_(255.0).sub_(m).div_(s);
}

torch::Tensor subset_indices(int64_t n, int64_t count) {
  if (count <= 0 || count >= n) return torch::arange(n);
  return torch::linspace(0, n - 1, count).floor().to(torch::kInt64);
}

torch::Tensor EvalTransform::load(const ImageSet& set,
                                  const torch::Tensor& indices,
                                  torch::Tensor* readable) const {
  return normalize_images(
      load_eval_images(set, indices, crop * 256 / 224, crop, readable), mean,
      std);
}

int64_t eval_crop(const ImageSet& set) {
  return set.on_disk() ? 224 : set.height();
}

EvalTransform eval_transform(const ImageSet& train, int64_t crop) {
  EvalTransform t;
  t.crop = crop > 0 ? crop : 224;
  std::tie(t.mean, t.std) = normalization(train);
  return t;
}

}  // namespace moco::data
