// Both formats are a few lines of header over raw bytes; Debian 12 packages
// no C++ library for either (cnpy, safetensors-cpp), so they are written
// here, from the format specifications (NumPy's NEP 1 .npy format, version
// 1.0; huggingface/safetensors' README).
#include "io/tensor_files.h"

#include <nlohmann/json.hpp>

#include <cstring>

#include "io/checkpoint.h"

namespace moco::io {

namespace {

std::string contiguous_bytes(const torch::Tensor& t) {
  auto c = t.detach().cpu().contiguous();
  return std::string(static_cast<const char*>(c.data_ptr()),
                     static_cast<size_t>(c.numel()) * c.element_size());
}

}  // namespace

void write_npy(const std::string& path, const torch::Tensor& t) {
  std::string descr;
  switch (t.scalar_type()) {
    case torch::kFloat32: descr = "<f4"; break;
    case torch::kFloat64: descr = "<f8"; break;
    case torch::kInt64: descr = "<i8"; break;
    case torch::kInt32: descr = "<i4"; break;
    case torch::kUInt8: descr = "|u1"; break;
    case torch::kBool: descr = "|b1"; break;
    default:
      TORCH_CHECK(false, "cannot write a ", t.scalar_type(), " tensor as .npy");
  }
  std::string shape = "(";
  for (int64_t i = 0; i < t.dim(); ++i) {
    shape += std::to_string(t.size(i));
    if (t.dim() == 1 || i + 1 < t.dim()) shape += ",";
    if (i + 1 < t.dim()) shape += " ";
  }
  shape += ")";
  std::string header = "{'descr': '" + descr +
                       "', 'fortran_order': False, 'shape': " + shape + ", }";
  // Magic (6) + version (2) + length (2) + header + '\n', padded to 64.
  const size_t unpadded = 10 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header += '\n';
  std::string out = "\x93NUMPY";
  out += '\x01';
  out += '\x00';
  const uint16_t len = static_cast<uint16_t>(header.size());
  out += static_cast<char>(len & 0xFF);
  out += static_cast<char>(len >> 8);
  out += header;
  out += contiguous_bytes(t);
  atomic_write(path, out);
}

void write_safetensors(
    const std::string& path,
    const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
    const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::string data;
  for (const auto& [name, t] : tensors) {
    std::string dtype;
    switch (t.scalar_type()) {
      case torch::kFloat32: dtype = "F32"; break;
      case torch::kFloat64: dtype = "F64"; break;
      case torch::kFloat16: dtype = "F16"; break;
      case torch::kBFloat16: dtype = "BF16"; break;
      case torch::kInt64: dtype = "I64"; break;
      case torch::kInt32: dtype = "I32"; break;
      case torch::kUInt8: dtype = "U8"; break;
      case torch::kBool: dtype = "BOOL"; break;
      default:
        TORCH_CHECK(false, "cannot write ", name, " (", t.scalar_type(),
                    ") as safetensors");
    }
    const size_t begin = data.size();
    data += contiguous_bytes(t);
    header[name] = {{"dtype", dtype},
                    {"shape", t.sizes().vec()},
                    {"data_offsets", {begin, data.size()}}};
  }
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');  // keeps the data 8-byte aligned
  std::string out(8, '\0');
  const uint64_t n = h.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xFF);
  out += h;
  out += data;
  atomic_write(path, out);
}

}  // namespace moco::io
