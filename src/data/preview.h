// What the augmentation recipe does to the data, as a picture: the two
// views the loader makes of a few images (evenly spaced through the set),
// view 1 in the top row and view 2 below, before normalisation.
//
//   auto grid = data::augmentation_grid(set, data::moco_v2_augment(32), 8, /*seed=*/0);
//   // uint8 H x W x C; data::encode_png(grid.data_ptr<uint8_t>(), ...)
#pragma once

#include <torch/types.h>

#include <memory>

#include "data/augment.h"

namespace moco::data {

struct ImageSet;

// Gap between tiles, in pixels (white).
constexpr int64_t kGridGap = 4;

torch::Tensor augmentation_grid(const ImageSet& set, AugmentOptions augment,
                                int64_t images, uint64_t seed);

}  // namespace moco::data
