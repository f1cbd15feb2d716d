#include "dist/launcher.h"

#include <c10/util/Exception.h>

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
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
  int result = 0;
  size_t alive = pids.size();
  bool stopping = false;
  auto stop_deadline = std::chrono::steady_clock::now();
  while (alive > 0) {
    int status = 0;
    const pid_t done = ::waitpid(-1, &status, stopping ? WNOHANG : 0);
    if (done == 0) {
      if (std::chrono::steady_clock::now() > stop_deadline) {
        for (pid_t p : pids) {
          if (p > 0) ::kill(p, SIGKILL);
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      continue;
    }
    if (done < 0) break;
    for (size_t i = 0; i < pids.size(); ++i) {
      if (pids[i] != done) continue;
      pids[i] = -1;
      --alive;
      const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      if (code != 0 && !stopping) {
        log_warn("rank ", node_rank * nproc + static_cast<int64_t>(i),
                 " exited with status ", code, WIFSIGNALED(status)
                     ? " (signal " + std::to_string(WTERMSIG(status)) + ")"
                     : "",
                 "; stopping the other ranks");
        result = code;
        stopping = true;
        // The others fail on their next collective and say so; those still
        // running after --dist-timeout (at most 60 s) are killed.
        stop_deadline = std::chrono::steady_clock::now() +
                        std::chrono::milliseconds(static_cast<int64_t>(
                            1000 * std::min(60.0, timeout_s)));
      }
    }
  }
  return result;
}

}  // namespace moco::dist
