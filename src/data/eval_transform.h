// What evaluation (kNN, lincls, embed) does to an image before the network,
// decided in one place: image files get Resize(crop * 256/224) and
// CenterCrop(crop), as the official evaluation; in-memory images are used at
// their own size; both are normalised with the statistics pretraining used
// for the dataset.
//
//   auto t = moco::data::eval_transform(splits.train);   // crop 224 for files
//   torch::Tensor x = t.load(splits.train, torch::arange(0, 256));
#pragma once

#include <torch/types.h>

#include <memory>
#include <optional>
#include <utility>
#include <vector>

namespace moco::data {

struct ImageSet;

// The small-image rule: images of at most 64 px (IDX, CIFAR, or files
// whose headers say so) are cropped at their own size for the small-image
// stem (3x3, no max-pool), as the official CIFAR demo; larger ones at 224.
constexpr int64_t kSmallImageSide = 64;
// The RandomResizedCrop size pretraining chooses for images of typical
// side `side` (0: unknown): `side` when small, else 224.
int64_t default_crop(int64_t side);
// Whether a crop of `crop` px gets the small-image stem.
inline bool small_stem_for(int64_t crop) { return crop <= kSmallImageSide; }

// In-memory images of at most 64 x 64 px get the small-image stem, crops at
// their own size and their own per-channel statistics.
bool is_small(const ImageSet& set);

// The images' shorter side: in memory, their own; image files, the median
// over the headers of up to `samples` files, evenly spaced (no decoding).
// 0 when no header can be read.
int64_t typical_image_side(const ImageSet& set, int64_t samples = 64);

// The input normalisation pretraining uses for a dataset: per-channel
// statistics of (up to 10k) training images for small images, ImageNet's
// otherwise (0.449 / 0.226 for one channel).
std::pair<std::vector<double>, std::vector<double>> normalization(
    const ImageSet& train);

// uint8 N x C x H x W -> float, [0, 1], (x - mean) / std per channel.
torch::Tensor normalize_images(const torch::Tensor& u8,
                               const std::vector<double>& mean,
                               const std::vector<double>& std);

// Evenly spaced indices selecting `count` of n samples (all when count <= 0
// or count >= n): a fixed, class-balanced-in-expectation subset.
torch::Tensor subset_indices(int64_t n, int64_t count);

struct EvalTransform {
  int64_t crop = 224;  // image files only
  std::vector<double> mean, std;
  // Normalised float images of set[indices]. An unreadable file raises, or,
  // when `readable` is given, comes out black and false there (bool N).
  torch::Tensor load(const ImageSet& set, const torch::Tensor& indices,
                     torch::Tensor* readable = nullptr) const;
};

// Evaluation batches of set[indices], in order, made ahead by `workers`
// threads (batch b by thread b % workers, at most two a thread ahead of
// the consumer), so decoding runs beside the network rather than before
// it. Rows come out in the order of `indices` whatever the threads; an
// unreadable file is black and false in `readable`. 0 workers: made on the
// caller's thread when asked for.
//
//   EvalBatches batches(set, idx, transform, 256, /*workers=*/3);
//   while (auto b = batches.next()) encode(b->images);
class EvalBatches {
 public:
  struct Batch {
    torch::Tensor images;    // normalised float B x C x S x S
    torch::Tensor readable;  // bool B
    int64_t first = 0;       // position of row 0 in `indices`
  };
  EvalBatches(const ImageSet& set, torch::Tensor indices, EvalTransform transform,
              int64_t batch, int64_t workers);
  ~EvalBatches();
  EvalBatches(const EvalBatches&) = delete;
  EvalBatches& operator=(const EvalBatches&) = delete;
  std::optional<Batch> next();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// The shorter side images are resized to before the centre crop: 256 for
// 224, as the official evaluation, and in that ratio for other crops.
inline int64_t resize_for_crop(int64_t crop) { return crop * 256 / 224; }

// The evaluation crop for a network that does not say what it was trained
// at: pretraining's choice for these images (image files: their own size
// when <= 64 px, else 224), the images' own size in memory.
int64_t eval_crop(const ImageSet& set);

// The transform for a dataset whose training split is `train`; crop 0 means
// 224 (the official evaluation crop).
EvalTransform eval_transform(const ImageSet& train, int64_t crop = 0);

}  // namespace moco::data
