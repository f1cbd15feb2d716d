// Data-parallel training on PyTorch's c10d (Gloo on CPU; NCCL where the
// LibTorch build has it): where this process sits (rank, world size) from
// torchrun's or SLURM's environment or the official flags, a process group
// over a TCPStore rendezvous, and the few collectives MoCo needs.
//
//   auto env = moco::dist::resolve(DistOptions(), moco::dist::environment());
//   auto comm = moco::dist::Communicator::connect(env, "gloo", std::chrono::seconds(1800));
//   comm->broadcast(params);                 // identical start on every rank
//   comm->all_reduce_mean(grads);            // after backward
#pragma once

#include <torch/arg.h>
#include <torch/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace c10d {
class ProcessGroup;
class Store;
class Work;
}  // namespace c10d

namespace moco::dist {

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

class Communicator {
 public:
  // Rendezvous at env.master_addr:master_port (rank 0 serves the TCPStore).
  static std::shared_ptr<Communicator> connect(
      const DistEnv& env, const std::string& backend,
      std::chrono::milliseconds timeout);
  // Over a given store (tests: a FileStore shared by threads).
  static std::shared_ptr<Communicator> over_store(
      c10::intrusive_ptr<c10d::Store> store, int64_t rank, int64_t world_size,
      std::chrono::milliseconds timeout);
  ~Communicator();

  int64_t rank() const { return rank_; }
  int64_t world_size() const { return world_size_; }

  void broadcast(std::vector<torch::Tensor>& tensors, int64_t root = 0);
  // Averages over ranks in place: flattened into ~25 MB buckets, one
  // collective each, all started before the first is waited for.
  void all_reduce_mean(const std::vector<torch::Tensor>& tensors);
  // The sum over ranks, as a new tensor.
  torch::Tensor all_reduce_sum(const torch::Tensor& t);
  // Every rank's tensor, concatenated along dim 0 in rank order.
  torch::Tensor all_gather(const torch::Tensor& t);
  double mean(double value);
  // Starts a sum over ranks of `flat` in place; wait() on the result.
  c10::intrusive_ptr<c10d::Work> start_all_reduce_sum(torch::Tensor& flat);
  void wait(const c10::intrusive_ptr<c10d::Work>& work);
  void barrier();
  // Every rank's string equals rank 0's, or the message names the ranks
  // that differ.
  void check_same(const std::string& what, const std::string& value);

 private:
  Communicator(c10::intrusive_ptr<c10d::Store> store,
               c10::intrusive_ptr<c10d::ProcessGroup> pg, int64_t rank,
               int64_t world_size);
  // Runs a collective; a failure (a peer died, a timeout) becomes one
  // c10::Error naming this rank, the operation and, when known, the rank
  // that is gone.
  void guarded(const char* op, const std::function<void()>& f);

  c10::intrusive_ptr<c10d::Store> store_;
  c10::intrusive_ptr<c10d::ProcessGroup> pg_;
  int64_t rank_, world_size_;
  // Every rank's pid and host, read at start: after a failure the store
  // (served by rank 0) may be gone with the rank that failed.
  std::vector<int64_t> peer_pids_;
  std::vector<std::string> peer_hosts_;
};

// Averages gradients over ranks while backward is still running: a hook on
// each parameter collects its gradient, and a bucket (~25 MB, parameters in
// reverse order, as they finish) is all-reduced as soon as it is complete,
// on Gloo's threads; finish() waits and writes the averages to .grad.
//
//   GradientReducer reducer(comm, model->parameters());
//   loss.backward();      // buckets start as their gradients arrive
//   reducer.finish();     // .grad = mean over ranks
class GradientReducer {
 public:
  GradientReducer(std::shared_ptr<Communicator> comm,
                  std::vector<torch::Tensor> params,
                  int64_t bucket_bytes = 25 << 20);
  ~GradientReducer();
  void finish();
  int64_t buckets() const { return static_cast<int64_t>(buckets_.size()); }
  // Buckets started before backward returned, in the last step.
  int64_t started_early() const { return last_early_; }

 private:
  struct Bucket;
  void on_grad(size_t param, const torch::Tensor& grad);
  void launch(Bucket& b);

  std::shared_ptr<Communicator> comm_;
  std::vector<torch::Tensor> params_;
  std::vector<std::unique_ptr<Bucket>> buckets_;
  std::vector<size_t> bucket_of_;    // param -> bucket
  int64_t started_early_ = 0, last_early_ = 0;
  bool finishing_ = false;
};

// `--nproc-per-node N`: starts N copies of this program (argv with the
// flag removed) with torchrun's variables set, waits, and if one fails
// stops the others. Returns the exit status to use.
int spawn_local(int argc, char** argv, int64_t nproc, const DistEnv& node,
                double timeout_s);

}  // namespace moco::dist
