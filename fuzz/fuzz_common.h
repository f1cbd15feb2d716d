// What every fuzz target shares: the input written to a file (moco's
// readers take paths, as users give them), one per process and reused.
//
//   extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
//     const auto path = moco::fuzz::as_file(data, size, "x.pth");
//     moco::fuzz::expect_clean_error([&] { moco::io::read_torch_file(path); });
//     return 0;
//   }
#pragma once

#include <c10/util/Exception.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>

namespace moco::fuzz {

inline const std::filesystem::path& scratch() {
  static const std::filesystem::path dir = [] {
    auto d = std::filesystem::temp_directory_path() /
             ("moco-fuzz-" + std::to_string(::getpid()));
    std::filesystem::create_directories(d);
    return d;
  }();
  return dir;
}

// The input as the file `name` under this process's scratch folder.
inline std::string as_file(const uint8_t* data, size_t size,
                           const std::string& name) {
  const auto path = (scratch() / name).string();
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) std::abort();
  if (size > 0 && std::fwrite(data, 1, size, f) != size) std::abort();
  std::fclose(f);
  return path;
}

// A reader may refuse an input only with c10::Error, moco's "clear error
// naming the file"; anything else (a crash, std::bad_alloc, an uncaught
// std::exception, a sanitizer report) is a finding.
template <typename F>
void expect_clean_error(F&& f) {
  try {
    f();
  } catch (const c10::Error&) {
  }
}

}  // namespace moco::fuzz
