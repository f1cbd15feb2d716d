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
}  // namespace

void log_line(const char* level, const std::string& msg) {
  const std::time_t now =
      std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  localtime_r(&now, &tm);
  char stamp[32];
  std::strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S", &tm);
  std::lock_guard<std::mutex> lock(log_mutex());
  // A progress bar may own the current line; start on a clean one.
  std::fprintf(stderr, "%s[%s %s] %s\n", stderr_is_tty() ? "\r\033[K" : "",
               stamp, level, msg.c_str());
  std::fflush(stderr);
}

bool stderr_is_tty() {
  static const bool tty = isatty(fileno(stderr)) != 0;
  return tty;
}

}  // namespace moco
