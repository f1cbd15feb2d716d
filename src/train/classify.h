// What lincls and finetune share: top-1/top-5 of a classifier on a test
// split through the evaluation transform, and the one-view training loader
// (RandomResizedCrop + flip, main_lincls.py's training transform).
//
//   auto acc = evaluate_classifier(net, *splits.test, transform, 256, workers, device);
//   auto loader = classification_loader(train_set, transform, 256, workers, seed, device);
#pragma once

#include <torch/types.h>

#include <memory>
#include <string>

#include "core/progress.h"
#include "data/dataset.h"
#include "data/eval_transform.h"
#include "data/loader.h"
#include "models/resnet.h"

namespace moco::train {

struct Accuracy {
  double top1 = 0, top5 = 0;
};

// DATA as evaluation commands read it: labelled training images and a
// labelled test split, held out of the training images by `val_split`
// (stratified, seeded) when > 0. Errors name DATA and `command`.
data::Splits open_labelled(const std::string& path, int64_t channels,
                           int64_t max_image_pixels, double val_split,
                           int64_t seed, const std::string& command);

// In eval mode, without gradients; `amp` "bf16" evaluates under autocast.
// `workers` threads decode ahead of the network; unreadable images (warned
// about) are left out of the accuracy.
Accuracy evaluate_classifier(models::ResNet& net, const data::ImageSet& set,
                             const data::EvalTransform& transform,
                             int64_t batch, int64_t workers, const torch::Device& device,
                             const std::string& amp = "off");

// A training step's loss checked (finite, or an error naming `lr_flags` to
// lower) and, every `print_freq` steps and at the epoch's end, shown on
// the bar or, without one, as a log line "NAME epoch E/EPOCHS step N/STEPS".
class ClassifierSteps {
 public:
  ClassifierSteps(std::string name, int64_t epoch, int64_t epochs, int64_t steps,
                  int64_t print_freq, bool progress);
  void after_step(int64_t n, double loss, double lr, const std::string& lr_flags);
  void finish() { bar_.finish(); }

 private:
  std::string name_;
  int64_t epoch_, epochs_, steps_, print_freq_;
  bool bar_on_;
  ProgressBar bar_;
};

std::unique_ptr<data::TwoViewLoader> classification_loader(
    const data::ImageSet& train_set, const data::EvalTransform& transform,
    int64_t batch, int64_t workers, int64_t seed, const torch::Device& device);

}  // namespace moco::train
