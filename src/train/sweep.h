// `moco sweep`: one `moco pretrain` per point of a grid of flag values (and
// seeds), for the ablations users run, each point a process of its own in
// its own folder. A finished point is not run again, an interrupted one
// resumes from its checkpoint, so a killed sweep continues where it
// stopped. The results go to sweep.md, sweep.jsonl, sweep.svg and
// sweep.html in the sweep's folder.
//
//   moco sweep --set moco-m=0,0.9,0.99,0.999 --seeds 0,1 -o runs/m-sweep -- --epochs 5
//
//   SweepOptions o;
//   o.set({"moco-m=0.9,0.99"}).output("runs/m").pretrain_args({"--epochs", "5"});
//   SweepResult r = run_sweep(o, hooks);   // hooks.parse_pretrain from cli/
#pragma once

#include <cmath>
#include <functional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "train/options.h"

namespace moco::train {

struct SweepHooks {
  // `moco pretrain WORDS` parsed (presets applied) and checked, without
  // running; throws c10::Error naming a bad flag. cli::parse_pretrain.
  std::function<PretrainOptions(const std::vector<std::string>&,
                                std::set<std::string>*)>
      parse_pretrain;
  std::string binary = "/proc/self/exe";  // the moco the points run
};

// One --set FLAG=V1,V2,... (or the --point list, as the axis "point").
struct SweepAxis {
  std::string key;   // "moco_m"; "point"
  std::string flag;  // "--moco-m"; "point"
  std::vector<std::string> values;
  std::vector<std::vector<std::string>> words;  // each value's pretrain flags
};

// Parses the --set texts; errors name the --set, an unknown flag (with a
// suggestion) or a value the flag does not take.
std::vector<SweepAxis> parse_sets(const std::vector<std::string>& sets);
// Parses --point NAME=FLAGS texts ("v2=--mlp --aug-plus --cos --moco-t 0.2")
// into the axis "point"; errors name the --point.
SweepAxis parse_points(const std::vector<std::string>& points);

struct SweepPoint {
  std::string name;  // "moco_m=0.9,seed=0": also its folder's name
  std::vector<std::string> values;  // one per axis
  int64_t seed = 0;
  std::string dir;
  std::vector<std::string> words;  // its `moco pretrain` flags
};

// What a point's metrics.jsonl says; NaN where it says nothing.
struct PointResult {
  double knn_top1 = NAN, knn_top5 = NAN, pixels_top1 = NAN;
  double pretext_acc1 = NAN;  // mean over the last epoch's print steps
  double loss = NAN;          // the last epoch's mean
  double train_seconds = 0;   // sum of the epochs' durations
  int64_t epochs = 0;
  std::vector<std::pair<int64_t, double>> knn_curve;  // (epoch, top-1)
};
PointResult read_point_result(const std::string& metrics_path);

struct SweepResult {
  int64_t points = 0, ran = 0, skipped = 0, failed = 0;
};

SweepResult run_sweep(const SweepOptions& options, const SweepHooks& hooks);

// `moco sweep`: the points checked with the command line's parser; exit 1
// when a point failed.
int sweep_command(const SweepOptions& options, const Invocation& call);

}  // namespace moco::train
