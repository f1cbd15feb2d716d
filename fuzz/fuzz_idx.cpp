// IDX (MNIST / Fashion-MNIST) images and labels: the input's first byte
// says whether it is gzip'd and which file it is; the other file is a
// valid 2-image set so that both header checks are reached.
#include <zlib.h>

#include "data/dataset.h"
#include "fuzz_common.h"

namespace {

void write(const std::filesystem::path& p, const std::string& bytes, bool gz) {
  if (gz) {
    gzFile f = gzopen(p.c_str(), "wb");
    gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
    gzclose(f);
  } else {
    FILE* f = std::fopen(p.c_str(), "wb");
    std::fwrite(bytes.data(), 1, bytes.size(), f);
    std::fclose(f);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const bool gz = data[0] & 1, labels = data[0] & 2;
  const std::string body(reinterpret_cast<const char*>(data) + 1, size - 1);
  const auto dir = moco::fuzz::scratch() / "idx";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string images =
      std::string("\0\0\x08\x03\0\0\0\x02\0\0\0\x02\0\0\0\x02", 16) +
      std::string(8, '\x7f');
  const std::string labs = std::string("\0\0\x08\x01\0\0\0\x02\x01\x00", 10);
  const std::string ext = gz ? ".gz" : "";
  write(dir / ("train-images-idx3-ubyte" + ext), labels ? images : body, gz);
  write(dir / ("train-labels-idx1-ubyte" + ext), labels ? body : labs, gz);
  moco::fuzz::expect_clean_error(
      [&] { moco::data::open_dataset(dir.string()); });
  return 0;
}
