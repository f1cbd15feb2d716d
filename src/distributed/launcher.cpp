#include "distributed/launcher.h"

#include <c10/util/Exception.h>
#include <netinet/in.h>
#include <signal.h>
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
#include "core/subprocess.h"
#include "distributed/communicator.h"

namespace moco::distributed {

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
// only wait for it in their next collective. Every end is recorded, so that
// the summary can name the rank that failed first for its own reason: the
// first to *exit* is often a survivor whose collective saw the peer go.
class Supervisor {
 public:
  Supervisor(std::vector<pid_t> pids, int64_t first_rank, double timeout_s)
      : pids_(std::move(pids)),
        first_rank_(first_rank),
        timeout_(static_cast<int64_t>(1000 * std::min(timeout_s, 1e6))),
        stopped_since_(pids_.size()),
        hung_(pids_.size(), false),
        killed_(pids_.size(), false) {}

  int run() {
    size_t alive = pids_.size();
    while (alive > 0) {
      forward_signal();
      kill_the_hung();
      if (Clock::now() >= kill_at_) kill_all();
      int status = 0;
      const pid_t done = ::waitpid(-1, &status, WNOHANG | WUNTRACED | WCONTINUED);
      if (done == 0 || (done < 0 && errno == EINTR)) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        continue;
      }
      if (done < 0) break;
      if (reaped(done, status)) --alive;
    }
    if (forwarded_ != 0) return 128 + forwarded_;
    const size_t cause = first_cause(ends_);
    if (cause == ends_.size()) return 0;
    log_warn(failure_summary(ends_));
    return ends_[cause].status();
  }

 private:
  int64_t rank_of(size_t i) const { return first_rank_ + static_cast<int64_t>(i); }

  void stop_all(Clock::time_point when) {
    stopping_ = true;
    kill_at_ = std::min(kill_at_, when);
  }

  void forward_signal() {
    if (g_signal == 0 || forwarded_ != 0) return;
    forwarded_ = g_signal;
    log_warn("received ", forwarded_ == SIGINT ? "SIGINT" : "SIGTERM",
             ": passing it to the ranks");
    for (pid_t p : pids_) {
      if (p > 0) ::kill(p, forwarded_);
    }
    stop_all(Clock::now() + timeout_);
  }

  void kill_the_hung() {
    for (size_t i = 0; i < pids_.size(); ++i) {
      if (pids_[i] > 0 && stopped_since_[i] &&
          Clock::now() - *stopped_since_[i] > timeout_) {
        log_warn("rank ", rank_of(i),
                 " has been stopped for --dist-timeout; killing the ranks");
        stopped_since_[i].reset();
        hung_[i] = true;
        stop_all(Clock::now());
      }
    }
  }

  void kill_all() {
    for (size_t i = 0; i < pids_.size(); ++i) {
      if (pids_[i] <= 0) continue;
      ::kill(pids_[i], SIGKILL);
      killed_[i] = true;
    }
  }

  // Returns true when `pid` has ended (not only stopped or continued).
  bool reaped(pid_t pid, int status) {
    const auto at = std::find(pids_.begin(), pids_.end(), pid);
    if (at == pids_.end()) return false;
    const size_t i = static_cast<size_t>(at - pids_.begin());
    if (WIFSTOPPED(status)) {
      stopped_since_[i] = Clock::now();
      return false;
    }
    if (WIFCONTINUED(status)) {
      stopped_since_[i].reset();
      return false;
    }
    pids_[i] = -1;
    RankEnd end;
    end.rank = rank_of(i);
    end.signaled = WIFSIGNALED(status);
    end.code = end.signaled ? WTERMSIG(status) : WEXITSTATUS(status);
    end.killed_by_launcher = killed_[i];
    end.hung = hung_[i];
    ends_.push_back(end);
    if (end.failed() && !stopping_) {
      log_warn("rank ", end.rank, " ", end.describe(), "; stopping the other ranks");
      // The others fail on their next collective and say so, and exit: the
      // grace is only a backstop, long enough for a loaded machine.
      stop_all(Clock::now() + std::chrono::seconds(5));
    }
    return true;
  }

