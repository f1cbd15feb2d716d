// The formats are a few lines of header over raw bytes; Debian 12 packages
// no C++ library for any of them (cnpy, safetensors-cpp, a pickle writer),
// so they are written here, from their specifications (NumPy's NEP 1 .npy
// format, version 1.0; huggingface/safetensors' README; Python's
// pickletools opcode table and the state NumPy's ndarray.__reduce__ gives).
#include "io/tensor_files.h"

#include <nlohmann/json.hpp>

#include <cstring>
#include <fstream>

#include "io/checkpoint.h"

namespace moco::io {

namespace {

std::string contiguous_bytes(const torch::Tensor& t) {
  auto c = t.detach().cpu().contiguous();
  return std::string(static_cast<const char*>(c.data_ptr()),
                     static_cast<size_t>(c.numel()) * c.element_size());
}

// Pickle opcodes (Python's Lib/pickletools.py).
namespace op {
constexpr char kProto = '\x80', kMark = '(', kStop = '.', kGlobal = 'c',
               kReduce = 'R', kBuild = 'b', kTuple = 't', kTuple1 = '\x85',
               kTuple3 = '\x87', kEmptyTuple = ')', kEmptyDict = '}',
               kSetItems = 'u', kBinInt = 'J', kBinInt1 = 'K', kNone = 'N',
               kTrue = '\x88', kFalse = '\x89', kBinUnicode = 'X',
               kShortBinBytes = 'C', kBinBytes = 'B';
}  // namespace op

void put_u32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out += static_cast<char>((v >> (8 * i)) & 0xFF);
}

void put_str(std::string& out, const std::string& s) {
  out += op::kBinUnicode;
  put_u32(out, static_cast<uint32_t>(s.size()));
  out += s;
}

void put_int(std::string& out, int64_t v) {
  TORCH_CHECK(v >= INT32_MIN && v <= INT32_MAX, "cannot pickle ", v);
  if (v >= 0 && v < 256) {
    out += op::kBinInt1;
    out += static_cast<char>(v);
  } else {
    out += op::kBinInt;
    put_u32(out, static_cast<uint32_t>(static_cast<int32_t>(v)));
  }
}

// What pickle.dumps(numpy_array, protocol=3) holds, without the memo:
// _reconstruct(ndarray, (0,), b'b') then BUILD with the state
// (1, shape, dtype(descr, False, True) built with (3, '<', None, None,
// None, -1, -1, 0), is_fortran False, raw bytes).
void put_ndarray(std::string& out, const std::string& name,
                 const torch::Tensor& t) {
  std::string descr;
  switch (t.scalar_type()) {
    case torch::kFloat32: descr = "f4"; break;
    case torch::kFloat64: descr = "f8"; break;
    case torch::kInt64: descr = "i8"; break;
    default:
      TORCH_CHECK(false, "cannot write ", name, " (", t.scalar_type(),
                  ") in a detectron2 pickle");
  }
  const std::string bytes = contiguous_bytes(t);
  TORCH_CHECK(bytes.size() < (uint64_t{1} << 32), name,
              " is too large for a protocol 3 pickle");
  out += op::kGlobal;
  out += "numpy.core.multiarray\n_reconstruct\n";
  out += op::kGlobal;
  out += "numpy\nndarray\n";
  put_int(out, 0);
  out += op::kTuple1;
  out += op::kShortBinBytes;
  out += '\x01';
  out += 'b';
  out += op::kTuple3;
  out += op::kReduce;
  out += op::kMark;
  put_int(out, 1);
  if (t.dim() == 0) {
    out += op::kEmptyTuple;
  } else {
    out += op::kMark;
    for (int64_t d : t.sizes()) put_int(out, d);
    out += op::kTuple;
  }
  out += op::kGlobal;
  out += "numpy\ndtype\n";
  put_str(out, descr);
  out += op::kFalse;
  out += op::kTrue;
  out += op::kTuple3;
  out += op::kReduce;
  out += op::kMark;
  put_int(out, 3);
  put_str(out, "<");
  out += op::kNone;
  out += op::kNone;
  out += op::kNone;
  put_int(out, -1);
  put_int(out, -1);
  put_int(out, 0);
  out += op::kTuple;
  out += op::kBuild;
  out += op::kFalse;
  out += op::kBinBytes;
  put_u32(out, static_cast<uint32_t>(bytes.size()));
  out += bytes;
  out += op::kTuple;
  out += op::kBuild;
}

}  // namespace

