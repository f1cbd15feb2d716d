// The local launcher behind --nproc-per-node: this process starts the ranks
// and watches them, as torchrun's agent would.
//
//   auto node = moco::distributed::resolve(options, moco::distributed::environment());
//   return moco::distributed::spawn_local({"moco", "pretrain", "--epochs", "1"},
//                                         /*nproc=*/2, node, 1800);
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "distributed/environment.h"

namespace moco::distributed {

// How one rank ended, as the launcher saw it.
struct RankEnd {
  int64_t rank = 0;
  bool signaled = false;  // killed by `code`, a signal; else exited with it
  int code = 0;
  // The launcher sent SIGKILL while stopping the run: a signal death is
  // then a consequence.
  bool killed_by_launcher = false;
  // Stopped (SIGSTOP, a debugger) for --dist-timeout, then killed: a cause.
  bool hung = false;

  int status() const { return signaled ? 128 + code : code; }
  bool failed() const { return signaled || code != 0; }
  // Failed for its own reason, not because a peer was lost or the launcher
  // stopped it.
  bool own_failure() const;
  // "killed by signal 9 (SIGKILL)", "exited with status 75 (lost a peer)".
  std::string describe() const;
};

// The rank to name for a failed run, from the ends in the order they came:
// the first that failed for its own reason, else the first that failed;
// ends.size() when none failed.
size_t first_cause(const std::vector<RankEnd>& ends);

// One line for a failed run: the cause, then every rank's end in order.
//   "rank 1 failed first: killed by signal 9 (SIGKILL); ranks ended (in this
//    order): rank 1 killed by signal 9 (SIGKILL), rank 0 exited with status
//    75 (lost a peer)"
std::string failure_summary(const std::vector<RankEnd>& ends);

// `--nproc-per-node N`: starts N copies of this program with `rank_argv`
// (argv[0] included; the caller builds it from its parsed options, without
// the launcher's own flags) and torchrun's variables set, waits, and if one
// fails stops the others. Returns the exit status to use: the failing
// rank's (first_cause), or 128 + the signal that stopped the launcher.
int spawn_local(const std::vector<std::string>& rank_argv, int64_t nproc,
                const DistEnv& node, double timeout_s);

}  // namespace moco::distributed
