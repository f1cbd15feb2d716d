// `moco inspect CHECKPOINT`: what a checkpoint holds, without loading a
// dataset: its kind and network (read off the tensors, as every command
// that loads one does), where it stands (epoch, step, best accuracy) and
// the flags its run was given that differ from their defaults, as the
// words that give them again.
//
//   InspectOptions o;
//   o.checkpoint("runs/pretrain/checkpoint.pth.tar");
//   CheckpointSummary s = inspect_checkpoint(o);
//   s.flags;   // {"--arch", "resnet18", "--epochs", "6", ...}
#pragma once

#include <torch/arg.h>

#include <optional>
#include <string>
#include <vector>

#include "train/options.h"

namespace moco::train {

struct InspectOptions {
  TORCH_ARG(std::string, checkpoint) = "";
};

struct CheckpointSummary {
  std::string kind;     // "MoCo pretraining checkpoint", "classifier checkpoint", "state dict"
  std::string identity;  // "a MoCo v2 pretraining checkpoint (moco pretrain)"
  std::string takes;     // the commands and flags that take it
  std::string network;  // "resnet18 (small-image stem), width 16, 1 channel, MLP head"
  std::optional<int64_t> epoch, epoch_step, global_step;
  std::optional<double> best_acc1;
  std::string command;             // "pretrain" or "finetune" when the flags were saved
  std::vector<std::string> flags;  // those not at their default, as words
};

CheckpointSummary inspect_checkpoint(const InspectOptions& options);

// Prints the summary, a line a fact; exit status 0.
int inspect_command(const InspectOptions& options, const Invocation& call);

}  // namespace moco::train
