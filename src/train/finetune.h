// `moco finetune`: end-to-end fine-tuning, the semi-supervised protocol of
// the SimCLR / MoCo v2 line: the whole pretrained backbone and a new
// classifier trained by SGD with momentum (cosine schedule, the head at its
// own learning rate), BatchNorm in train mode (--freeze-bn keeps the
// pretrained statistics), on all labels or a stratified, seeded subset of
// them (--label-fraction, --labels-per-class, or another run's labels.txt).
// --pretrained none starts from random initialisation: supervised training
// from scratch with the same command. Writes checkpoint.pth.tar (last),
// model_best.pth.tar, labels.txt and metrics.jsonl to --output.
//
//   FinetuneOptions o;
//   o.data("/usr/share/datasets/fashion-mnist").pretrained("runs/x/checkpoint.pth.tar")
//       .label_fraction(0.01);
//   FinetuneResult r = run_finetune(o);   // r.best_acc1
#pragma once

#include <string>

#include "train/classify.h"
#include "train/options.h"

namespace moco::train {

struct FinetuneResult : ClassifierResult {
  int64_t train_images = 0;
  std::string labels;
};

FinetuneResult run_finetune(const FinetuneOptions& options);

}  // namespace moco::train
