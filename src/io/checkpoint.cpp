#include "io/checkpoint.h"

#include <fcntl.h>
#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/jit/serialization/export.h>
#include <torch/csrc/jit/serialization/pickler.h>
#include <torch/serialize.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "core/files.h"
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
  const int fd = open_new_file(tmp);
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

namespace {

// Typed lists become lists of IValues: the Pickler writes an int, float,
// bool or tensor list through torch.jit._pickle.build_intlist and the like,
// more globals that torch.load(weights_only=True) refuses. (isList() holds
// for every list, typed or not.)
c10::IValue plain(const c10::IValue& v) {
  if (v.isList()) {
    c10::impl::GenericList out(c10::AnyType::get());
    for (const auto& e : v.toListRef()) out.push_back(plain(e));
    return out;
  }
  if (v.isGenericDict()) {
    const auto in = v.toGenericDict();
    c10::impl::GenericDict out(in.keyType(), c10::AnyType::get());
    for (const auto& kv : in) out.insert(kv.key(), plain(kv.value()));
    return out;
  }
  if (v.isTuple()) {
    std::vector<c10::IValue> items;
    for (const auto& e : v.toTupleRef().elements()) items.push_back(plain(e));
    return c10::ivalue::Tuple::create(std::move(items));
  }
  return v;
}

// torch::pickle_save, less the type tags: its Pickler wraps each dict and
// list in torch.jit._pickle.restore_type_tag, a global that Python's
// torch.load refuses by default since 2.6 (weights_only=True). Untagged,
// the file holds only what torch.save's own pickles hold: dicts, lists,
// strings, numbers and _rebuild_tensor_v2.
std::vector<char> pickle_untagged(const c10::IValue& value) {
  std::vector<char> pickle_data;
  torch::jit::Pickler pickler(
      [&](const char* buf, size_t size) {
        pickle_data.insert(pickle_data.end(), buf, buf + size);
      },
      /*tensor_table=*/nullptr, /*type_renamer=*/nullptr,
      /*memoized_class_types=*/nullptr, /*get_tensor_id=*/nullptr,
      /*tag_aggregates=*/false);
  pickler.protocol();
  pickler.pushIValue(plain(value));
  pickler.stop();
  std::vector<char> container;
  caffe2::serialize::PyTorchStreamWriter writer([&](const void* bytes, size_t len) {
    const char* b = static_cast<const char*>(bytes);
    container.insert(container.end(), b, b + len);
    return len;
  });
  torch::jit::writeArchiveAndTensors("data", pickle_data.data(), pickle_data.size(),
                                     pickler.tensorData(), writer);
  writer.writeEndOfFile();
  return container;
}

}  // namespace

void save_pickle(const std::string& path, const c10::IValue& value) {
  const std::vector<char> bytes = pickle_untagged(value);
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
