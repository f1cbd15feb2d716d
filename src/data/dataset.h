// In-memory image datasets: IDX (MNIST / Fashion-MNIST) and CIFAR binaries.
//
// Images are held as one uint8 tensor N x C x H x W; labels as int64 N.
//
//   auto splits = moco::data::open_dataset("/usr/share/datasets/fashion-mnist");
//   splits.train.images.size(0);   // 60000
//   splits.test->labels[0];        // class of the first test image
#pragma once

#include <torch/types.h>

#include <optional>
#include <string>
#include <vector>

namespace moco::data {

struct ImageSet {
  torch::Tensor images;  // uint8, N x C x H x W
  torch::Tensor labels;  // int64, N; undefined when unlabelled
  int64_t num_classes = 0;
  std::string description;  // format and path, for logs

  int64_t size() const { return images.defined() ? images.size(0) : 0; }
  int64_t channels() const { return images.size(1); }
  int64_t height() const { return images.size(2); }
  int64_t width() const { return images.size(3); }
  bool labelled() const { return labels.defined(); }
};

struct Splits {
  ImageSet train;
  std::optional<ImageSet> test;  // labelled test split, when the format has one
};

// Where Debian's dataset-fashion-mnist package puts the files.
constexpr const char* kDefaultDataset = "/usr/share/datasets/fashion-mnist";

// Reads one IDX image file and, if given, its label file (gzipped or not).
ImageSet load_idx(const std::string& images_path,
                  const std::string& labels_path = "");

// Reads CIFAR-10 (1 label byte) or CIFAR-100 (coarse + fine label bytes; the
// fine label is used) binary batch files and concatenates them.
ImageSet load_cifar(const std::vector<std::string>& files, bool cifar100);

// Recognises the format of a dataset folder and loads its splits:
//  - IDX: train-images-idx3-ubyte[.gz] (+ t10k-* for the test split)
//  - CIFAR-10: data_batch_{1..5}.bin + test_batch.bin (or cifar-10-batches-bin/)
//  - CIFAR-100: train.bin + test.bin (or cifar-100-binary/)
Splits open_dataset(const std::string& path);

// Reads a whole file, transparently gunzipping it when it is gzip data.
std::vector<uint8_t> read_maybe_gzip(const std::string& path);

}  // namespace moco::data
