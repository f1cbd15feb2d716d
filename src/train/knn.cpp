#include "train/knn.h"

#include <torch/torch.h>

#include <cstdio>

#include <fmt/format.h>

#include "core/log.h"
#include "data/dataset.h"
#include "train/backbone.h"
#include "train/classify.h"
#include "train/options.h"
#include "train/runtime.h"

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
                       const KnnOptions& options) {
  const int64_t k = options.k(), batch = options.batch();
  const double t = options.t();
  TORCH_CHECK(k > 0, "expected --knn-k > 0, got ", k);
  TORCH_CHECK(t > 0, "expected --knn-t > 0, got ", t);
  const auto t0 = Clock::now();
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
  r.seconds = seconds_since(t0);
  return r;
}

Features extract_features(const Encoder& encode, const data::ImageSet& set,
                          const torch::Tensor& indices,
                          const data::EvalTransform& transform,
                          const FeatureOptions& options) {
  torch::NoGradGuard no_grad;
  auto idx = indices.defined() ? indices : torch::arange(set.size());
  std::vector<torch::Tensor> out, ok;
  data::EvalBatches batches(set, idx, transform, options.batch(), options.workers());
  while (auto b = batches.next()) {
    auto f = encode(b->images.to(options.device())).to(torch::kFloat32);
    if (options.l2_normalise()) f = F::normalize(f, F::NormalizeFuncOptions().dim(1));
    out.push_back(f.cpu().masked_fill_(b->readable.logical_not().unsqueeze(1), 0));
    ok.push_back(b->readable);
  }
  return {torch::cat(out), torch::cat(ok)};
}

KnnResult knn_score(const Encoder& encode, const data::ImageSet& bank_set,
                    const data::ImageSet& test_set,
                    const data::EvalTransform& transform,
                    const KnnOptions& o, const torch::Device& device,
                    KnnFeatures* kept) {
  auto bank_idx = data::subset_indices(bank_set.size(), o.bank());
  auto test_idx = data::subset_indices(test_set.size(), o.test());
  const auto fo = FeatureOptions().batch(o.batch()).workers(o.workers()).device(device);
  const auto bank = extract_features(encode, bank_set, bank_idx, transform, fo);
  const auto test = extract_features(encode, test_set, test_idx, transform, fo);
  // Unreadable image files (warned about) are left out of both.
  auto bank_labels =
      bank_set.labels.index_select(0, bank_idx).index({bank.readable});
  auto test_labels =
      test_set.labels.index_select(0, test_idx).index({test.readable});
  const int64_t classes = std::max(bank_set.num_classes, test_set.num_classes);
  auto bank_values = bank.values.index({bank.readable});
  auto test_values = test.values.index({test.readable});
  if (kept != nullptr) {
    *kept = {bank_values, test_values, bank_idx.index({bank.readable}),
             test_idx.index({test.readable}), bank_labels, test_labels};
  }
  return knn_evaluate(bank_values, bank_labels, test_values, test_labels, classes,
                      KnnOptions().k(std::min<int64_t>(o.k(), bank_labels.size(0))).t(o.t()));
}

torch::Tensor pixel_features(const torch::Tensor& x) {
  return x.reshape({x.size(0), -1});
}

KnnResult run_knn(const KnnCommandOptions& o) {
  validate_flags(o);
  TORCH_CHECK(!o.pretrained().empty(), "expected --pretrained CKPT");
  use_threads(o.threads());
  const auto device = resolve_device(o.device());
  const auto splits = open_labelled(o.data(), open_options(o), o.val_split(), o.seed(), "knn");
  const auto& bank_set = splits.labelled_train();
  const auto& test_set = *splits.test;
  const auto b = load_backbone(o.pretrained());
  check_channels(b, bank_set, o.data());
  const int64_t crop = evaluation_crop(&b, bank_set, o.crop_size(), "knn");
  auto net = make_classifier(b, 1);
  net->to(device);
  net->eval();
  const auto t0 = Clock::now();
  auto r = knn_score([&](const torch::Tensor& x) { return net->forward_features(x); },
                     bank_set, test_set, data::eval_transform(bank_set, crop),
                     KnnOptions()
                         .k(o.knn_k())
                         .t(o.knn_t())
                         .bank(o.knn_bank())
                         .test(o.knn_test())
                         .batch(o.batch_size())
                         .workers(resolve_workers(o.workers())),
                     device);
  log_info(fmt::format(
      "knn: top-1 {:.2f}% top-5 {:.2f}% (k={}, t={}, bank {} of {}, test {} "
      "of {}, {:.1f}s)",
      r.top1, r.top5, o.knn_k(), o.knn_t(), r.bank_size, bank_set.description,
      r.test_size, test_set.description, seconds_since(t0)));
  r.crop = bank_set.on_disk() ? crop : 0;
  return r;
}

int knn_command(const KnnCommandOptions& options, const Invocation&) {
  const auto r = run_knn(options);
  std::printf("knn top-1 %.2f%% top-5 %.2f%% (bank %lld, test %lld)\n", r.top1, r.top5,
              static_cast<long long>(r.bank_size), static_cast<long long>(r.test_size));
  return 0;
}

}  // namespace moco::train
