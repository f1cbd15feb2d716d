// The sweep's results as a person reads them: sweep.md (every point, then
// the mean and spread over seeds), sweep.jsonl (one object a point),
// sweep.svg (final kNN against the first swept flag, and every point's
// kNN curve) and sweep.html (the two together), in the sweep's folder.
//
//   std::vector<SweepRow> rows = {{&point, read_point_result(metrics), "done"}};
//   write_sweep_report(options, axes, rows);
#pragma once

#include <string>
#include <vector>

#include "train/options.h"
#include "train/sweep.h"

namespace moco::train {

struct SweepRow {
  const SweepPoint* point;
  PointResult result;
  std::string status;  // "done", "not run", "failed (exit 1)"
};

void write_sweep_report(const SweepOptions& options, const std::vector<SweepAxis>& axes,
                        const std::vector<SweepRow>& rows);

// NaN for an empty list; the sample std, 0 for fewer than two values.
double mean_of(const std::vector<double>& v);
double std_of(const std::vector<double>& v);
// "81.25%", "-" for NaN; "4:05", "1:02:03".
std::string format_percent(double v);
std::string format_duration(double seconds);

}  // namespace moco::train
