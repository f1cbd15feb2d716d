#include "core/log.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <mutex>

#include <nlohmann/json.hpp>

namespace moco {

namespace {
std::mutex& log_mutex() {
  static std::mutex m;
  return m;
}
std::string& rank_tag() {
  static std::string tag;
  return tag;
}
bool& info_quiet() {
  static bool quiet = false;
  return quiet;
}
LogFormat& format() {
  static LogFormat f = LogFormat::text;
  return f;
}
}  // namespace

void set_log_format(LogFormat f) {
  std::lock_guard<std::mutex> lock(log_mutex());
  format() = f;
}

LogFormat log_format() { return format(); }

void set_log_rank(int64_t rank, bool quiet_info) {
  std::lock_guard<std::mutex> lock(log_mutex());
  rank_tag() = "rank " + std::to_string(rank) + " ";
  info_quiet() = quiet_info;
}

void log_line(const char* level, const std::string& msg) {
  const auto clock_now = std::chrono::system_clock::now();
  if (format() == LogFormat::json) {
    std::lock_guard<std::mutex> lock(log_mutex());
    if (info_quiet() && std::string(level) == "info") return;
    nlohmann::ordered_json j;  // time first, as in metrics.jsonl
    j["time"] = std::round(std::chrono::duration<double>(clock_now.time_since_epoch()).count() *
                           1000) / 1000;
    j["level"] = level;
    const auto& tag = rank_tag();
    if (!tag.empty()) j["rank"] = std::stoll(tag.substr(5));
    j["message"] = msg;
    // File names need not be UTF-8: replace what is not, never throw.
    const auto line = j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
    std::fprintf(stderr, "%s\n", line.c_str());
    std::fflush(stderr);
    return;
  }
  const std::time_t now = std::chrono::system_clock::to_time_t(clock_now);
  std::tm tm{};
  localtime_r(&now, &tm);
  char stamp[32];
  std::strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S", &tm);
  std::lock_guard<std::mutex> lock(log_mutex());
  if (info_quiet() && std::string(level) == "info") return;
  // A progress bar may own the current line; start on a clean one.
  std::fprintf(stderr, "%s[%s %s%s] %s\n", stderr_is_tty() ? "\r\033[K" : "",
               stamp, rank_tag().c_str(), level, msg.c_str());
  std::fflush(stderr);
}

bool stderr_is_tty() {
  static const bool tty = isatty(fileno(stderr)) != 0;
  return tty && format() == LogFormat::text;
}

}  // namespace moco
