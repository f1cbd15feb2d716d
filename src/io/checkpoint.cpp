#include "io/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include <torch/serialize.h>

#include "io/torch_pickle.h"

namespace fs = std::filesystem;

namespace moco::io {

void atomic_write(const std::string& path, const char* data, size_t size) {
  const fs::path target(path);
  if (target.has_parent_path()) fs::create_directories(target.parent_path());
  const std::string tmp = path + ".tmp";
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
      TORCH_CHECK(false, "cannot write ", path, " (", size, " bytes): ",
                  std::strerror(err), "; the previous file is kept");
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    TORCH_CHECK(false, "cannot write ", path, ": ", std::strerror(err),
                "; the previous file is kept");
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

}  // namespace moco::io
