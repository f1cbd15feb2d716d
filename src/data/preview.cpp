#include "data/preview.h"

#include <torch/torch.h>

#include "data/dataset.h"
#include "data/eval_transform.h"
#include "data/loader.h"
#include "data/subsets.h"

namespace moco::data {

torch::Tensor augmentation_grid(const ImageSet& set, AugmentOptions augment,
                                int64_t images, uint64_t seed) {
  TORCH_CHECK(images > 0, "expected --images > 0, got ", images);
  TORCH_CHECK(set.size() > 0, "no images in ", set.description);
  const auto idx = subset_indices(set.size(), images);
  std::vector<int64_t> chosen(idx.data_ptr<int64_t>(), idx.data_ptr<int64_t>() + idx.numel());
  // Views in [0, 1]: the recipe without its normalisation.
  const int64_t c = set.channels();
  augment.mean(std::vector<double>(static_cast<size_t>(c), 0.0))
      .std(std::vector<double>(static_cast<size_t>(c), 1.0));
  TwoViewLoader loader(std::make_shared<ImageSet>(select(set, chosen)), augment,
                       LoaderOptions()
                           .batch_size(static_cast<int64_t>(chosen.size()))
                           .workers(0)
                           .seed(seed)
                           .drop_last(false));
  loader.start_epoch(0);
  const auto batch = loader.next();
  TORCH_INTERNAL_ASSERT(batch.has_value());
  const int64_t n = batch->view_q.size(0), s = augment.size(), g = kGridGap;
  auto grid = torch::full({2 * s + g, n * s + (n - 1) * g, c}, 255, torch::kUInt8);
  int64_t row = 0;
  for (const auto& views : {batch->view_q, batch->view_k}) {
    const auto u8 = views.clamp(0, 1).mul(255).round().to(torch::kUInt8).permute({0, 2, 3, 1});
    for (int64_t i = 0; i < n; ++i) {
      grid.slice(0, row * (s + g), row * (s + g) + s)
          .slice(1, i * (s + g), i * (s + g) + s)
          .copy_(u8[i]);
    }
    ++row;
  }
  return grid.contiguous();
}

}  // namespace moco::data
