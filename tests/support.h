// Helpers shared by the tests: scratch folders, fixtures written on the fly,
// and running Python torch/torchvision as the independent reference: the
// Python of the LibTorch built against (MOCO_TEST_PYTHON from CMake: Debian's
// /usr/bin/python3 for Debian's LibTorch, the venv's for a wheel's).
#pragma once

#include <gtest/gtest.h>
#include <torch/torch.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>

#include "io/checkpoint.h"

namespace moco::test {

namespace fs = std::filesystem;

// The one folder a test process writes under, removed when the process
// exits: tests write checkpoints of tens of MB and CI disks are small (a run
// that left them behind filled one). MOCO_KEEP_TEST_FILES=1 keeps it.
inline const fs::path& process_scratch_root() {
  struct Root {
    fs::path path = fs::temp_directory_path() /
                    ("moco-test-" + std::to_string(::getpid()));
    Root() { fs::create_directories(path); }
    ~Root() {
      if (std::getenv("MOCO_KEEP_TEST_FILES") == nullptr) {
        std::error_code ec;
        fs::remove_all(path, ec);
      }
    }
  };
  static const Root root;
  return root.path;
}

// A folder under the process's scratch root shared by a whole test suite
// (SetUpTestSuite runs outside any one test, so scratch_dir cannot name it).
inline fs::path suite_scratch_dir(const std::string& name) {
  const fs::path dir = process_scratch_root() / name;
  fs::create_directories(dir);
  return dir;
}

inline fs::path scratch_dir(const std::string& name) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  fs::path dir = process_scratch_root() /
                 (std::string(info->test_suite_name()) + "." + info->name() +
                  "." + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

// Runs a shell command, returns its exit status; output goes to `log`.
inline int run_command(const std::string& cmd, const std::string& log) {
  const std::string full = cmd + " > '" + log + "' 2>&1";
  const int rc = std::system(full.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

inline std::string read_text(const fs::path& p) {
  std::ifstream in(p);
  return std::string((std::istreambuf_iterator<char>(in)),
                     std::istreambuf_iterator<char>());
}

// The reference Python, quoted for a shell command line.
inline std::string python() { return "'" + std::string(MOCO_TEST_PYTHON) + "'"; }

// torchrun of that Python's torch.
inline std::string torchrun() {
  return (fs::path(MOCO_TEST_PYTHON).parent_path() / "torchrun").string();
}

inline std::string python_script(const std::string& name) {
  return std::string(MOCO_SOURCE_DIR) + "/tests/python/" + name;
}

// Runs tests/python/NAME with args through python(); fails the test
// with the script's output if it exits non-zero.
inline void run_python(const std::string& name, const std::string& args,
                       const fs::path& dir) {
  const auto log = (dir / (name + ".log")).string();
  const int rc = run_command(
      python() + " '" + python_script(name) + "' " + args, log);
  ASSERT_EQ(rc, 0) << "python reference failed:\n" << read_text(log);
}

// Bytes of an IDX file: magic, dims (big-endian), data.
inline std::string idx_bytes(const torch::Tensor& t_u8, bool images) {
  std::string out;
  auto be32 = [&](uint32_t v) {
    for (int s = 24; s >= 0; s -= 8) out.push_back(char((v >> s) & 0xff));
  };
  be32(images ? 0x00000803 : 0x00000801);
  for (auto d : t_u8.sizes()) be32(static_cast<uint32_t>(d));
  auto c = t_u8.contiguous();
  out.append(reinterpret_cast<const char*>(c.data_ptr<uint8_t>()),
             static_cast<size_t>(c.numel()));
  return out;
}

inline void write_file(const fs::path& p, const std::string& bytes,
                       bool gzip = false) {
  if (gzip) {
    gzFile f = gzopen(p.c_str(), "wb");
    ASSERT_NE(f, nullptr);
    gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
    gzclose(f);
  } else {
    std::ofstream out(p, std::ios::binary);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }
}

// A tiny Fashion-MNIST-like IDX dataset: n train and n/2 test images of
// size x size, `classes` classes, each class a different bright stripe.
inline void write_idx_dataset(const fs::path& dir, int64_t n, int64_t size,
                              int64_t classes, bool gzip = true) {
  auto make = [&](int64_t count, uint64_t seed) {
    torch::manual_seed(seed);
    auto labels = torch::arange(count) % classes;
    auto imgs = torch::randint(0, 60, {count, size, size});
    for (int64_t i = 0; i < count; ++i) {
      const int64_t c = labels[i].item<int64_t>();
      const int64_t row = (c * size) / classes;
      imgs[i].slice(0, row, row + std::max<int64_t>(1, size / classes))
          .fill_(220);
    }
    return std::make_pair(imgs.to(torch::kUInt8), labels.to(torch::kUInt8));
  };
  const std::string ext = gzip ? ".gz" : "";
  auto [tr_x, tr_y] = make(n, 1);
  auto [te_x, te_y] = make(n / 2, 2);
  write_file(dir / ("train-images-idx3-ubyte" + ext), idx_bytes(tr_x, true),
             gzip);
  write_file(dir / ("train-labels-idx1-ubyte" + ext), idx_bytes(tr_y, false),
             gzip);
  write_file(dir / ("t10k-images-idx3-ubyte" + ext), idx_bytes(te_x, true),
             gzip);
  write_file(dir / ("t10k-labels-idx1-ubyte" + ext), idx_bytes(te_y, false),
             gzip);
}

// CIFAR-10 binaries: n training and n/2 test images of 32 x 32, the class a
// bright horizontal band.
inline void write_cifar(const fs::path& dir, int n) {
  fs::create_directories(dir);
  auto make = [&](int count, unsigned seed) {
    std::string bytes;
    std::mt19937 rng(seed);
    for (int i = 0; i < count; ++i) {
      const int label = i % 4;
      bytes.push_back(static_cast<char>(label));
      for (int c = 0; c < 3; ++c) {
        for (int y = 0; y < 32; ++y) {
          for (int x = 0; x < 32; ++x) {
            const bool band = y / 8 == label;
            bytes.push_back(static_cast<char>(band ? 200 + rng() % 40 : rng() % 60));
          }
        }
      }
    }
    return bytes;
  };
  for (int b = 1; b <= 5; ++b) {
    test::write_file(dir / ("data_batch_" + std::to_string(b) + ".bin"),
                     make(n / 5, b));
  }
  test::write_file(dir / "test_batch.bin", make(n / 2, 9));
}

// Saves tensors as a plain {name: tensor} dict that torch.load reads.
inline void save_tensors(const fs::path& p,
                         const std::vector<std::pair<std::string,
                                                     torch::Tensor>>& items) {
  c10::impl::GenericDict d(c10::StringType::get(), c10::AnyType::get());
  for (const auto& [k, v] : items) d.insert(k, v);
  io::save_pickle(p.string(), d);
}

inline std::map<std::string, torch::Tensor> load_tensors(const fs::path& p) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& e : io::load_pickle(p.string()).toGenericDict()) {
    out[e.key().toStringRef()] = e.value().toTensor();
  }
  return out;
}

// Copies every parameter and buffer of `from` into the same-named one of
// `to` (two modules built alike), so both start from one state.
inline void copy_state(torch::nn::Module& from, torch::nn::Module& to) {
  torch::NoGradGuard no_grad;
  auto params = from.named_parameters();
  for (auto& p : to.named_parameters()) p.value().copy_(params[p.key()]);
  auto buffers = from.named_buffers();
  for (auto& b : to.named_buffers()) b.value().copy_(buffers[b.key()]);
}

inline std::string moco_binary() { return MOCO_BINARY; }

// A TCP port on 127.0.0.1 that nothing listens on now: tests that start
// their own rendezvous take one each, so `ctest -j` runs them side by side.
inline int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
                  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0;
  ::close(fd);
  return ok ? ntohs(addr.sin_port) : 0;
}

// A shell command's exit status and output (stdout and stderr, via a log
// file in dir).
struct CommandResult {
  int rc;
  std::string out;
};

inline CommandResult run_capture(const std::string& cmd, const fs::path& dir) {
  const auto log = (dir / "out.log").string();
  const int rc = run_command("(" + cmd + ")", log);
  return {rc, read_text(log)};
}

// The moco binary with `args`, as a user runs it.
inline CommandResult run_moco(const std::string& args, const fs::path& dir) {
  return run_capture("'" + moco_binary() + "' " + args, dir);
}

// Pretraining flags for a run of seconds on a tiny dataset; --output last.
constexpr const char* kTinyRun =
    " -b 8 --bn-splits 2 --moco-k 16 --epochs 1 --threads 2 -j 1 "
    "--knn-k 5 --no-progress --output ";

// The message of the c10::Error that f throws; records a test failure and
// returns "" when f throws none.
template <typename F>
std::string error_message(F&& f) {
  try {
    f();
  } catch (const c10::Error& e) {
    return e.what_without_backtrace();
  }
  ADD_FAILURE() << "expected a c10::Error";
  return "";
}

// Runs f; past `seconds` the test process ends with a message naming
// `what`, so a deadlock fails the test instead of stalling the suite. Not
// a timing check: the limit is minutes over what the work takes.
template <typename F>
void within(double seconds, const std::string& what, F&& f) {
  auto done = std::make_shared<std::atomic<bool>>(false);
  std::thread([done, seconds, what] {
    const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (!*done) {
      if (std::chrono::steady_clock::now() > end) {
        std::fprintf(stderr, "FAILED: %s did not end within %.0f s (a hang)\n", what.c_str(),
                     seconds);
        std::fflush(stderr);
        std::_Exit(3);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }).detach();
  try {
    f();
  } catch (...) {
    *done = true;
    throw;
  }
  *done = true;
}

}  // namespace moco::test
