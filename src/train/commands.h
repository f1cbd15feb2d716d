// Every `moco` command, one row each: its name, its help, its options type
// and its main. The command line (cli/) makes a subcommand of each row and
// gives it the table's flags (train/options.h), which the table binds to
// the options types of the rows that list them. Adding a command is its
// options and its main in its own files, one row here and its flags' rows
// in the table.
//
//   std::apply([](const auto&... row) { (std::puts(row.name), ...); }, commands());
#pragma once

#include <string>
#include <tuple>

#include "train/embed.h"
#include "train/export.h"
#include "train/finetune.h"
#include "train/inspect.h"
#include "train/knn.h"
#include "train/lincls.h"
#include "train/options.h"
#include "train/pretrain.h"
#include "train/sweep.h"
#include "train/tools.h"

namespace moco::train {

template <class O>
struct CommandRow {
  using Options = O;
  const char* name;
  std::string help;
  int (*main)(const O& options, const Invocation& call);  // the exit status
};

// In the order `moco --help` lists them.
inline auto commands() {
  return std::make_tuple(
      CommandRow<PretrainOptions>{
          "pretrain",
          "MoCo pretraining (flags and defaults of the official main_moco.py). "
          "Without DATA: Fashion-MNIST from " +
              std::string(data::kDefaultDataset) + " with the 'quick' preset.",
          pretrain_command},
      CommandRow<SweepOptions>{
          "sweep",
          "one pretraining per value of one or more flags (ablations): moco sweep "
          "--set moco-m=0,0.9,0.99 --seeds 0,1 -o DIR -- [moco pretrain flags]; a "
          "finished point is not run again",
          sweep_command},
      CommandRow<LinclsOptions>{
          "lincls",
          "linear classification protocol (flags and defaults of the official "
          "main_lincls.py): frozen backbone in eval mode, a new fc trained by SGD",
          [](const LinclsOptions& o, const Invocation&) {
            run_lincls(o);
            return 0;
          }},
      CommandRow<FinetuneOptions>{
          "finetune",
          "fine-tune the whole network with a new classifier on all or a few of "
          "the labels (--label-fraction 0.01, --labels-per-class N); --pretrained "
          "none trains from scratch",
          [](const FinetuneOptions& o, const Invocation&) {
            run_finetune(o);
            return 0;
          }},
      CommandRow<KnnCommandOptions>{
          "knn",
          "weighted kNN classification (cosine, k 200, t 0.1, as the official "
          "CIFAR demo) on backbone features of the train and test splits",
          knn_command},
      CommandRow<EmbedOptions>{
          "embed",
          "write backbone (or head) features of a dataset as a NumPy .npy file (N "
          "x D float32), plus OUT.txt listing each row's image and label",
          [](const EmbedOptions& o, const Invocation&) {
            run_embed(o);
            return 0;
          }},
      CommandRow<ExportOptions>{
          "export",
          "write a checkpoint's backbone for downstream tools: a torchvision state "
          "dict (.pth; a classifier keeps its fc), a detectron2 pickle (.pkl) or "
          "safetensors",
          [](const ExportOptions& o, const Invocation&) {
            export_backbone(o);
            return 0;
          }},
      CommandRow<InspectOptions>{
          "inspect",
          "what a checkpoint holds: its kind and network, the epoch it resumes "
          "at, and the flags of its run that differ from their defaults",
          inspect_command},
      CommandRow<ReportOptions>{
          "report",
          "turn a run's metrics.jsonl into report.html (self-contained, SVG "
          "charts) and report.svg in the run's folder",
          report_command},
      CommandRow<BenchDataOptions>{
          "bench-data",
          "measure decode + two-view augmentation throughput (images/s) on one "
          "core and with all workers, and the data wait of a simulated step",
          bench_data_command},
      CommandRow<PreviewAugOptions>{
          "preview-aug",
          "a PNG grid of the two augmented views the recipe makes of a few images "
          "(v2's, or v1's with --aug-plus=false), to see what pretraining sees",
          preview_aug_command},
      CommandRow<ShardOptions>{
          "shard",
          "write any dataset moco reads as WebDataset tar shards (KEY.jpg/.png + "
          "KEY.cls): image files keep their bytes, in-memory images become PNG; "
          "then DATA = OUT/train-{000000..N}.tar",
          shard_command});
}

}  // namespace moco::train
