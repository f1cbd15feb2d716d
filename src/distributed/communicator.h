// A process group over c10d (Gloo on CPU; NCCL where the LibTorch build
// has it) with a TCPStore rendezvous, and the few collectives MoCo needs.
// A failed collective becomes one error naming this rank, the operation
// and, when it can tell, the rank that is gone.
//
//   auto comm = moco::distributed::Communicator::connect(env, "gloo", std::chrono::seconds(1800));
//   comm->broadcast(params);                 // identical start on every rank
//   comm->all_reduce_mean(grads);            // after backward
#pragma once

#include <c10/util/Exception.h>
#include <torch/types.h>
#include <torch/version.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "distributed/environment.h"

namespace c10d {
#if TORCH_VERSION_MAJOR >= 2
// Since 2.0 ProcessGroupGloo and ProcessGroupNCCL are Backends of a
// ProcessGroup; a Backend alone has every collective moco calls.
class Backend;
#else
class ProcessGroup;
#endif
class Store;
class Work;
}  // namespace c10d

namespace moco::distributed {

#if TORCH_VERSION_MAJOR >= 2
using CollectiveBackend = c10d::Backend;
#else
using CollectiveBackend = c10d::ProcessGroup;
#endif

// Groups tensors into buckets of about `bucket_bytes` (a new bucket also at
// each change of dtype), in the order given: indices into `tensors`. The
// post-backward all-reduce and the GradientReducer both bucket this way.
std::vector<std::vector<size_t>> plan_buckets(
    const std::vector<torch::Tensor>& tensors, const std::vector<size_t>& order,
    int64_t bucket_bytes);

// A collective that failed because of another rank (it died, hung, or the
// --dist-timeout passed): this rank's failure is a consequence, not a cause.
// The binary exits with kPeerLostStatus for it, so that a launcher can tell
// the rank that failed first from the ranks that only lost it.
class PeerLost : public c10::Error {
 public:
  using c10::Error::Error;
};
// EX_TEMPFAIL of sysexits.h: the run may be resumed once the peer is back.
constexpr int kPeerLostStatus = 75;

// DDP's default bucket size.
constexpr int64_t kBucketBytes = 25 << 20;

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
               c10::intrusive_ptr<CollectiveBackend> pg, int64_t rank,
               int64_t world_size);
  // Runs a collective; a failure (a peer died, a timeout) becomes one
  // c10::Error naming this rank, the operation and, when known, the rank
  // that is gone.
  void guarded(const char* op, const std::function<void()>& f);

  c10::intrusive_ptr<c10d::Store> store_;
  c10::intrusive_ptr<CollectiveBackend> pg_;
  int64_t rank_, world_size_;
  // Every rank's pid and host, read at start: after a failure the store
  // (served by rank 0) may be gone with the rank that failed.
  std::vector<int64_t> peer_pids_;
  std::vector<std::string> peer_hosts_;
};

}  // namespace moco::distributed