  std::vector<pid_t> pids_;
  int64_t first_rank_;
  std::chrono::milliseconds timeout_;
  std::vector<std::optional<Clock::time_point>> stopped_since_;
  std::vector<bool> hung_, killed_;
  std::vector<RankEnd> ends_;
  bool stopping_ = false;
  int forwarded_ = 0;
  Clock::time_point kill_at_ = Clock::time_point::max();
};

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
  const int result = Supervisor(std::move(pids), first_rank, timeout_s).run();
  ::sigaction(SIGINT, &old_int, nullptr);
  ::sigaction(SIGTERM, &old_term, nullptr);
  return result;
}

}  // namespace

bool RankEnd::own_failure() const {
  if (hung) return true;
  // SIGKILL always ends in a signal: a rank that exited did so itself, even
  // when the launcher's kill found it a zombie.
  if (signaled) return !killed_by_launcher;
  return code != 0 && code != kPeerLostStatus;
}

std::string RankEnd::describe() const {
  if (signaled) {
    const char* name = signal_name(code);
    return "killed by signal " + std::to_string(code) +
           (name ? std::string(" (") + name + ")" : std::string()) +
           (hung ? " (stopped for --dist-timeout)"
                 : killed_by_launcher ? " (by the launcher)" : "");
  }
  return "exited with status " + std::to_string(code) +
         (code == kPeerLostStatus ? " (lost a peer)" : "");
}

size_t first_cause(const std::vector<RankEnd>& ends) {
  for (size_t i = 0; i < ends.size(); ++i) {
    if (ends[i].own_failure()) return i;
  }
  for (size_t i = 0; i < ends.size(); ++i) {
    if (ends[i].failed()) return i;
  }
  return ends.size();
}

std::string failure_summary(const std::vector<RankEnd>& ends) {
  const size_t cause = first_cause(ends);
  if (cause == ends.size()) return "every rank exited with status 0";
  std::string all;
  for (const auto& e : ends) {
    all += (all.empty() ? "" : ", ") + ("rank " + std::to_string(e.rank) + " ") +
           e.describe();
  }
  return "rank " + std::to_string(ends[cause].rank) + " failed first: " +
         ends[cause].describe() + "; ranks ended (in this order): " + all;
}

int spawn_local(const std::vector<std::string>& rank_argv, int64_t nproc,
                const DistEnv& node, double timeout_s) {
  TORCH_CHECK(nproc >= 1, "expected --nproc-per-node >= 1, got ", nproc);
  // The official flags name nodes: --world-size nodes, --rank this node.
  const int64_t nodes = node.source == "flags" ? node.world_size : 1;
  const int64_t node_rank = node.source == "flags" ? node.rank : 0;
  const int port = node.source == "flags" ? node.master_port : free_port();
  const std::string addr = node.source == "flags" ? node.master_addr : "127.0.0.1";
  std::vector<pid_t> pids;
  for (int64_t i = 0; i < nproc; ++i) {
    ChildOptions child;
    child.argv = rank_argv;
    child.what = "rank " + std::to_string(node_rank * nproc + i);
    child.env = {{"RANK", std::to_string(node_rank * nproc + i)},
                 {"WORLD_SIZE", std::to_string(nodes * nproc)},
                 {"LOCAL_RANK", std::to_string(i)},
                 {"LOCAL_WORLD_SIZE", std::to_string(nproc)},
                 {"MASTER_ADDR", addr},
                 {"MASTER_PORT", std::to_string(port)}};
    pids.push_back(spawn_child(child));
  }
  log_info("started ", nproc, " processes (ranks ", node_rank * nproc, "..",
           node_rank * nproc + nproc - 1, " of ", nodes * nproc, "), rendezvous ",
           addr, ":", port);
  return supervise(pids, node_rank * nproc, timeout_s);
}

}  // namespace moco::distributed
