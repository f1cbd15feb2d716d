#include "dist/dist.h"

#include <torch/csrc/distributed/c10d/FileStore.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef USE_C10D_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "core/log.h"

extern char** environ;

namespace moco::dist {

namespace {

int64_t parse_int(const std::string& name, const std::string& value) {
  try {
    size_t used = 0;
    const int64_t v = std::stoll(value, &used);
    TORCH_CHECK(used == value.size(), "");
    return v;
  } catch (...) {
    TORCH_CHECK(false, "expected an integer in ", name, ", got '", value, "'");
  }
}

// tcp://HOST:PORT -> (HOST, PORT)
std::pair<std::string, int> parse_url(const std::string& url) {
  const std::string scheme = "tcp://";
  TORCH_CHECK(url.rfind(scheme, 0) == 0,
              "expected --dist-url tcp://HOST:PORT or env://, got '", url, "'");
  const std::string rest = url.substr(scheme.size());
  const auto colon = rest.rfind(':');
  TORCH_CHECK(colon != std::string::npos && colon > 0,
              "expected --dist-url tcp://HOST:PORT, got '", url, "'");
  return {rest.substr(0, colon),
          static_cast<int>(parse_int("--dist-url", rest.substr(colon + 1)))};
}

}  // namespace

std::map<std::string, std::string> environment() {
  std::map<std::string, std::string> env;
  for (char** e = environ; e && *e; ++e) {
    const std::string kv(*e);
    const auto eq = kv.find('=');
    if (eq != std::string::npos) env[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  return env;
}

DistEnv resolve(const DistOptions& o, const std::map<std::string, std::string>& env) {
  auto get = [&](const char* k) -> std::string {
    auto it = env.find(k);
    return it == env.end() ? "" : it->second;
  };
  DistEnv d;
  auto master_from = [&](bool required_by_env) {
    if (!o.dist_url().empty() && o.dist_url() != "env://") {
      std::tie(d.master_addr, d.master_port) = parse_url(o.dist_url());
      return;
    }
    const std::string addr = get("MASTER_ADDR"), port = get("MASTER_PORT");
    TORCH_CHECK(!required_by_env || !addr.empty(),
                "MASTER_ADDR is not set: give --dist-url tcp://HOST:PORT or set "
                "MASTER_ADDR (and MASTER_PORT)");
    if (!addr.empty()) d.master_addr = addr;
    if (!port.empty()) d.master_port = static_cast<int>(parse_int("MASTER_PORT", port));
  };
  if (!get("RANK").empty() && !get("WORLD_SIZE").empty()) {
    d.source = "torchrun";
    d.rank = parse_int("RANK", get("RANK"));
    d.world_size = parse_int("WORLD_SIZE", get("WORLD_SIZE"));
    d.local_rank = get("LOCAL_RANK").empty() ? d.rank
                                             : parse_int("LOCAL_RANK", get("LOCAL_RANK"));
    d.local_world_size = get("LOCAL_WORLD_SIZE").empty()
                             ? d.world_size
                             : parse_int("LOCAL_WORLD_SIZE", get("LOCAL_WORLD_SIZE"));
    master_from(d.world_size > 1);
    d.agent_store = get("TORCHELASTIC_USE_AGENT_STORE") == "True";
  } else if (!get("SLURM_PROCID").empty() && !get("SLURM_NTASKS").empty()) {
    d.source = "SLURM";
    d.rank = parse_int("SLURM_PROCID", get("SLURM_PROCID"));
    d.world_size = parse_int("SLURM_NTASKS", get("SLURM_NTASKS"));
    d.local_rank = get("SLURM_LOCALID").empty()
                       ? 0
                       : parse_int("SLURM_LOCALID", get("SLURM_LOCALID"));
    d.local_world_size = get("SLURM_NTASKS_PER_NODE").empty()
                             ? d.world_size
                             : parse_int("SLURM_NTASKS_PER_NODE",
                                         get("SLURM_NTASKS_PER_NODE"));
    master_from(d.world_size > 1);
  } else if (o.world_size() > 0 || o.rank() >= 0) {
    // The official flags: --world-size nodes, --rank this node; with
    // --multiprocessing-distributed each node starts its processes and the
    // ranks become node_rank * nproc + local.
    d.source = "flags";
    TORCH_CHECK(o.world_size() > 0, "--rank given without --world-size");
    TORCH_CHECK(o.rank() >= 0 && o.rank() < o.world_size(),
                "expected 0 <= --rank < --world-size, got --rank ", o.rank(),
                " and --world-size ", o.world_size());
    d.rank = o.rank();
    d.world_size = o.world_size();
    master_from(false);
  }
  TORCH_CHECK(d.world_size >= 1 && d.rank >= 0 && d.rank < d.world_size,
              "expected 0 <= rank < world size, got rank ", d.rank, " of ",
              d.world_size, " (from ", d.source, ")");
  TORCH_CHECK(o.dist_backend() == "gloo" || o.dist_backend() == "nccl",
              "expected --dist-backend gloo or nccl, got '", o.dist_backend(), "'");
  return d;
}

// ---- Communicator ---------------------------------------------------------

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
                           c10::intrusive_ptr<c10d::ProcessGroup> pg,
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
    // for up to a second.
    for (int tries = 0; tries < 10 && gone.empty(); ++tries) {
      for (size_t r = 0; r < peer_pids_.size(); ++r) {
        if (static_cast<int64_t>(r) == rank_ || peer_hosts_[r] != host) continue;
        if (process_gone(peer_pids_[r])) {
          gone += (gone.empty() ? "" : ", ") + std::to_string(r);
        }
      }
      if (gone.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    TORCH_CHECK(false, "rank ", rank_, ": ", op, " failed: ",
                gone.empty() ? "a peer rank stopped answering or the "
                               "--dist-timeout passed"
                             : "rank " + gone + " is gone (its process exited)",
                " (", why, ")");
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
    constexpr int64_t kBucketBytes = 25 << 20;  // as DDP's default bucket
    struct Bucket {
      std::vector<torch::Tensor> parts;
      std::vector<torch::Tensor> flat;
      c10::intrusive_ptr<c10d::Work> work;
    };
    std::vector<Bucket> buckets;
    Bucket cur;
    int64_t bytes = 0;
    auto launch = [&] {
      if (cur.parts.empty()) return;
      std::vector<torch::Tensor> views;
      for (auto& p : cur.parts) views.push_back(p.reshape({-1}));
      cur.flat = {torch::cat(views)};
      cur.work = pg_->allreduce(cur.flat);
      buckets.push_back(std::move(cur));
      cur = Bucket();
      bytes = 0;
    };
    for (const auto& t : tensors) {
      if (!t.defined()) continue;
      if (!cur.parts.empty() && (cur.parts.front().scalar_type() != t.scalar_type() ||
                                 bytes >= kBucketBytes)) {
        launch();
      }
      cur.parts.push_back(t);
      bytes += t.numel() * t.element_size();
    }
    launch();
    torch::NoGradGuard no_grad;
    for (auto& b : buckets) {
      b.work->wait();
      b.flat[0].div_(static_cast<double>(world_size_));
      int64_t off = 0;
      for (auto& p : b.parts) {
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

// ---- GradientReducer ------------------------------------------------------

struct GradientReducer::Bucket {
  std::vector<size_t> params;     // indices into params_
  std::vector<int64_t> offsets;   // of each param in flat
  torch::Tensor flat;
  int64_t pending = 0;            // gradients still to arrive this step
  c10::intrusive_ptr<c10d::Work> work;
};

GradientReducer::GradientReducer(std::shared_ptr<Communicator> comm,
                                 std::vector<torch::Tensor> params,
                                 int64_t bucket_bytes)
    : comm_(std::move(comm)), params_(std::move(params)) {
  bucket_of_.resize(params_.size());
  // Reverse order: backward produces the last layers' gradients first.
  auto cur = std::make_unique<Bucket>();
  int64_t bytes = 0;
  for (size_t k = params_.size(); k-- > 0;) {
    const auto& p = params_[k];
    if (!cur->params.empty() &&
        (bytes >= bucket_bytes ||
         params_[cur->params.front()].scalar_type() != p.scalar_type())) {
      buckets_.push_back(std::move(cur));
      cur = std::make_unique<Bucket>();
      bytes = 0;
    }
    cur->offsets.push_back(bytes / p.element_size());
    cur->params.push_back(k);
    bucket_of_[k] = buckets_.size();
    bytes += p.numel() * p.element_size();
  }
  if (!cur->params.empty()) buckets_.push_back(std::move(cur));
  for (auto& b : buckets_) {
    int64_t n = 0;
    for (size_t k : b->params) n += params_[k].numel();
    b->flat = torch::zeros({n}, params_[b->params.front()].options().requires_grad(false));
    b->pending = static_cast<int64_t>(b->params.size());
  }
  for (size_t k = 0; k < params_.size(); ++k) {
    params_[k].register_hook([this, k](torch::Tensor grad) {
      on_grad(k, grad);
      return grad;
    });
  }
}

GradientReducer::~GradientReducer() = default;

void GradientReducer::on_grad(size_t k, const torch::Tensor& grad) {
  if (comm_->world_size() == 1) return;
  auto& b = *buckets_[bucket_of_[k]];
  size_t i = 0;
  while (b.params[i] != k) ++i;
  {
    torch::NoGradGuard no_grad;
    b.flat.slice(0, b.offsets[i], b.offsets[i] + grad.numel())
        .copy_(grad.reshape({-1}));
  }
  if (--b.pending == 0) {
    launch(b);
    if (!finishing_) ++started_early_;
  }
}

void GradientReducer::launch(Bucket& b) {
  b.work = comm_->start_all_reduce_sum(b.flat);
}

void GradientReducer::finish() {
  if (comm_->world_size() == 1) return;
  finishing_ = true;
  torch::NoGradGuard no_grad;
  for (auto& b : buckets_) {
    if (!b->work) {
      // A parameter without a gradient this step: its slot stays zero.
      for (size_t i = 0; i < b->params.size(); ++i) {
        if (!params_[b->params[i]].grad().defined()) {
          b->flat.slice(0, b->offsets[i],
                        b->offsets[i] + params_[b->params[i]].numel()).zero_();
        }
      }
      launch(*b);
    }
  }
  for (auto& b : buckets_) comm_->wait(b->work);
  for (auto& b : buckets_) {
    b->flat.div_(static_cast<double>(comm_->world_size()));
    for (size_t i = 0; i < b->params.size(); ++i) {
      auto& p = params_[b->params[i]];
      auto avg = b->flat.slice(0, b->offsets[i], b->offsets[i] + p.numel()).view_as(p);
      if (p.grad().defined()) {
        p.mutable_grad().copy_(avg);
      } else {
        p.mutable_grad() = avg.clone();
      }
    }
    b->work.reset();
    b->pending = static_cast<int64_t>(b->params.size());
  }
  finishing_ = false;
  last_early_ = started_early_;
  started_early_ = 0;
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

// ---- local launcher -------------------------------------------------------

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
