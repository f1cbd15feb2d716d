// Where this process sits in a data-parallel run: rank, world size and the
// rendezvous address, from torchrun's or SLURM's environment or the
// official main_moco.py flags (--dist-url, --world-size, --rank).
//
//   auto env = moco::distributed::resolve(DistOptions(), moco::distributed::environment());
//   if (env.distributed()) { /* connect a Communicator (communicator.h) */ }
#pragma once

#include <torch/arg.h>

#include <cstdint>
#include <map>
#include <string>

namespace moco::distributed {

// The official main_moco.py flags, and ours.
struct DistOptions {
  TORCH_ARG(std::string, dist_url) = "";   // tcp://HOST:PORT or env:// ("": env)
  TORCH_ARG(std::string, dist_backend) = "gloo";  // gloo | nccl
  TORCH_ARG(int64_t, world_size) = -1;  // official: number of nodes
  TORCH_ARG(int64_t, rank) = -1;        // official: this node's rank
  TORCH_ARG(bool, multiprocessing_distributed) = false;
  TORCH_ARG(int64_t, nproc_per_node) = 0;  // ours: processes to start here
  TORCH_ARG(double, timeout_s) = 1800;     // --dist-timeout
};

struct DistEnv {
  int64_t rank = 0, world_size = 1;
  int64_t local_rank = 0, local_world_size = 1;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  std::string source = "single process";  // "torchrun", "SLURM", "flags"
  // torchrun's agent already serves the TCPStore at MASTER_PORT
  // (TORCHELASTIC_USE_AGENT_STORE): every rank joins it as a client.
  bool agent_store = false;
  bool distributed() const { return world_size > 1; }
};

// The process environment as a map (tests pass their own).
std::map<std::string, std::string> environment();

// torchrun (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR,
// MASTER_PORT) first, then SLURM (SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID,
// with MASTER_ADDR/MASTER_PORT or --dist-url), then --rank/--world-size
// with --dist-url; otherwise one process. Errors name the variable or flag.
DistEnv resolve(const DistOptions& options,
                const std::map<std::string, std::string>& env);

}  // namespace moco::distributed
