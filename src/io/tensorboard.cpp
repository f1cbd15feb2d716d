// Written by hand: the three messages need a few bytes of protobuf wire
// format, where Debian's protobuf would bring protoc and generated code into
// the build; Debian 12 packages no C++ CRC32C library (python3-crc32c only).
#include "io/tensorboard.h"

#include "core/files.h"

#include <c10/util/Exception.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstring>
#include <filesystem>

namespace moco::io {

namespace {

std::array<uint32_t, 256> crc_table() {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    t[i] = c;
  }
  return t;
}

// Protocol buffer wire format: varints, tags, length-delimited fields.
void varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out += static_cast<char>((v & 0x7F) | 0x80);
    v >>= 7;
  }
  out += static_cast<char>(v);
}

void tag(std::string& out, int field, int wire_type) {
  varint(out, static_cast<uint64_t>(field) << 3 | static_cast<uint64_t>(wire_type));
}

void bytes_field(std::string& out, int field, const std::string& bytes) {
  tag(out, field, 2);
  varint(out, bytes.size());
  out += bytes;
}

template <class T>
void fixed(std::string& out, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));  // little-endian hosts only (x86, arm64)
  out.append(b, sizeof(T));
}

std::string event(double wall_time, int64_t step) {
  std::string e;
  tag(e, 1, 1);  // wall_time: double
  fixed(e, wall_time);
  tag(e, 2, 0);  // step: int64
  varint(e, static_cast<uint64_t>(step));
  return e;
}

double now() {
  return std::chrono::duration<double>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

uint32_t crc32c(const void* data, size_t size) {
  static const auto table = crc_table();
  uint32_t c = 0xFFFFFFFFu;
  const auto* p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < size; ++i) c = table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

uint32_t masked_crc32c(const void* data, size_t size) {
  const uint32_t c = crc32c(data, size);
  return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

EventWriter::EventWriter(const std::string& dir) {
  std::filesystem::create_directories(dir);
  char host[256] = {0};
  ::gethostname(host, sizeof(host) - 1);
  const double t = now();
  path_ = (std::filesystem::path(dir) /
           ("events.out.tfevents." + std::to_string(static_cast<int64_t>(t)) + "." +
            host + "." + std::to_string(::getpid())))
              .string();
  refuse_link(path_);
  out_.open(path_, std::ios::binary | std::ios::app);
  TORCH_CHECK(out_.good(), "cannot open ", path_, " for writing");
  std::string e = event(t, 0);
  bytes_field(e, 3, "brain.Event:2");  // file_version, first in every file
  record(e);
}

void EventWriter::scalar(const std::string& tag_name, double value, int64_t step,
                         double wall_time) {
  std::string v;
  bytes_field(v, 1, tag_name);  // Summary.Value.tag
  tag(v, 2, 5);                 // simple_value: float
  fixed(v, static_cast<float>(value));
  std::string summary;
  bytes_field(summary, 1, v);  // Summary.value
  std::string e = event(wall_time > 0 ? wall_time : now(), step);
  bytes_field(e, 5, summary);  // Event.summary
  record(e);
}

void EventWriter::record(const std::string& data) {
  std::string r;
  fixed(r, static_cast<uint64_t>(data.size()));
  fixed(r, masked_crc32c(r.data(), 8));
  r += data;
  fixed(r, masked_crc32c(data.data(), data.size()));
  out_.write(r.data(), static_cast<std::streamsize>(r.size()));
  out_.flush();  // TensorBoard shows a live run as it goes
  TORCH_CHECK(out_.good(), "cannot write ", path_, " (disk full?)");
}

}  // namespace moco::io
