// Ctrl-C and `kill` on any command: one line on stderr naming the signal,
// the file being written at that moment removed (so no half-written
// checkpoint or .tmp stays behind), then the signal's default action, so
// the exit status still says "killed by SIGINT/SIGTERM".
//
// Inside a GracefulStop scope (a training loop) the first SIGINT/SIGTERM
// only sets a flag: the loop finishes its step, saves a checkpoint and
// throws StopRequested, which the command line turns into exit status
// 128 + signal and a line saying how to resume. A second signal stops at
// once, as outside the scope.
//
//   int main(...) { moco::install_stop_handlers(); ... }
//   {
//     moco::PartialFile partial(tmp_path);  // removed if a signal comes now
//     write(tmp_path); rename(tmp_path, path);
//   }
//   {
//     moco::GracefulStop graceful;
//     while (train_step()) if (moco::GracefulStop::signal()) { save(); throw ...; }
//   }
#pragma once

#include <stdexcept>
#include <string>

namespace moco {

void install_stop_handlers();

// Marks `path` as being written for its lifetime (one at a time per
// process; nested marks keep the innermost).
class PartialFile {
 public:
  explicit PartialFile(const std::string& path);
  ~PartialFile();
  PartialFile(const PartialFile&) = delete;
  PartialFile& operator=(const PartialFile&) = delete;

 private:
  bool active_ = false;
};

class GracefulStop {
 public:
  GracefulStop();
  ~GracefulStop();
  GracefulStop(const GracefulStop&) = delete;
  GracefulStop& operator=(const GracefulStop&) = delete;
  // The signal received inside the scope (SIGINT, SIGTERM), or 0.
  static int signal();
};

// Thrown once a training loop has saved its work after a signal.
struct StopRequested : std::runtime_error {
  StopRequested(int sig, const std::string& message)
      : std::runtime_error(message), signal(sig) {}
  int signal;
};

}  // namespace moco
