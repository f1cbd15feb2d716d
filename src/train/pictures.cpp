#include "train/pictures.h"

#include <torch/torch.h>

#include <filesystem>

#include "data/dataset.h"
#include "data/image_decode.h"
#include "io/checkpoint.h"

namespace moco::train {

namespace F = torch::nn::functional;
namespace fs = std::filesystem;

namespace {

constexpr int64_t kFrame = 3, kGap = 4, kQueryGap = 16;

// Small images are enlarged by a whole factor (nearest: their pixels stay
// visible as pixels), large ones reduced by area averaging.
int64_t tile_side(int64_t side) {
  if (side < 64) return side * ((64 + side - 1) / side);
  return std::min<int64_t>(side, 128);
}

// The images as the network saw them, un-normalised: uint8 N x 3 x T x T.
torch::Tensor tiles(const data::ImageSet& set, const torch::Tensor& indices,
                    const data::EvalTransform& transform, int64_t* tile) {
  torch::Tensor readable;
  auto x = transform.load(set, indices, &readable);
  const int64_t c = x.size(1);
  auto opts = torch::TensorOptions().dtype(x.dtype());
  auto mean = torch::tensor(transform.mean, opts).view({1, c, 1, 1});
  auto std = torch::tensor(transform.std, opts).view({1, c, 1, 1});
  x = (x * std + mean).clamp(0, 1);
  if (c == 1) x = x.expand({-1, 3, -1, -1});
  const int64_t side = x.size(2);
  *tile = tile_side(side);
  if (*tile > side) {
    x = F::interpolate(x, F::InterpolateFuncOptions()
                              .size(std::vector<int64_t>{*tile, *tile})
                              .mode(torch::kNearest));
  } else if (*tile < side) {
    x = F::interpolate(x, F::InterpolateFuncOptions()
                              .size(std::vector<int64_t>{*tile, *tile})
                              .mode(torch::kArea));
  }
  return x.mul(255).round().to(torch::kUInt8);
}

void place(torch::Tensor& grid, const torch::Tensor& tile, int64_t y, int64_t x,
           const uint8_t* frame) {
  const int64_t t = tile.size(1);
  auto box = grid.slice(0, y, y + t + 2 * kFrame).slice(1, x, x + t + 2 * kFrame);
  for (int64_t ch = 0; ch < 3; ++ch) box.select(2, ch).fill_(frame[ch]);
  box.slice(0, kFrame, kFrame + t).slice(1, kFrame, kFrame + t).copy_(tile.permute({1, 2, 0}));
}

}  // namespace

torch::Tensor neighbour_grid(const data::ImageSet& bank_set,
                             const data::ImageSet& test_set,
                             const data::EvalTransform& transform,
                             const KnnFeatures& f, int64_t queries,
                             int64_t neighbours) {
  torch::NoGradGuard no_grad;
  TORCH_CHECK(f.test.defined() && f.test.size(0) > 0 && f.bank.size(0) > 0,
              "no features to find neighbours with");
  const auto rows = data::subset_indices(f.test.size(0), queries);
  const int64_t q = rows.size(0);
  const int64_t k = std::min<int64_t>(neighbours, f.bank.size(0));
  const auto nearest = std::get<1>(f.test.index_select(0, rows).mm(f.bank.t()).topk(k, 1));
  int64_t tile = 0;
  const auto query_tiles =
      tiles(test_set, f.test_index.index_select(0, rows), transform, &tile);
  const auto bank_tiles =
      tiles(bank_set, f.bank_index.index({nearest.reshape(-1)}), transform, &tile);
  const int64_t box = tile + 2 * kFrame;
  const int64_t height = q * box + (q - 1) * kGap;
  const int64_t width = box + kQueryGap + k * box + (k - 1) * kGap;
  auto grid = torch::full({height, width, 3}, 255, torch::kUInt8);
  for (int64_t r = 0; r < q; ++r) {
    const int64_t y = r * (box + kGap);
    place(grid, query_tiles[r], y, 0, kQueryFrame);
    const int64_t label = f.test_labels[rows[r]].item<int64_t>();
    for (int64_t j = 0; j < k; ++j) {
      const int64_t n = nearest[r][j].item<int64_t>();
      const bool same = f.bank_labels[n].item<int64_t>() == label;
      place(grid, bank_tiles[r * k + j], y, box + kQueryGap + j * (box + kGap),
            same ? kSameClass : kOtherClass);
    }
  }
  return grid.contiguous();
}

nlohmann::json embedding_2d(const torch::Tensor& features,
                            const torch::Tensor& labels,
                            const std::vector<std::string>& class_names,
                            int64_t num_classes, int64_t max_points) {
  torch::NoGradGuard no_grad;
  TORCH_CHECK(features.dim() == 2 && features.size(0) >= 3,
              "expected at least 3 feature rows for a 2-D embedding, got ",
              features.sizes());
  const auto rows = data::subset_indices(features.size(0), max_points);
  auto x = features.index_select(0, rows).to(torch::kFloat64);
  x = x - x.mean(0, true);
  // Principal axes from the D x D covariance (D is at most 2048 here, the
  // rows up to max_points): eigh is exact and cheap at this size.
  auto cov = x.t().mm(x) / static_cast<double>(x.size(0) - 1);
  auto [values, vectors] = torch::linalg_eigh(cov, "L");  // ascending
  const int64_t d = values.size(0);
  auto axes = vectors.slice(1, std::max<int64_t>(d - 2, 0), d).flip({1});
  // A fixed sign per axis (largest coefficient positive): the same
  // features give the same picture.
  auto big = std::get<1>(axes.abs().max(0));
  axes = axes * axes.gather(0, big.unsqueeze(0)).sign();
  auto xy = x.mm(axes);
  const double total = values.clamp_min(0).sum().item<double>();
  nlohmann::json out;
  out["method"] = "PCA";
  auto top = values.flip({0}).slice(0, 0, std::min<int64_t>(2, d));
  out["explained_variance"] = nlohmann::json::array();
  for (int64_t i = 0; i < top.size(0); ++i) {
    out["explained_variance"].push_back(total > 0 ? top[i].item<double>() / total : 0.0);
  }
  out["classes"] = nlohmann::json::array();
  for (int64_t c = 0; c < num_classes; ++c) {
    out["classes"].push_back(c < static_cast<int64_t>(class_names.size())
                                 ? class_names[static_cast<size_t>(c)]
                                 : "class " + std::to_string(c));
  }
  auto l = labels.index_select(0, rows);
  auto pts = nlohmann::json::array();
  for (int64_t i = 0; i < xy.size(0); ++i) {
    const double px = xy[i][0].item<double>();
    const double py = xy.size(1) > 1 ? xy[i][1].item<double>() : 0.0;
    pts.push_back({std::round(px * 1e4) / 1e4, std::round(py * 1e4) / 1e4,
                   l[i].item<int64_t>()});
  }
  out["points"] = std::move(pts);
  return out;
}

std::vector<std::string> write_run_pictures(const std::string& output,
                                            const data::ImageSet& bank_set,
                                            const data::ImageSet& test_set,
                                            const data::EvalTransform& transform,
                                            const KnnFeatures& f) {
  std::vector<std::string> written;
  const auto grid_path = (fs::path(output) / "neighbours.png").string();
  data::write_png(grid_path, neighbour_grid(bank_set, test_set, transform, f));
  written.push_back(grid_path);
  if (f.test.size(0) >= 3) {
    const auto e = embedding_2d(f.test, f.test_labels, test_set.classes,
                                std::max(bank_set.num_classes, test_set.num_classes));
    const auto path = (fs::path(output) / "embedding.json").string();
    io::atomic_write(path, e.dump());
    written.push_back(path);
  }
  return written;
}

}  // namespace moco::train
