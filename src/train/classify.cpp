#include "train/classify.h"

#include <torch/torch.h>

#include "data/augment.h"
#include "data/dataset.h"
#include "models/moco.h"
#include "train/amp.h"

namespace moco::train {

Accuracy evaluate_classifier(models::ResNet& net, const data::ImageSet& set,
                             const data::EvalTransform& transform,
                             int64_t batch, const torch::Device& device,
                             const std::string& amp) {
  torch::NoGradGuard no_grad;
  net->eval();
  Amp precision(amp, device);
  const int64_t n = set.size();
  double c1 = 0, c5 = 0;
  for (int64_t i = 0; i < n; i += batch) {
    auto idx = torch::arange(i, std::min(n, i + batch));
    torch::Tensor logits;
    {
      auto guard = precision.autocast();
      logits = net->forward(transform.load(set, idx).to(device));
    }
    auto acc = models::topk_accuracy(logits.to(torch::kFloat).cpu(),
                                     set.labels.index_select(0, idx), {1, 5});
    c1 += acc[0] * static_cast<double>(idx.size(0)) / 100.0;
    c5 += acc[1] * static_cast<double>(idx.size(0)) / 100.0;
  }
  return {100.0 * c1 / static_cast<double>(n), 100.0 * c5 / static_cast<double>(n)};
}

std::unique_ptr<data::TwoViewLoader> classification_loader(
    const data::ImageSet& train_set, const data::EvalTransform& t,
    int64_t batch, int64_t workers, int64_t seed, const torch::Device& device) {
  auto augment = data::AugmentOptions()
                     .size(t.crop)
                     .scale_min(0.08)
                     .jitter_p(0)
                     .grayscale_p(0)
                     .blur_p(0)
                     .mean(t.mean)
                     .std(t.std);
  return std::make_unique<data::TwoViewLoader>(
      std::make_shared<data::ImageSet>(train_set), augment,
      data::LoaderOptions()
          .batch_size(std::min(batch, train_set.size()))
          .workers(workers)
          .seed(static_cast<uint64_t>(seed))
          .views(1)
          .drop_last(false)
          .pin_memory(device.is_cuda()));
}

}  // namespace moco::train
