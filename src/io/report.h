// `moco report RUN_DIR`: metrics.jsonl as a self-contained HTML page with
// SVG charts (loss, pretext accuracy, learning rate, kNN accuracy,
// throughput; the linear classifier's loss and accuracy when present), and
// the same charts as one SVG file. No scripts, no network: it opens
// anywhere.
//
//   auto r = moco::io::write_report("runs/quick-2026-11-28");
//   r.html;   // runs/quick-2026-11-28/report.html
#pragma once

#include <string>
#include <vector>

namespace moco::io {

struct ReportResult {
  std::string html, svg;
  std::vector<std::string> charts;  // titles of the charts drawn
};

ReportResult write_report(const std::string& run_dir);

}  // namespace moco::io
