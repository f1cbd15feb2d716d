// Datasets: in memory (IDX as MNIST / Fashion-MNIST, CIFAR-10/100, STL-10
// binaries: one uint8 tensor N x C x H x W) or on disk (image files: an
// ImageFolder, an unlabelled folder, a file list; decoded by the loader).
//
//   auto splits = moco::data::open_dataset("/usr/share/datasets/fashion-mnist");
//   splits.train.size();           // 60000
//   splits.test->labels[0];        // class of the first test image
//   auto photos = moco::data::open_dataset("~/photos");   // files, unlabelled
//   photos.train.files[0];         // the first path, in sorted order
#pragma once

#include <torch/arg.h>
#include <torch/types.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "data/image_decode.h"

namespace moco::data {

struct ShardList;  // data/shards.h

struct ImageSet {
  torch::Tensor images;            // in memory: uint8, N x C x H x W
  std::vector<std::string> files;  // on disk: one path per image
  int64_t file_channels = 3;       // on disk: channels the decoder gives
  int64_t max_image_pixels =
      kMaxImagePixels;             // on disk: larger ones are bad files
  torch::Tensor labels;            // int64, N; undefined when unlabelled
  int64_t num_classes = 0;
  std::vector<std::string> classes;  // class names (ImageFolder), if known
  std::string description;  // format and path, for logs
  std::string summary;      // what the scan found: formats, skipped files
  // Tar shards, streamed: no per-sample entries (files stays empty).
  std::shared_ptr<const ShardList> shards;

  bool on_disk() const { return !images.defined(); }
  bool streamed() const { return shards != nullptr; }
  int64_t size() const;
  int64_t channels() const {
    return images.defined() ? images.size(1) : file_channels;
  }
  // Image files vary in size: 0 for them.
  int64_t height() const { return images.defined() ? images.size(2) : 0; }
  int64_t width() const { return images.defined() ? images.size(3) : 0; }
  bool labelled() const { return labels.defined(); }
};

struct Splits {
  ImageSet train;
  std::optional<ImageSet> test;  // labelled test split, when the format has one
  // Labelled training images for evaluation when `train` is not labelled
  // throughout (STL-10: train = unlabeled + train, train_labelled = train).
  std::optional<ImageSet> train_labelled;

  const ImageSet& labelled_train() const {
    return train_labelled ? *train_labelled : train;
  }
};

// Tar shards: the samples each loader worker holds and draws from at
// random (WebDataset's examples' size); --shuffle-buffer.
constexpr int64_t kShuffleBuffer = 1000;

struct OpenOptions {
  // 1 or 3 to convert to that many channels; 0 keeps the format's own
  // (image files: 3).
  TORCH_ARG(int64_t, channels) = 0;
  // A file list naming missing files: an error instead of a warning.
  TORCH_ARG(bool, strict) = false;
  // Image files with more pixels are refused as bad files (0: no limit).
  TORCH_ARG(int64_t, max_image_pixels) = kMaxImagePixels;
};

// File extensions read as images (compared case-insensitively).
bool has_image_extension(const std::string& path);

// Where Debian's dataset-fashion-mnist package puts the files.
constexpr const char* kDefaultDataset = "/usr/share/datasets/fashion-mnist";

// Reads one IDX image file and, if given, its label file (gzipped or not).
ImageSet load_idx(const std::string& images_path,
                  const std::string& labels_path = "");

// Reads CIFAR-10 (1 label byte) or CIFAR-100 (coarse + fine label bytes; the
// fine label is used) binary batch files and concatenates them.
ImageSet load_cifar(const std::vector<std::string>& files, bool cifar100);

// Reads STL-10's binary folder (stl10_binary/): train = unlabeled_X.bin +
// train_X.bin, train_labelled = train_X.bin/train_y.bin, test.
Splits load_stl10(const std::string& dir);

// Recognises the format of a dataset path and loads (or lists) its splits:
//  - IDX: train-images-idx3-ubyte[.gz] (+ t10k-* for the test split)
//  - CIFAR-10: data_batch_{1..5}.bin + test_batch.bin (or cifar-10-batches-bin/)
//  - CIFAR-100: train.bin + test.bin (or cifar-100-binary/)
//  - STL-10: unlabeled_X.bin / train_X.bin ... (or stl10_binary/)
//  - DIR/train/<class>/<image> (+ DIR/val/ as the test split), as the
//    official code; DIR/<class>/<image>; any folder with images at its top
//    level, searched recursively, unlabelled
//  - a text file: one image path per line (relative to the file's folder),
//    optionally followed by an integer label
// Image files: .jpg .jpeg .png in any case; others are skipped and counted.
Splits open_dataset(const std::string& path, const OpenOptions& options = {});

// Stops with a message naming `data` and `command` unless the training and
// test splits are both labelled (what kNN and the linear classifier need).
void require_labels(const Splits& splits, const std::string& data,
                    const std::string& command);

// The split `--split` names ("train" | "test"); an error naming `data`
// when it has no test split.
const ImageSet& split_named(const Splits& splits, const std::string& split,
                            const std::string& data);

// Stops with a message naming `command` when `set` is streamed tar shards:
// the evaluation commands pick images by index.
void require_indexed(const ImageSet& set, const std::string& command);

// Reads a whole file, transparently gunzipping it when it is gzip data.
std::vector<uint8_t> read_maybe_gzip(const std::string& path);

}  // namespace moco::data
