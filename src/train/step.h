// One MoCo optimisation step as `moco pretrain` runs it: the encoders under
// autocast, the (scaled) backward, `after_backward` (where the distributed
// gradient reduction finishes), SGD unless fp16 gradients overflowed, and
// the dictionary updated (the keys enqueued). bench/moco_bench_step times this same function.
//
//   auto out = train::training_step(model, sgd, amp, im_q, im_k);
//   double loss = out.loss.item<double>();
#pragma once

#include <functional>

#include "models/moco.h"
#include "train/amp.h"
#include "train/sgd.h"

namespace moco::train {

// `indices`: the batch's dataset indices (the memory bank's rows).
models::MocoOutput training_step(models::Moco& model, Sgd& sgd, Amp& amp,
                                 const torch::Tensor& im_q,
                                 const torch::Tensor& im_k,
                                 const std::function<void()>& after_backward = {},
                                 const torch::Tensor& indices = {});

}  // namespace moco::train
