// Plain, timestamped log lines on stderr, safe to call from any thread.
//
//   moco::log_info("loaded ", n, " images from ", path);
#pragma once

#include <cstdint>
#include <sstream>
#include <string>

namespace moco {

void log_line(const char* level, const std::string& msg);

template <typename... Args>
void log_info(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  log_line("info", os.str());
}

template <typename... Args>
void log_warn(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  log_line("warn", os.str());
}

// In data-parallel runs: tag every line with the rank; ranks other than 0
// keep warnings and errors only.
void set_log_rank(int64_t rank, bool quiet_info);

// True when stderr is a terminal (progress bars only then).
bool stderr_is_tty();

}  // namespace moco
