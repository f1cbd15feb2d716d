#include "core/subprocess.h"

#include <c10/util/Exception.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace moco {

pid_t spawn_child(const ChildOptions& o) {
  // Built before fork: the child only calls async-signal-safe functions.
  std::vector<char*> argv;
  for (const auto& a : o.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  TORCH_CHECK(pid >= 0, "cannot start ", o.what, ": fork failed: ", std::strerror(errno));
  if (pid != 0) return pid;
  // Dies with its parent, even one killed by SIGKILL, which no handler
  // sees; a parent already gone is checked, since the signal would not come.
  ::prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (::getppid() != parent) ::_exit(1);
  for (const auto& [name, value] : o.env) ::setenv(name.c_str(), value.c_str(), 1);
  if (!o.log.empty()) {
    const int fd = ::open(o.log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      ::close(fd);
    }
  }
  ::execv(o.binary.c_str(), argv.data());
  std::fprintf(stderr, "moco: cannot start %s (%s): %s\n", o.what.c_str(),
               o.binary.c_str(), std::strerror(errno));
  ::_exit(127);
}

int exit_code(int st) {
  if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
}

const char* signal_name(int sig) {
  switch (sig) {
    case SIGHUP: return "SIGHUP";
    case SIGINT: return "SIGINT";
    case SIGQUIT: return "SIGQUIT";
    case SIGILL: return "SIGILL";
    case SIGABRT: return "SIGABRT";
    case SIGBUS: return "SIGBUS";
    case SIGFPE: return "SIGFPE";
    case SIGKILL: return "SIGKILL";
    case SIGSEGV: return "SIGSEGV";
    case SIGPIPE: return "SIGPIPE";
    case SIGALRM: return "SIGALRM";
    case SIGTERM: return "SIGTERM";
    default: return nullptr;
  }
}

}  // namespace moco
