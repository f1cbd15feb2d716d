#include "core/progress.h"

#include <cstdio>

#include <fmt/format.h>

namespace moco {

ProgressBar::ProgressBar(int64_t total, std::string label, bool enabled)
    : total_(total),
      label_(std::move(label)),
      enabled_(enabled),
      start_(std::chrono::steady_clock::now()),
      last_draw_() {}

double ProgressBar::eta_seconds(double elapsed, int64_t done, int64_t total) {
  if (done <= 0) return 0;
  return elapsed / static_cast<double>(done) * static_cast<double>(total - done);
}

std::string ProgressBar::format_duration(double s) {
  const int64_t t = static_cast<int64_t>(s + 0.5);
  if (t >= 3600) return fmt::format("{}:{:02}:{:02}", t / 3600, t / 60 % 60, t % 60);
  return fmt::format("{:02}:{:02}", t / 60, t % 60);
}

void ProgressBar::update(int64_t done, const std::string& fields) {
  if (!enabled_) return;
  const auto now = std::chrono::steady_clock::now();
  if (done < total_ && now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  constexpr int kWidth = 24;
  const int filled = total_ > 0 ? static_cast<int>(kWidth * done / total_) : 0;
  std::string bar(filled, '#');
  bar.resize(kWidth, '.');
  std::fprintf(stderr, "\r\033[K%s [%s] %lld/%lld %s eta %s", label_.c_str(),
               bar.c_str(), static_cast<long long>(done),
               static_cast<long long>(total_), fields.c_str(),
               format_duration(eta_seconds(elapsed, done, total_)).c_str());
  std::fflush(stderr);
}

void ProgressBar::finish() {
  if (!enabled_) return;
  std::fprintf(stderr, "\r\033[K");
  std::fflush(stderr);
}

}  // namespace moco
