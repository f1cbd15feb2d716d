#include "data/dataset.h"

#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <memory>

#include "core/log.h"

namespace fs = std::filesystem;

namespace moco::data {

namespace {

uint32_t read_be32(const uint8_t* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) |
         (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}

std::optional<std::string> first_existing(
    const fs::path& dir, std::initializer_list<const char*> names) {
  for (const char* n : names) {
    if (fs::exists(dir / n)) return (dir / n).string();
  }
  return std::nullopt;
}

}  // namespace

std::vector<uint8_t> read_maybe_gzip(const std::string& path) {
  TORCH_CHECK(fs::exists(path), "dataset file not found: ", path);
  TORCH_CHECK(fs::is_regular_file(path), "expected a file, got a directory: ",
              path);
  // gzread passes plain files through unchanged, so one path serves both.
  std::unique_ptr<gzFile_s, int (*)(gzFile)> f(gzopen(path.c_str(), "rb"),
                                               &gzclose);
  TORCH_CHECK(f != nullptr, "cannot open ", path);
  std::vector<uint8_t> out;
  std::vector<uint8_t> buf(1 << 20);
  while (true) {
    const int n = gzread(f.get(), buf.data(), static_cast<unsigned>(buf.size()));
    if (n < 0) {
      int errnum = 0;
      const char* msg = gzerror(f.get(), &errnum);
      TORCH_CHECK(false, "corrupt or truncated file ", path, ": ", msg);
    }
    if (n == 0) break;
    out.insert(out.end(), buf.begin(), buf.begin() + n);
  }
  // zlib reports a gzip stream cut short only through gzerror at EOF.
  int errnum = 0;
  gzerror(f.get(), &errnum);
  TORCH_CHECK(errnum == Z_OK || errnum == Z_STREAM_END,
              "corrupt or truncated gzip file ", path);
  return out;
}

ImageSet load_idx(const std::string& images_path,
                  const std::string& labels_path) {
  const auto img = read_maybe_gzip(images_path);
  TORCH_CHECK(img.size() >= 16, "expected an IDX image file, got ", img.size(),
              " bytes: ", images_path);
  const uint32_t magic = read_be32(img.data());
  TORCH_CHECK(magic == 0x00000803,
              "expected IDX magic 0x00000803 (uint8, 3 dims), got 0x", std::hex,
              magic, ": ", images_path);
  const int64_t n = read_be32(img.data() + 4);
  const int64_t h = read_be32(img.data() + 8);
  const int64_t w = read_be32(img.data() + 12);
  TORCH_CHECK(n > 0 && h > 0 && w > 0, "expected a non-empty IDX image file, ",
              "got ", n, "x", h, "x", w, ": ", images_path);
  const size_t want = 16 + static_cast<size_t>(n * h * w);
  TORCH_CHECK(img.size() == want, "IDX file is truncated or has trailing data:",
              " expected ", want, " bytes for ", n, "x", h, "x", w, ", got ",
              img.size(), ": ", images_path);
  ImageSet set;
  set.images = torch::from_blob(const_cast<uint8_t*>(img.data()) + 16,
                                {n, 1, h, w}, torch::kUInt8)
                   .clone();
  set.description = "IDX " + images_path;
  if (!labels_path.empty()) {
    const auto lab = read_maybe_gzip(labels_path);
    TORCH_CHECK(lab.size() >= 8 && read_be32(lab.data()) == 0x00000801,
                "expected an IDX label file (magic 0x00000801): ", labels_path);
    const int64_t nl = read_be32(lab.data() + 4);
    TORCH_CHECK(nl == n, "expected ", n, " labels to match ", images_path,
                ", got ", nl, ": ", labels_path);
    TORCH_CHECK(lab.size() == 8 + static_cast<size_t>(n),
                "IDX label file is truncated: expected ", 8 + n, " bytes, got ",
                lab.size(), ": ", labels_path);
    set.labels = torch::from_blob(const_cast<uint8_t*>(lab.data()) + 8, {n},
                                  torch::kUInt8)
                     .to(torch::kInt64);
    set.num_classes = set.labels.max().item<int64_t>() + 1;
  }
  return set;
}

ImageSet load_cifar(const std::vector<std::string>& files, bool cifar100) {
  const int64_t label_bytes = cifar100 ? 2 : 1;
  const int64_t record = label_bytes + 3 * 32 * 32;
  std::vector<torch::Tensor> images, labels;
  for (const auto& path : files) {
    const auto bytes = read_maybe_gzip(path);
    TORCH_CHECK(!bytes.empty() && bytes.size() % record == 0,
                "expected a CIFAR-", cifar100 ? "100" : "10",
                " binary file of whole ", record, "-byte records, got ",
                bytes.size(), " bytes: ", path);
    const int64_t n = static_cast<int64_t>(bytes.size()) / record;
    auto all = torch::from_blob(const_cast<uint8_t*>(bytes.data()),
                                {n, record}, torch::kUInt8);
    images.push_back(
        all.slice(1, label_bytes, record).reshape({n, 3, 32, 32}).clone());
    labels.push_back(all.select(1, label_bytes - 1).to(torch::kInt64));
  }
  ImageSet set;
  set.images = torch::cat(images);
  set.labels = torch::cat(labels);
  set.num_classes = cifar100 ? 100 : 10;
  TORCH_CHECK(set.labels.max().item<int64_t>() < set.num_classes,
              "CIFAR label out of range in ", files.front());
  set.description = std::string(cifar100 ? "CIFAR-100 " : "CIFAR-10 ") +
                    fs::path(files.front()).parent_path().string();
  return set;
}

Splits open_dataset(const std::string& path) {
  TORCH_CHECK(fs::exists(path), "dataset not found: ", path);
  fs::path dir(path);
  if (!fs::is_directory(dir)) {
    TORCH_CHECK(false, "expected a dataset folder, got a file: ", path);
  }
  if (fs::exists(dir / "cifar-10-batches-bin")) dir /= "cifar-10-batches-bin";
  if (fs::exists(dir / "cifar-100-binary")) dir /= "cifar-100-binary";

  if (auto train = first_existing(
          dir, {"train-images-idx3-ubyte.gz", "train-images-idx3-ubyte",
                "train-images.idx3-ubyte"})) {
    auto train_labels = first_existing(
        dir, {"train-labels-idx1-ubyte.gz", "train-labels-idx1-ubyte",
              "train-labels.idx1-ubyte"});
    Splits s;
    s.train = load_idx(*train, train_labels.value_or(""));
    auto test = first_existing(
        dir, {"t10k-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte",
              "t10k-images.idx3-ubyte"});
    auto test_labels = first_existing(
        dir, {"t10k-labels-idx1-ubyte.gz", "t10k-labels-idx1-ubyte",
              "t10k-labels.idx1-ubyte"});
    if (test && test_labels) s.test = load_idx(*test, *test_labels);
    return s;
  }
  if (fs::exists(dir / "data_batch_1.bin")) {
    std::vector<std::string> files;
    for (int i = 1; i <= 5; ++i) {
      const auto f = dir / ("data_batch_" + std::to_string(i) + ".bin");
      TORCH_CHECK(fs::exists(f), "CIFAR-10 folder is missing ", f.string());
      files.push_back(f.string());
    }
    Splits s;
    s.train = load_cifar(files, false);
    if (fs::exists(dir / "test_batch.bin")) {
      s.test = load_cifar({(dir / "test_batch.bin").string()}, false);
    }
    return s;
  }
  if (fs::exists(dir / "train.bin")) {
    Splits s;
    s.train = load_cifar({(dir / "train.bin").string()}, true);
    if (fs::exists(dir / "test.bin")) {
      s.test = load_cifar({(dir / "test.bin").string()}, true);
    }
    return s;
  }
  TORCH_CHECK(false, "no dataset recognised in ", path,
              ": expected IDX files (train-images-idx3-ubyte[.gz]), CIFAR-10 "
              "(data_batch_1.bin ...) or CIFAR-100 (train.bin)");
}

}  // namespace moco::data
