#include "dist/launcher.h"

#include <c10/util/Exception.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/log.h"

namespace moco::dist {

namespace {

int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  TORCH_CHECK(fd >= 0, "cannot open a socket to find a free port");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  TORCH_CHECK(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
                  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0,
              "cannot find a free port");
  const int port = ntohs(addr.sin_port);
  ::close(fd);
  return port;
}

volatile sig_atomic_t g_signal = 0;
void on_signal(int sig) { g_signal = sig; }

using Clock = std::chrono::steady_clock;

// Waits for the ranks. SIGINT/SIGTERM sent to the launcher go on to every
// rank. When one rank fails, or one stays stopped (SIGSTOP, a debugger) for
// --dist-timeout, the rest are killed after a short grace: the others would
// only wait for it in their next collective.
int supervise(std::vector<pid_t> pids, int64_t first_rank, double timeout_s) {
  struct sigaction sa {
  }, old_int{}, old_term{};
  sa.sa_handler = on_signal;  // no SA_RESTART: waitpid returns on a signal
  sigemptyset(&sa.sa_mask);
  // As in core/signals: a signal ignored by whoever started us stays so.
  ::sigaction(SIGINT, nullptr, &old_int);
  ::sigaction(SIGTERM, nullptr, &old_term);
  if (old_int.sa_handler != SIG_IGN) ::sigaction(SIGINT, &sa, nullptr);
  if (old_term.sa_handler != SIG_IGN) ::sigaction(SIGTERM, &sa, nullptr);
  const auto grace = std::chrono::seconds(2);
  const auto timeout = std::chrono::milliseconds(
      static_cast<int64_t>(1000 * std::min(timeout_s, 1e6)));
  std::vector<std::optional<Clock::time_point>> stopped_since(pids.size());
  int result = 0;
  size_t alive = pids.size();
  bool stopping = false, forwarded = false;
  auto kill_at = Clock::time_point::max();
  auto stop_all = [&](int code, Clock::time_point when) {
    if (!stopping) result = code;
    stopping = true;
    kill_at = std::min(kill_at, when);
  };
  while (alive > 0) {
    if (g_signal != 0 && !forwarded) {
      forwarded = true;
      log_warn("received ", g_signal == SIGINT ? "SIGINT" : "SIGTERM",
               ": passing it to the ranks");
      for (pid_t p : pids) {
        if (p > 0) ::kill(p, g_signal);
      }
      stop_all(128 + g_signal, Clock::now() + timeout);
    }
    for (size_t i = 0; i < pids.size(); ++i) {
      if (pids[i] > 0 && stopped_since[i] &&
          Clock::now() - *stopped_since[i] > timeout) {
        log_warn("rank ", first_rank + static_cast<int64_t>(i),
                 " has been stopped for --dist-timeout; killing the ranks");
        stopped_since[i].reset();
        stop_all(1, Clock::now());
      }
    }
    if (Clock::now() >= kill_at) {
      for (pid_t p : pids) {
        if (p > 0) ::kill(p, SIGKILL);
      }
    }
    int status = 0;
    const pid_t done = ::waitpid(-1, &status, WNOHANG | WUNTRACED | WCONTINUED);
    if (done == 0 || (done < 0 && errno == EINTR)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      continue;
    }
    if (done < 0) break;
    const auto at = std::find(pids.begin(), pids.end(), done);
    if (at == pids.end()) continue;
    const size_t i = static_cast<size_t>(at - pids.begin());
    const int64_t rank = first_rank + static_cast<int64_t>(i);
    if (WIFSTOPPED(status)) {
      stopped_since[i] = Clock::now();
      continue;
    }
    if (WIFCONTINUED(status)) {
      stopped_since[i].reset();
      continue;
    }
    pids[i] = -1;
    --alive;
    const int code =
        WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (code != 0 && !stopping) {
      log_warn("rank ", rank, " exited with status ", code,
               WIFSIGNALED(status)
                   ? " (signal " + std::to_string(WTERMSIG(status)) + ")"
                   : "",
               "; stopping the other ranks");
      // The others fail on their next collective and say so; any still
      // running after the grace is killed.
      stop_all(code, Clock::now() + grace);
    }
  }
  ::sigaction(SIGINT, &old_int, nullptr);
  ::sigaction(SIGTERM, &old_term, nullptr);
  return result;
}

}  // namespace

int spawn_local(int argc, char** argv, int64_t nproc, const DistEnv& node,
                double timeout_s) {
  TORCH_CHECK(nproc >= 1, "expected --nproc-per-node >= 1, got ", nproc);
  // Child argv: ours without --nproc-per-node / --multiprocessing-distributed.
  std::vector<std::string> args;
  for (int i = 0; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--nproc-per-node" || a == "--nproc_per_node") {
      ++i;
      continue;
    }
    if (a.rfind("--nproc-per-node=", 0) == 0 || a == "--multiprocessing-distributed") {
      continue;
    }
    args.push_back(a);
  }
  // The official flags name nodes: --world-size nodes, --rank this node.
  const int64_t nodes = node.source == "flags" ? node.world_size : 1;
  const int64_t node_rank = node.source == "flags" ? node.rank : 0;
  const int port = node.source == "flags" ? node.master_port : free_port();
  const std::string addr = node.source == "flags" ? node.master_addr : "127.0.0.1";
  std::vector<pid_t> pids;
  const pid_t launcher = ::getpid();
  for (int64_t i = 0; i < nproc; ++i) {
    const pid_t pid = ::fork();
    TORCH_CHECK(pid >= 0, "fork failed: ", std::strerror(errno));
    if (pid == 0) {
      ::setenv("RANK", std::to_string(node_rank * nproc + i).c_str(), 1);
      ::setenv("WORLD_SIZE", std::to_string(nodes * nproc).c_str(), 1);
      ::setenv("LOCAL_RANK", std::to_string(i).c_str(), 1);
      ::setenv("LOCAL_WORLD_SIZE", std::to_string(nproc).c_str(), 1);
      ::setenv("MASTER_ADDR", addr.c_str(), 1);
      ::setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
      // A rank dies with its launcher, however the launcher ends (even by
      // SIGKILL, which no handler sees); a launcher gone already is checked.
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (::getppid() != launcher) ::_exit(1);
      std::vector<char*> cargv;
      for (auto& a : args) cargv.push_back(const_cast<char*>(a.c_str()));
      cargv.push_back(nullptr);
      ::execv("/proc/self/exe", cargv.data());
      std::fprintf(stderr, "moco: cannot start rank %lld: %s\n",
                   static_cast<long long>(i), std::strerror(errno));
      ::_exit(127);
    }
    pids.push_back(pid);
  }
  log_info("started ", nproc, " processes (ranks ", node_rank * nproc, "..",
           node_rank * nproc + nproc - 1, " of ", nodes * nproc, "), rendezvous ",
           addr, ":", port);
  return supervise(pids, node_rank * nproc, timeout_s);
}

}  // namespace moco::dist
