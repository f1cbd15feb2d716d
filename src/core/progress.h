// A one-line progress bar on a terminal; nothing otherwise (the caller logs
// plain lines every --print-freq steps instead).
//
//   ProgressBar bar(/*total=*/steps_per_epoch, "epoch 3/200");
//   bar.update(step, "loss 7.12 acc@1 4.1 lr 0.03 412 img/s");
//   bar.finish();
#pragma once

#include <chrono>
#include <string>

namespace moco {

class ProgressBar {
 public:
  ProgressBar(int64_t total, std::string label, bool enabled);
  // Redraws at most ~10 times a second; `done` steps of `total` finished.
  void update(int64_t done, const std::string& fields);
  void finish();
  // Seconds left at the current pace, for done of total.
  static double eta_seconds(double elapsed, int64_t done, int64_t total);
  static std::string format_duration(double seconds);

 private:
  int64_t total_;
  std::string label_;
  bool enabled_;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace moco
