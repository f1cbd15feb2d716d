// Ctrl-C and `kill` on any command: one line on stderr naming the signal,
// the file being written at that moment removed (so no half-written
// checkpoint or .tmp stays behind), then the signal's default action, so
// the exit status still says "killed by SIGINT/SIGTERM".
//
//   int main(...) { moco::install_stop_handlers(); ... }
//   {
//     moco::PartialFile partial(tmp_path);  // removed if a signal comes now
//     write(tmp_path); rename(tmp_path, path);
//   }
#pragma once

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

}  // namespace moco
