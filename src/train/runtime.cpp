#include "train/runtime.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <torch/torch.h>

#include <filesystem>
#include <regex>
#include <fstream>
#include <sstream>
#include <thread>

#include "core/log.h"

namespace moco::train {

namespace fs = std::filesystem;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

int64_t cores() {
  return std::max<int64_t>(1, std::thread::hardware_concurrency());
}

int64_t use_threads(int64_t threads, int64_t processes_here) {
  TORCH_CHECK(threads >= 0, "expected --threads >= 0, got ", threads);
  const int64_t n =
      threads > 0 ? threads
                  : std::max<int64_t>(1, cores() / std::max<int64_t>(1, processes_here));
  at::set_num_threads(static_cast<int>(n));
  return n;
}

int64_t resolve_workers(int64_t workers, int64_t processes_here) {
  if (workers >= 0) return workers;
  const int64_t share =
      std::max<int64_t>(1, cores() / std::max<int64_t>(1, processes_here));
  return std::max<int64_t>(1, share - 1);
}

torch::Device resolve_device(const std::string& name) {
  TORCH_CHECK(name == "cpu" || name.rfind("cuda", 0) == 0,
              "expected --device cpu or cuda[:N], got '", name, "'");
  const torch::Device d(name);
  TORCH_CHECK(!d.is_cuda() || torch::cuda::is_available(), "--device ", name,
              " asked for, but this build of LibTorch has no CUDA or no GPU ",
              "is visible");
  return d;
}

bool cpu_has_native_bf16() {
  // /proc/cpuinfo's flags, as the kernel reports them: what oneDNN's bf16
  // kernels need to run at full speed rather than emulated.
  static const bool has = [] {
    std::ifstream in("/proc/cpuinfo");
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind("flags", 0) != 0) continue;
      std::istringstream words(line);
      std::string w;
      while (words >> w) {
        if (w == "avx512_bf16" || w == "amx_bf16") return true;
      }
      return false;
    }
    return false;
  }();
  return has;
}

std::string resolve_amp(const std::string& amp, const torch::Device& device) {
  if (amp != "auto") return amp;
  return !device.is_cuda() && cpu_has_native_bf16() ? "bf16" : "off";
}

std::string guard_output(const std::string& output, bool resuming,
                         bool create) {
  const fs::path dir(output);
  const std::string ckpt = (dir / "checkpoint.pth.tar").string();
  TORCH_CHECK(resuming || !fs::exists(ckpt), "--output ", output,
              " already holds a checkpoint; pass --resume ", ckpt,
              " to continue it, or choose another --output");
  if (create) fs::create_directories(dir);
  return ckpt;
}

namespace {

// Who holds a lock file, as "pid N on HOST" and nothing else of what it
// holds: the file may have been written by anyone.
std::string lock_holder(int fd) {
  std::string text(256, '\0');
  const ssize_t n = ::pread(fd, text.data(), text.size(), 0);
  text.resize(n > 0 ? static_cast<size_t>(n) : 0);
  if (text.empty()) return "";
  static const std::regex record(R"(pid ([0-9]{1,10}) on ([A-Za-z0-9._-]{0,64})\n?\0*)");
  std::smatch m;
  if (!std::regex_match(text, m, record)) return "a lock file moco did not write";
  return "pid " + m[1].str() + " on " + (m[2].length() ? m[2].str() : "an unnamed host");
}

}  // namespace

OutputLock::OutputLock(const std::string& dir) : dir_(dir) {
  const fs::path d(dir);
  created_ = !fs::exists(d);
  fs::create_directories(d);
  path_ = (d / "moco.lock").string();
  // Not through a link, and only a regular file: a planted moco.lock must
  // not get a file outside --output truncated.
  fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
  TORCH_CHECK(fd_ >= 0 || errno != ELOOP, path_,
              " is a symbolic link; moco does not write through links in --output (remove it)");
  TORCH_CHECK(fd_ >= 0, "cannot create ", path_, ": ", std::strerror(errno));
  struct stat st {};
  if (::fstat(fd_, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd_);
    fd_ = -1;
    TORCH_CHECK(false, path_, " is not a regular file; remove it");
  }
  const std::string holder = lock_holder(fd_);
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd_);
    fd_ = -1;
    TORCH_CHECK(false, "--output ", dir, " is in use by another moco run (",
                holder.empty() ? "see " + path_ : holder,
                "); wait for it, stop it, or choose another --output");
  }
  if (!holder.empty()) {
    log_warn("--output ", dir, ": taking over the lock of a run that is gone (",
             holder, ")");
  }
  char host[256] = {0};
  ::gethostname(host, sizeof(host) - 1);
  const std::string me = "pid " + std::to_string(::getpid()) + " on " + host + "\n";
  if (::ftruncate(fd_, 0) != 0 ||
      ::pwrite(fd_, me.data(), me.size(), 0) != static_cast<ssize_t>(me.size())) {
    log_warn("cannot write ", path_, ": ", std::strerror(errno));
  }
}

OutputLock::~OutputLock() {
  if (fd_ < 0) return;
  ::unlink(path_.c_str());
  ::close(fd_);
  std::error_code ec;
  if (created_ && fs::is_empty(dir_, ec) && !ec) fs::remove(dir_, ec);
}

}  // namespace moco::train
