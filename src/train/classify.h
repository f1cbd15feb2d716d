// What lincls and finetune share: top-1/top-5 of a classifier on a test
// split through the evaluation transform, the one-view training loader
// (RandomResizedCrop + flip, main_lincls.py's training transform), and the
// session around their epochs: the guarded and locked --output, metrics,
// the best result so far, and the last and best checkpoints. A command
// supplies only its epoch step, its record and its checkpoint.
//
//   auto acc = evaluate_classifier(net, *splits.test, transform,
//                                  FeatureOptions().batch(256).workers(2));
//   auto loader = classification_loader(train_set, transform, 256, workers, seed, device);
//   ClassifierSession session(o.output(), /*resuming=*/false);
//   session.open_metrics(o.tensorboard()).write(io::ConfigRecord{...});
//   ClassifierEpochs e;
//   e.train = [&](int64_t epoch) { ... };         // one epoch, its lr set
//   e.evaluate = [&] { return evaluate_classifier(...); };
//   e.report = [&](int64_t epoch, const Accuracy& acc, double best, double secs) { ... };
//   e.save = [&](const std::string& path, int64_t next_epoch, double best) { ... };
//   ClassifierResult r = session.run(start_epoch, epochs, best_acc1, e);
#pragma once

#include <torch/types.h>

#include <functional>
#include <memory>
#include <string>

#include "core/progress.h"
#include "data/dataset.h"
#include "data/eval_transform.h"
#include "data/loader.h"
#include "io/metrics.h"
#include "models/resnet.h"
#include "train/knn.h"
#include "train/runtime.h"

namespace moco::train {

struct Accuracy {
  double top1 = 0, top5 = 0;
};

// DATA as evaluation commands read it: labelled training images and a
// labelled test split, held out of the training images by `val_split`
// (stratified, seeded) when > 0. Errors name DATA and `command`.
data::Splits open_labelled(const std::string& path, const data::OpenOptions& open,
                           double val_split, int64_t seed, const std::string& command);

// In eval mode, without gradients; `amp` "bf16" evaluates under autocast.
// Batches, decoding threads and device as extract_features takes them (its
// l2_normalise does not apply); unreadable images (warned about) are left
// out of the accuracy.
Accuracy evaluate_classifier(models::ResNet& net, const data::ImageSet& set,
                             const data::EvalTransform& transform,
                             const FeatureOptions& options, const std::string& amp = "off");

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

// What a classifier command leaves: the last and best evaluations and
// where its checkpoints are.
struct ClassifierResult {
  double best_acc1 = 0, acc1 = 0, acc5 = 0;  // last evaluation
  int64_t epochs_done = 0;
  std::string checkpoint, best;
};

// `-e`: one evaluation, logged as main_lincls.py does (" * Acc@1 ...").
ClassifierResult evaluation_only(const Accuracy& acc);

// A classifier command's own parts of the epoch loop.
struct ClassifierEpochs {
  std::function<void(int64_t epoch)> train;  // one epoch, its lr set by it
  std::function<Accuracy()> evaluate;
  // The epoch's log line and metrics record.
  std::function<void(int64_t epoch, const Accuracy& acc, double best_acc1,
                     double seconds)>
      report;
  // Its checkpoint at `path`, to resume at `next_epoch`.
  std::function<void(const std::string& path, int64_t next_epoch, double best_acc1)>
      save;
};

// A training run of a classifier in --output: the folder guarded (a
// resumed run may write into it) and locked for the run; checkpoint.pth.tar
// after every epoch and model_best.pth.tar after each better one,
// main_lincls.py's names.
class ClassifierSession {
 public:
  ClassifierSession(const std::string& output, bool resuming);
  // metrics.jsonl (and TensorBoard events) in --output, opened once the
  // command has checked what it needs before writing anything there.
  io::MetricsWriter& open_metrics(bool tensorboard);
  io::MetricsWriter& metrics() { return metrics_; }
  const std::string& dir() const { return dir_; }
  ClassifierResult run(int64_t start_epoch, int64_t epochs, double best_acc1,
                       const ClassifierEpochs& e);

 private:
  std::string dir_, checkpoint_, best_;
  OutputLock lock_;
  io::MetricsWriter metrics_;
};

// A classifier that is not learning, said once with what to try, as a
// diverging run otherwise ends at chance with nothing said: its epoch's
// mean loss above `loss_factor` x a uniform guess's ln(classes), or val
// Acc@1 about chance at the end. The advice names --lr values below `lr`
// (`why_lr` may say where it came from).
void warn_if_not_learning(const std::string& command, double loss, double acc1,
                          int64_t classes, bool last, double lr, double loss_factor,
                          const std::string& why_lr, bool* warned);

std::unique_ptr<data::TwoViewLoader> classification_loader(
    const data::ImageSet& train_set, const data::EvalTransform& transform,
    int64_t batch, int64_t workers, int64_t seed, const torch::Device& device);

}  // namespace moco::train
