#include "io/checkpoint.h"

#include <fcntl.h>
#include <torch/serialize.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "core/signals.h"
#include "io/torch_pickle.h"

namespace fs = std::filesystem;

namespace moco::io {

void atomic_write(const std::string& path, const char* data, size_t size) {
  const fs::path target(path);
  if (target.has_parent_path()) fs::create_directories(target.parent_path());
  const std::string tmp = path + ".tmp";
  // "the previous file is kept" only where there is one.
  const char* kept = fs::exists(target) ? "; the previous file is kept"
                                        : "; nothing was written";
  const PartialFile partial(tmp);
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  TORCH_CHECK(fd >= 0, "cannot write ", tmp, ": ", std::strerror(errno));
  size_t done = 0;
  while (done < size) {
    const ssize_t n = ::write(fd, data + done, size - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      TORCH_CHECK(false, "cannot write ", path, " (", size,
                  " bytes): ", std::strerror(err), kept);
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    TORCH_CHECK(false, "cannot write ", path, ": ", std::strerror(err), kept);
  }
  TORCH_CHECK(::rename(tmp.c_str(), path.c_str()) == 0, "cannot rename ", tmp,
              " to ", path, ": ", std::strerror(errno));
}

void atomic_write(const std::string& path, const std::string& data) {
  atomic_write(path, data.data(), data.size());
}

void save_pickle(const std::string& path, const c10::IValue& value) {
  const std::vector<char> bytes = torch::pickle_save(value);
  atomic_write(path, bytes.data(), bytes.size());
}

c10::IValue load_pickle(const std::string& path) {
  return read_torch_file(path);
}

c10::impl::GenericDict new_dict() {
  return c10::impl::GenericDict(c10::StringType::get(), c10::AnyType::get());
}

c10::IValue dict_get(const c10::IValue& dict, const std::string& key,
                     const std::string& path) {
  TORCH_CHECK(dict.isGenericDict(), "expected a dict in ", path, ", got ",
              dict.tagKind());
  auto d = dict.toGenericDict();
  auto it = d.find(c10::IValue(key));
  TORCH_CHECK(it != d.end(), "expected key '", key, "' in ", path);
  return it->value();
}

int64_t dict_int(const c10::IValue& dict, const std::string& key,
                 const std::string& path, int64_t lo, int64_t hi) {
  const auto v = dict_get(dict, key, path);
  TORCH_CHECK(v.isInt(), "checkpoint ", path, ": expected '", key,
              "' to be an integer, got ", v.tagKind());
  TORCH_CHECK(v.toInt() >= lo && v.toInt() <= hi, "checkpoint ", path,
              ": expected '", key, "' in [", lo, ", ", hi, "], got ",
              v.toInt());
  return v.toInt();
}

double dict_double(const c10::IValue& dict, const std::string& key,
                   const std::string& path) {
  const auto v = dict_get(dict, key, path);
  TORCH_CHECK(v.isDouble() || v.isInt(), "checkpoint ", path, ": expected '",
              key, "' to be a number, got ", v.tagKind());
  const double x = v.isDouble() ? v.toDouble() : static_cast<double>(v.toInt());
  TORCH_CHECK(std::isfinite(x), "checkpoint ", path, ": '", key, "' is ", x);
  return x;
}

std::vector<std::string> non_finite_tensors(
    const std::vector<std::pair<std::string, at::Tensor>>& tensors) {
  std::vector<std::string> bad;
  for (const auto& [name, t] : tensors) {
    if (t.is_floating_point() && t.numel() > 0 &&
        !at::isfinite(t).all().item<bool>()) {
      bad.push_back(name);
    }
  }
  return bad;
}

}  // namespace moco::io
