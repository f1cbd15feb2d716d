// What lincls and finetune share: top-1/top-5 of a classifier on a test
// split through the evaluation transform, and the one-view training loader
// (RandomResizedCrop + flip, main_lincls.py's training transform).
//
//   auto acc = evaluate_classifier(net, *splits.test, transform, 256, device);
//   auto loader = classification_loader(train_set, transform, 256, workers, seed, device);
#pragma once

#include <torch/types.h>

#include <memory>

#include "data/eval_transform.h"
#include "data/loader.h"
#include "models/resnet.h"

namespace moco::train {

struct Accuracy {
  double top1 = 0, top5 = 0;
};

// In eval mode, without gradients; `amp` "bf16" evaluates under autocast.
Accuracy evaluate_classifier(models::ResNet& net, const data::ImageSet& set,
                             const data::EvalTransform& transform,
                             int64_t batch, const torch::Device& device,
                             const std::string& amp = "off");

std::unique_ptr<data::TwoViewLoader> classification_loader(
    const data::ImageSet& train_set, const data::EvalTransform& transform,
    int64_t batch, int64_t workers, int64_t seed, const torch::Device& device);

}  // namespace moco::train
