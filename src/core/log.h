// Timestamped log lines on stderr, safe to call from any thread: plain text,
// or one JSON object a line for log collectors (--log-format json).
//
//   moco::log_info("loaded ", n, " images from ", path);
//   moco::set_log_format(moco::LogFormat::json);
//   moco::log_info("hi");   // {"time":1764395277.123,"level":"info","message":"hi"}
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

enum class LogFormat { text, json };
// JSON lines also turn progress bars off (they would not be JSON).
void set_log_format(LogFormat format);
LogFormat log_format();

// In data-parallel runs: tag every line with the rank; ranks other than 0
// keep warnings and errors only.
void set_log_rank(int64_t rank, bool quiet_info);

// True when stderr is a terminal (progress bars only then).
bool stderr_is_tty();

}  // namespace moco
