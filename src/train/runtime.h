// Runtime pieces every command shares: the clock, cores, threads and loader
// workers, the device, and the guard that keeps a run's folder from being
// written over.
//
//   const auto device = train::resolve_device("cpu");
//   train::use_threads(0);                           // all cores
//   train::guard_output("runs/x", /*resuming=*/false);
//   const auto t0 = train::Clock::now(); ... train::seconds_since(t0);
#pragma once

#include <torch/types.h>

#include <chrono>
#include <string>

namespace moco::train {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0);

int64_t cores();

// Intra-op threads: `threads` when > 0, else this process's share of the
// cores (`processes_here` processes on this machine). Sets and returns it.
int64_t use_threads(int64_t threads, int64_t processes_here = 1);

// Loader threads: `workers` when >= 0, else one per core of this process's
// share beyond the first, at least one.
int64_t resolve_workers(int64_t workers, int64_t processes_here = 1);

// --device cpu | cuda | cuda:N, refused when this LibTorch has no CUDA or
// no GPU is visible.
torch::Device resolve_device(const std::string& name);

// --amp auto: bf16 on a CPU that computes bf16 natively (AVX512-BF16 or
// AMX-BF16), off otherwise; any other mode as given.
std::string resolve_amp(const std::string& amp, const torch::Device& device);
bool cpu_has_native_bf16();

// A run's folder: refused when it already holds checkpoint.pth.tar and this
// is not a resume (naming the flags that fix it); created otherwise.
// Returns the checkpoint's path in it.
std::string guard_output(const std::string& output, bool resuming,
                         bool create = true);

// A run's folder held by this process for the run: OUTPUT/moco.lock, locked
// with flock() and naming the pid and host. A second run on the folder is
// refused naming the first; a lock file left by a process that died (its
// flock went with it) is taken over with a warning. The folder is created
// when missing, and removed again if the run leaves it empty (a failed
// start leaves nothing behind).
class OutputLock {
 public:
  explicit OutputLock(const std::string& dir);
  ~OutputLock();
  OutputLock(const OutputLock&) = delete;
  OutputLock& operator=(const OutputLock&) = delete;

 private:
  std::string dir_, path_;
  int fd_ = -1;
  bool created_ = false;
};

}  // namespace moco::train