void write_detectron2_pickle(
    const std::string& path,
    const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
    const std::string& author) {
  std::string out;
  out += op::kProto;
  out += '\x03';
  out += op::kEmptyDict;
  out += op::kMark;
  put_str(out, "model");
  out += op::kEmptyDict;
  if (!tensors.empty()) {
    out += op::kMark;
    for (const auto& [name, t] : tensors) {
      put_str(out, name);
      put_ndarray(out, name, t);
    }
    out += op::kSetItems;
  }
  put_str(out, "__author__");
  put_str(out, author);
  put_str(out, "matching_heuristics");
  out += op::kTrue;
  out += op::kSetItems;
  out += op::kStop;
  atomic_write(path, out);
}

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

std::map<std::string, torch::Tensor> read_safetensors(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  TORCH_CHECK(in.good(), "cannot open ", path);
  in.seekg(0, std::ios::end);
  const auto file_size = static_cast<uint64_t>(in.tellg());
  in.seekg(0);
  unsigned char len_bytes[8] = {0};
  TORCH_CHECK(file_size >= 8 && in.read(reinterpret_cast<char*>(len_bytes), 8), path,
              ": too short for safetensors (", file_size, " bytes)");
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = header_len << 8 | len_bytes[i];
  TORCH_CHECK(header_len <= file_size - 8 && header_len <= (uint64_t{100} << 20), path,
              ": its safetensors header claims ", header_len, " bytes in a file of ",
              file_size);
  std::string header(header_len, '\0');
  TORCH_CHECK(in.read(header.data(), static_cast<std::streamsize>(header_len)), "cannot read ",
              path);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(header);
  } catch (const std::exception& e) {
    TORCH_CHECK(false, path, ": the safetensors header is not JSON (", e.what(), ")");
  }
  TORCH_CHECK(j.is_object(), path, ": the safetensors header is not a JSON object");
  const uint64_t data_size = file_size - 8 - header_len;
  static const std::map<std::string, std::pair<torch::ScalarType, uint64_t>> kTypes = {
      {"F32", {torch::kFloat32, 4}}, {"F64", {torch::kFloat64, 8}},
      {"F16", {torch::kFloat16, 2}}, {"BF16", {torch::kBFloat16, 2}},
      {"I64", {torch::kInt64, 8}},   {"I32", {torch::kInt32, 4}},
      {"U8", {torch::kUInt8, 1}},    {"BOOL", {torch::kBool, 1}}};
  std::map<std::string, torch::Tensor> out;
  for (const auto& [name, e] : j.items()) {
    if (name == "__metadata__") continue;
    try {
      const auto type = kTypes.find(e.at("dtype").get<std::string>());
      TORCH_CHECK(type != kTypes.end(), "dtype ", e.at("dtype").dump(), " is not one moco reads");
      std::vector<int64_t> shape;
      uint64_t count = 1;
      for (const auto& d : e.at("shape")) {
        const auto v = d.get<int64_t>();
        TORCH_CHECK(v >= 0 && v < (int64_t{1} << 40), "bad dimension ", v);
        shape.push_back(v);
        TORCH_CHECK(v == 0 || count <= data_size / static_cast<uint64_t>(v), "larger than the file");
        count *= static_cast<uint64_t>(v);
      }
      const auto& off = e.at("data_offsets");
      TORCH_CHECK(off.size() == 2, "data_offsets is not [begin, end]");
      const auto begin = off[0].get<uint64_t>(), end = off[1].get<uint64_t>();
      TORCH_CHECK(begin <= end && end <= data_size, "data_offsets [", begin, ", ", end,
                  "] outside the ", data_size, " bytes of data");
      TORCH_CHECK(end - begin == count * type->second.second, "data_offsets hold ", end - begin,
                  " bytes for ", count, " elements of ", type->first);
      auto t = torch::empty(shape, torch::TensorOptions().dtype(type->second.first));
      in.seekg(static_cast<std::streamoff>(8 + header_len + begin));
      TORCH_CHECK(in.read(static_cast<char*>(t.data_ptr()), static_cast<std::streamsize>(end - begin)),
                  "cannot read its bytes");
      out[name] = t;
    } catch (const c10::Error& err) {
      TORCH_CHECK(false, path, ": tensor '", name, "': ", err.what_without_backtrace());
    } catch (const std::exception& err) {
      TORCH_CHECK(false, path, ": tensor '", name, "': ", err.what());
    }
  }
  return out;
}

}  // namespace moco::io
