// The commands around training rather than in it: `moco bench-data`
// (decode + augmentation throughput), `moco preview-aug` (a grid of the
// views the recipe makes), `moco shard` (any dataset as WebDataset tar
// shards) and `moco report` (a run's metrics as a page). Each takes its
// options and returns the exit status; train/commands.h lists them.
//
//   ShardOptions o;
//   o.data("/usr/share/datasets/fashion-mnist").output("shards");
//   shard_command(o, {});   // prints shards/train-{000000..000005}.tar
#pragma once

#include "train/options.h"

namespace moco::train {

int bench_data_command(const BenchDataOptions& options, const Invocation& call);
int preview_aug_command(const PreviewAugOptions& options, const Invocation& call);
int shard_command(const ShardOptions& options, const Invocation& call);
int report_command(const ReportOptions& options, const Invocation& call);

}  // namespace moco::train
