#include "distributed/environment.h"

#include <c10/util/Exception.h>

#include <tuple>

extern char** environ;

namespace moco::distributed {

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

}  // namespace moco::distributed
