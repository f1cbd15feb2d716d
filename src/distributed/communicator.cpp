#include "distributed/communicator.h"

#include <torch/csrc/distributed/c10d/FileStore.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef USE_C10D_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

namespace moco::distributed {

std::vector<std::vector<size_t>> plan_buckets(
    const std::vector<torch::Tensor>& tensors, const std::vector<size_t>& order,
    int64_t bucket_bytes) {
  std::vector<std::vector<size_t>> buckets;
  int64_t bytes = 0;
  for (size_t k : order) {
    const auto& t = tensors[k];
    if (!t.defined()) continue;
    if (buckets.empty() || bytes >= bucket_bytes ||
        tensors[buckets.back().front()].scalar_type() != t.scalar_type()) {
      buckets.emplace_back();
      bytes = 0;
    }
    buckets.back().push_back(k);
    bytes += t.numel() * t.element_size();
  }
  return buckets;
}

namespace {
// Exited (a zombie not yet reaped by its parent counts) or not there at all.
bool process_gone(int64_t pid) {
  if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) return true;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string ignore, state;
  if (!(stat >> ignore)) return true;
  // The command name may hold spaces: the state follows the last ')'.
  std::string rest((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  const auto close = rest.rfind(')');
  if (close == std::string::npos || close + 2 >= rest.size()) return false;
  const char st = rest[close + 2];
  return st == 'Z' || st == 'X';
}

std::string this_host() {
  char buf[256] = {0};
  gethostname(buf, sizeof(buf) - 1);
  return buf;
}
}  // namespace

Communicator::Communicator(c10::intrusive_ptr<c10d::Store> store,
                           c10::intrusive_ptr<CollectiveBackend> pg,
                           int64_t rank, int64_t world_size)
    : store_(std::move(store)), pg_(std::move(pg)), rank_(rank),
      world_size_(world_size) {
  // Who is who, kept locally: after a failure the store (served by rank 0)
  // may be gone with the rank that failed.
  const std::string me = std::to_string(::getpid()) + " " + this_host();
  store_->set("peer/" + std::to_string(rank_),
              std::vector<uint8_t>(me.begin(), me.end()));
  for (int64_t r = 0; r < world_size_; ++r) {
    const auto v = store_->get("peer/" + std::to_string(r));
    std::istringstream in(std::string(v.begin(), v.end()));
    int64_t pid = 0;
    std::string host;
    in >> pid >> host;
    peer_pids_.push_back(pid);
    peer_hosts_.push_back(host);
  }
}

Communicator::~Communicator() = default;

std::shared_ptr<Communicator> Communicator::over_store(
    c10::intrusive_ptr<c10d::Store> store, int64_t rank, int64_t world_size,
    std::chrono::milliseconds timeout) {
  store->setTimeout(timeout);
  auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
  opts->devices.push_back(
      c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
  opts->threads = 2;
  auto pg = c10::make_intrusive<c10d::ProcessGroupGloo>(
      store, static_cast<int>(rank), static_cast<int>(world_size), opts);
  return std::shared_ptr<Communicator>(
      new Communicator(store, pg, rank, world_size));
}

std::shared_ptr<Communicator> Communicator::connect(
    const DistEnv& env, const std::string& backend,
    std::chrono::milliseconds timeout) {
  c10d::TCPStoreOptions so;
  so.port = static_cast<std::uint16_t>(env.master_port);
  so.isServer = env.rank == 0 && !env.agent_store;
  so.numWorkers = static_cast<size_t>(env.world_size);
  so.waitWorkers = true;
  so.timeout = timeout;
  c10::intrusive_ptr<c10d::Store> store;
  try {
    // Our keys under their own prefix: torchrun's agent uses the same store.
    store = c10::make_intrusive<c10d::PrefixStore>(
        "moco", c10::make_intrusive<c10d::TCPStore>(env.master_addr, so));
  } catch (const std::exception& e) {
    TORCH_CHECK(false, "rank ", env.rank, ": rendezvous at ", env.master_addr,
                ":", env.master_port, " failed (", e.what(),
                "); are all ", env.world_size, " ranks started, with the same "
                "MASTER_ADDR/MASTER_PORT?");
  }
  if (backend == "nccl") {
#ifdef USE_C10D_NCCL
    auto opts = c10d::ProcessGroupNCCL::Options::create();
    opts->timeout = timeout;
    auto pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(
        store, static_cast<int>(env.rank), static_cast<int>(env.world_size), opts);
    return std::shared_ptr<Communicator>(
        new Communicator(store, pg, env.rank, env.world_size));
#else
    TORCH_CHECK(false, "--dist-backend nccl: this build of LibTorch has no "
                "NCCL; use --dist-backend gloo");
#endif
  }
  auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
  const bool local = env.master_addr == "127.0.0.1" || env.master_addr == "localhost";
  opts->devices.push_back(
      local ? c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1")
            : c10d::ProcessGroupGloo::createDefaultDevice());
  opts->threads = 2;
  auto pg = c10::make_intrusive<c10d::ProcessGroupGloo>(
      store, static_cast<int>(env.rank), static_cast<int>(env.world_size), opts);
  return std::shared_ptr<Communicator>(
      new Communicator(store, pg, env.rank, env.world_size));
}

void Communicator::guarded(const char* op, const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    const auto* ce = dynamic_cast<const c10::Error*>(&e);
    std::string why = ce ? ce->what_without_backtrace() : e.what();
    if (why.size() > 300) why = why.substr(0, 300) + "...";
    std::string gone;
    const std::string host = this_host();
    // A peer's socket may close a moment before its process is gone: look
    // for up to 3 s (a loaded machine reaps slowly; this is the failure path).
    for (int tries = 0; tries < 30 && gone.empty(); ++tries) {
      for (size_t r = 0; r < peer_pids_.size(); ++r) {
        if (static_cast<int64_t>(r) == rank_ || peer_hosts_[r] != host) continue;
        if (process_gone(peer_pids_[r])) {
          gone += (gone.empty() ? "" : ", ") + std::to_string(r);
        }
      }
      if (gone.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    throw PeerLost({__func__, __FILE__, static_cast<uint32_t>(__LINE__)},
                   c10::str("rank ", rank_, ": ", op, " failed: ",
                            gone.empty() ? "a peer rank stopped answering or the "
                                           "--dist-timeout passed"
                                         : "rank " + gone + " is gone (its process exited)",
                            " (", why, ")"));
  }
}

void Communicator::broadcast(std::vector<torch::Tensor>& tensors, int64_t root) {
  if (world_size_ == 1 || tensors.empty()) return;
  guarded("broadcast", [&] {
    // One flat buffer per dtype: Gloo broadcasts one tensor per call.
    std::map<c10::ScalarType, std::vector<torch::Tensor*>> by_type;
    for (auto& t : tensors) by_type[t.scalar_type()].push_back(&t);
    for (auto& [dtype, ts] : by_type) {
      std::vector<torch::Tensor> flat_parts;
      for (auto* t : ts) flat_parts.push_back(t->detach().reshape({-1}));
      std::vector<torch::Tensor> flat = {torch::cat(flat_parts)};
      c10d::BroadcastOptions o;
      o.rootRank = static_cast<int>(root);
      pg_->broadcast(flat, o)->wait();
      int64_t off = 0;
      torch::NoGradGuard no_grad;
      for (auto* t : ts) {
        t->copy_(flat[0].slice(0, off, off + t->numel()).view_as(*t));
        off += t->numel();
      }
    }
  });
}

void Communicator::all_reduce_mean(const std::vector<torch::Tensor>& tensors) {
  if (world_size_ == 1) return;
  guarded("all_reduce", [&] {
    std::vector<size_t> order(tensors.size());
    for (size_t k = 0; k < order.size(); ++k) order[k] = k;
    struct Bucket {
      std::vector<size_t> parts;
      std::vector<torch::Tensor> flat;
      c10::intrusive_ptr<c10d::Work> work;
    };
    // Every bucket's collective starts before the first is waited for.
    std::vector<Bucket> buckets;
    for (auto& plan : plan_buckets(tensors, order, kBucketBytes)) {
      std::vector<torch::Tensor> views;
      for (size_t k : plan) views.push_back(tensors[k].reshape({-1}));
      Bucket b;
      b.parts = std::move(plan);
      b.flat = {torch::cat(views)};
      b.work = pg_->allreduce(b.flat);
      buckets.push_back(std::move(b));
    }
    torch::NoGradGuard no_grad;
    for (auto& b : buckets) {
      b.work->wait();
      b.flat[0].div_(static_cast<double>(world_size_));
      int64_t off = 0;
      for (size_t k : b.parts) {
        auto p = tensors[k];
        p.copy_(b.flat[0].slice(0, off, off + p.numel()).view_as(p));
        off += p.numel();
      }
    }
  });
}

torch::Tensor Communicator::all_reduce_sum(const torch::Tensor& t) {
  auto out = t.detach().clone().contiguous();
  if (world_size_ == 1) return out;
  guarded("all_reduce", [&] {
    std::vector<torch::Tensor> v = {out};
    pg_->allreduce(v)->wait();
  });
  return out;
}

torch::Tensor Communicator::all_gather(const torch::Tensor& t) {
  if (world_size_ == 1) return t;
  torch::Tensor out;
  guarded("all_gather", [&] {
    auto in = t.detach().contiguous();
    std::vector<std::vector<torch::Tensor>> outputs(1);
    for (int64_t r = 0; r < world_size_; ++r) {
      outputs[0].push_back(torch::empty_like(in));
    }
    std::vector<torch::Tensor> inputs = {in};
    pg_->allgather(outputs, inputs)->wait();
    out = torch::cat(outputs[0]);
  });
  return out;
}

void Communicator::wait(const c10::intrusive_ptr<c10d::Work>& work) {
  guarded("all_reduce", [&] { work->wait(); });
}

c10::intrusive_ptr<c10d::Work> Communicator::start_all_reduce_sum(torch::Tensor& flat) {
  c10::intrusive_ptr<c10d::Work> work;
  guarded("all_reduce", [&] {
    std::vector<torch::Tensor> v = {flat};
    work = pg_->allreduce(v);
  });
  return work;
}

double Communicator::mean(double value) {
  if (world_size_ == 1) return value;
  auto t = torch::tensor({value}, torch::kFloat64);
  all_reduce_mean({t});
  return t.item<double>();
}

void Communicator::barrier() {
  if (world_size_ == 1) return;
  guarded("barrier", [&] { pg_->barrier()->wait(); });
}

void Communicator::check_same(const std::string& what, const std::string& value) {
  if (world_size_ == 1) return;
  const std::string key = "same/" + what + "/";
  store_->set(key + std::to_string(rank_),
              std::vector<uint8_t>(value.begin(), value.end()));
  barrier();
  const auto ref = store_->get(key + "0");
  const std::string ref_s(ref.begin(), ref.end());
  if (ref_s == value) return;
  // Name the options that differ when both are JSON objects.
  std::string diff;
  try {
    const auto a = nlohmann::json::parse(ref_s), b = nlohmann::json::parse(value);
    for (const auto& [k, v] : b.items()) {
      if (!a.contains(k) || a[k] != v) {
        diff += (diff.empty() ? "" : ", ") + k + " (" + a.value(k, nlohmann::json()).dump() +
                " on rank 0, " + v.dump() + " here)";
      }
    }
  } catch (...) {
  }
  TORCH_CHECK(false, "rank ", rank_, " was started with other ", what,
              " than rank 0", diff.empty() ? "" : ": " + diff,
              "; every rank must get the same flags");
}

}  // namespace moco::distributed
