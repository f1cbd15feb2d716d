// `moco pretrain`: MoCo v1/v2 pretraining, with the official main_moco.py
// flags and defaults, a kNN monitor, metrics.jsonl and resumable checkpoints
// in the official layout.
//
// A run is small pieces: resolve_plan() turns the options, the data and the
// process's place in a distributed run into one plan (logged once);
// build_model() and make_optimizer() build what it trains; the loop runs
// one epoch at a time, monitors with kNN and saves a checkpoint.
//
//   PretrainOptions o;
//   o.data("/usr/share/datasets/fashion-mnist").arch("resnet18").epochs(1);
//   PretrainResult r = run_pretrain(o);
#pragma once

#include <torch/types.h>

#include <set>
#include <string>

#include "data/eval_transform.h"
#include "distributed/environment.h"
#include "models/moco.h"
#include "train/options.h"
#include "train/sgd.h"

namespace moco::data {
struct ImageSet;
}

namespace moco::train {

// The distributed flags, for distributed::resolve.
distributed::DistOptions dist_options(const PretrainOptions& o);

// Runs every flag's checks (the table's) and those between flags; throws
// c10::Error naming the flag.
void validate(const PretrainOptions& o);

// --resume CKPT from the command line: the checkpoint's saved flags become
// the values of those not given (`given`: keys), --output defaults to the
// checkpoint's folder, and a given flag that differs from the saved one is
// logged. No-op without --resume or for a checkpoint without moco_options.
void restore_resumed_options(PretrainOptions& o,
                             const std::set<std::string>& given);

// The options as the command line leaves them: --preset's values, then
// the resumed checkpoint's flags, for those not given.
void finish_options(PretrainOptions& o, const std::set<std::string>& given);

// What the options, the data and this process's place in the run come to,
// resolved once and logged once.
struct PretrainPlan {
  PretrainOptions options;  // stem, crop_size, threads, workers, amp resolved
  distributed::DistEnv env;
  torch::Device device = torch::kCPU;
  int64_t local_batch = 0;   // this process's share of -b
  int64_t local_splits = 1;  // its BN groups
  int64_t in_channels = 3;
  int64_t train_size = 0;    // the memory bank's rows
  data::EvalTransform eval;  // the kNN monitor's transform; its mean and std
                             // also normalise the training views
  int64_t steps_per_epoch = 0;
  bool root() const { return env.rank == 0; }
  std::string describe() const;  // the start-up "model: ..." line
};

PretrainPlan resolve_plan(const PretrainOptions& options,
                          const distributed::DistEnv& env,
                          const data::ImageSet& train);

// The model and the optimizer as pretraining builds them (the step parity
// test and the step benchmark build theirs here too).
models::Moco build_model(const PretrainPlan& plan);
Sgd make_optimizer(models::Moco& model, const PretrainOptions& o);

struct PretrainResult {
  int64_t steps = 0;            // optimizer steps this run
  int64_t epochs_done = 0;
  double final_loss = 0;
  double knn_top1 = -1, knn_top5 = -1;   // last monitor; -1 if none
  double knn_init_top1 = -1;             // with --knn-init
  double knn_pixels_top1 = -1;           // with --knn-pixels
  double images_per_second = 0;
  double data_wait_share = 0;   // fraction of step time waiting for data
  int64_t skipped_files = 0;    // unreadable image files skipped
  std::string checkpoint;       // last checkpoint written
};

PretrainResult run_pretrain(const PretrainOptions& options);

// `moco pretrain`: with --nproc-per-node or --multiprocessing-distributed,
// this process starts the ranks (each with the flags given but those two)
// and watches them; else it trains. Returns the exit status.
int pretrain_command(const PretrainOptions& options, const Invocation& call);

}  // namespace moco::train
