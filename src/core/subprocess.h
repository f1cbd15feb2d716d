// Child processes that die with the process that started them: fork, the
// death signal, exec, and the end as a status. The local launcher starts
// its ranks with it and the sweep its points, so that neither leaves an
// orphan writing to a folder after it was killed (even by SIGKILL).
//
//   ChildOptions c;
//   c.argv = {"moco", "pretrain", "--epochs", "1"};
//   c.env = {{"RANK", "0"}};
//   c.log = "runs/x/log.txt";               // stdout and stderr, appended
//   pid_t pid = spawn_child(c);
//   int st = 0;
//   ::waitpid(pid, &st, 0);
//   int code = exit_code(st);               // 128 + N for signal N
#pragma once

#include <sys/types.h>

#include <string>
#include <utility>
#include <vector>

namespace moco {

struct ChildOptions {
  std::string binary = "/proc/self/exe";  // this program, by default
  std::vector<std::string> argv;          // argv[0] included
  std::vector<std::pair<std::string, std::string>> env;  // set in the child
  std::string log;     // "": stdout and stderr stay the parent's
  std::string what = "a child process";  // "rank 1": for the error line
};

// Starts the child; it gets SIGTERM when this process ends, however it
// ends. Throws c10::Error when fork fails; a failed exec exits 127 after
// saying what could not be started.
pid_t spawn_child(const ChildOptions& options);

// A waitpid status as a shell would show it: the exit status, or 128 + the
// signal that ended the process.
int exit_code(int wait_status);

// "SIGKILL" for 9, nullptr for a signal without a common name.
const char* signal_name(int sig);

}  // namespace moco
