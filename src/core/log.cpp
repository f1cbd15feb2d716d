#include "core/log.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>

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
}  // namespace

void set_log_rank(int64_t rank, bool quiet_info) {
  std::lock_guard<std::mutex> lock(log_mutex());
  rank_tag() = "rank " + std::to_string(rank) + " ";
  info_quiet() = quiet_info;
}

void log_line(const char* level, const std::string& msg) {
  const std::time_t now =
      std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
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
  return tty;
}

}  // namespace moco
