// `moco bench-data`: how fast the loader turns image files (or an in-memory
// dataset) into two augmented views, on one core and with all workers, and
// how much of a step of a given length the training loop would wait.
//
//   auto r = moco::data::measure_throughput(set, moco_v2_augment(224),
//                                           ThroughputOptions().workers(2));
//   r.images_per_second;   // decode + two views, all workers
#pragma once

#include <torch/arg.h>

#include <memory>

#include "data/augment.h"
#include "data/dataset.h"

namespace moco::data {

struct ThroughputOptions {
  TORCH_ARG(int64_t, workers) = 2;       // 0: on the calling thread
  TORCH_ARG(int64_t, batch_size) = 64;
  TORCH_ARG(int64_t, max_images) = 0;    // 0: one whole epoch
  TORCH_ARG(double, step_seconds) = 0;   // simulated step; 0: none
  TORCH_ARG(uint64_t, seed) = 0;
  TORCH_ARG(int64_t, epoch) = 0;
  TORCH_ARG(int64_t, shuffle_buffer) = kShuffleBuffer;  // tar shards
};

struct ThroughputResult {
  int64_t images = 0;
  double seconds = 0;
  double images_per_second = 0;
  double wait_share = 0;  // of the loop's time, blocked in next()
  int64_t skipped_files = 0;
  int64_t labelled = 0;   // images that came with a label
};

ThroughputResult measure_throughput(std::shared_ptr<const ImageSet> set,
                                    const AugmentOptions& augment,
                                    const ThroughputOptions& options);

}  // namespace moco::data
