#include "train/knn.h"

#include <torch/torch.h>

#include <chrono>

#include "data/dataset.h"
#include "data/loader.h"

namespace moco::train {

namespace F = torch::nn::functional;

torch::Tensor knn_predict(const torch::Tensor& features,
                          const torch::Tensor& bank,
                          const torch::Tensor& bank_labels, int64_t classes,
                          int64_t k, double t) {
  const int64_t kk = std::min<int64_t>(k, bank.size(1));
  auto sim = features.mm(bank);
  auto [sim_weight, sim_indices] = sim.topk(kk, -1);
  auto sim_labels = bank_labels.index({sim_indices});  // B x k
  sim_weight = (sim_weight / t).exp();
  auto scores = torch::zeros({features.size(0), classes}, features.options());
  scores.scatter_add_(1, sim_labels, sim_weight);
  return scores;
}

KnnResult knn_evaluate(const torch::Tensor& bank_features,
                       const torch::Tensor& bank_labels,
                       const torch::Tensor& test_features,
                       const torch::Tensor& test_labels, int64_t classes,
                       int64_t k, double t, int64_t batch) {
  TORCH_CHECK(k > 0, "expected --knn-k > 0, got ", k);
  TORCH_CHECK(t > 0, "expected --knn-t > 0, got ", t);
  const auto t0 = std::chrono::steady_clock::now();
  torch::NoGradGuard no_grad;
  auto bank = bank_features.t().contiguous();
  int64_t c1 = 0, c5 = 0;
  const int64_t n = test_features.size(0);
  for (int64_t i = 0; i < n; i += batch) {
    const int64_t e = std::min(n, i + batch);
    auto scores = knn_predict(test_features.slice(0, i, e), bank, bank_labels,
                              classes, k, t);
    auto pred = std::get<1>(scores.topk(std::min<int64_t>(5, classes), 1));
    auto correct = pred.eq(test_labels.slice(0, i, e).view({-1, 1}));
    c1 += correct.slice(1, 0, 1).sum().item<int64_t>();
    c5 += correct.any(1).sum().item<int64_t>();
  }
  KnnResult r;
  r.top1 = 100.0 * c1 / n;
  r.top5 = 100.0 * c5 / n;
  r.bank_size = bank_features.size(0);
  r.test_size = n;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                            t0)
                  .count();
  return r;
}

torch::Tensor normalize_images(const torch::Tensor& u8,
                               const std::vector<double>& mean,
                               const std::vector<double>& std) {
  const int64_t c = u8.size(1);
  auto m = torch::tensor(mean).view({1, c, 1, 1}).to(torch::kFloat32);
  auto s = torch::tensor(std).view({1, c, 1, 1}).to(torch::kFloat32);
  return u8.to(torch::kFloat32).div_(255.0).sub_(m).div_(s);
}

torch::Tensor extract_features(
    const std::function<torch::Tensor(const torch::Tensor&)>& encode,
    const data::ImageSet& set, const torch::Tensor& indices,
    const std::vector<double>& mean, const std::vector<double>& std,
    int64_t batch, const torch::Device& device, int64_t crop_size,
    torch::Tensor* readable, bool l2_normalise) {
  torch::NoGradGuard no_grad;
  auto idx = indices.defined() ? indices : torch::arange(set.size());
  const int64_t n = idx.size(0);
  std::vector<torch::Tensor> out, ok;
  for (int64_t i = 0; i < n; i += batch) {
    torch::Tensor batch_ok;
    // Image files: Resize(crop * 256/224) + CenterCrop(crop), as the
    // official evaluation transform.
    auto images = data::load_eval_images(
        set, idx.slice(0, i, std::min(n, i + batch)), crop_size * 256 / 224,
        crop_size, readable ? &batch_ok : nullptr);
    if (readable) ok.push_back(batch_ok);
    auto x = normalize_images(images, mean, std);
    auto f = encode(x.to(device)).to(torch::kFloat32);
    if (l2_normalise) f = F::normalize(f, F::NormalizeFuncOptions().dim(1));
    out.push_back(f.cpu());
    if (readable) out.back().masked_fill_(batch_ok.logical_not().unsqueeze(1), 0);
  }
  if (readable) *readable = torch::cat(ok);
  return torch::cat(out);
}

KnnResult knn_score(
    const std::function<torch::Tensor(const torch::Tensor&)>& encode,
    const data::ImageSet& bank_set, const data::ImageSet& test_set,
    int64_t bank_count, int64_t test_count, const std::vector<double>& mean,
    const std::vector<double>& std, int64_t batch, const torch::Device& device,
    int64_t crop_size, int64_t k, double t) {
  auto bank_idx = subset_indices(bank_set.size(), bank_count);
  auto test_idx = subset_indices(test_set.size(), test_count);
  torch::Tensor bank_ok, test_ok;
  auto bank = extract_features(encode, bank_set, bank_idx, mean, std, batch,
                               device, crop_size, &bank_ok);
  auto test = extract_features(encode, test_set, test_idx, mean, std, batch,
                               device, crop_size, &test_ok);
  // Unreadable image files (warned about) are left out of both.
  auto bank_labels = bank_set.labels.index_select(0, bank_idx).index({bank_ok});
  auto test_labels = test_set.labels.index_select(0, test_idx).index({test_ok});
  const int64_t classes = std::max(bank_set.num_classes, test_set.num_classes);
  return knn_evaluate(bank.index({bank_ok}), bank_labels, test.index({test_ok}),
                      test_labels, classes,
                      std::min<int64_t>(k, bank_labels.size(0)), t);
}

torch::Tensor subset_indices(int64_t n, int64_t count) {
  if (count <= 0 || count >= n) return torch::arange(n);
  return torch::linspace(0, n - 1, count).floor().to(torch::kInt64);
}

}  // namespace moco::train
