// Two-view batch loader: worker threads decode (image files) and augment
// each sample twice straight into the batch tensors, ahead of the training
// step.
//
// Randomness is a function of (seed, epoch, sample index, view), so batches
// are identical whatever the number of workers. An unreadable image file is
// skipped with one warning naming it (its slot takes the next sample of the
// epoch) and counted, or with strict(true) fails the epoch; a worker's
// exception is rethrown by next() on the consuming thread, with the file or
// dataset named.
//
//   TwoViewLoader loader(train, moco_v2_augment(32),
//                        LoaderOptions().batch_size(256).workers(2));
//   loader.start_epoch(epoch);
//   while (auto batch = loader.next()) step(batch->view_q, batch->view_k);
#pragma once

#include <torch/types.h>
#include <torch/arg.h>

#include <atomic>
#include <condition_variable>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <vector>

#include "core/rng.h"
#include "data/augment.h"
#include "data/dataset.h"

namespace moco::data {

struct LoaderOptions {
  TORCH_ARG(int64_t, batch_size) = 256;
  TORCH_ARG(int64_t, workers) = 2;     // 0: prepare batches on the caller
  TORCH_ARG(int64_t, prefetch) = 2;    // batches ready ahead, per worker
  TORCH_ARG(uint64_t, seed) = 0;
  TORCH_ARG(bool, drop_last) = true;   // MoCo's queue wants full batches
  TORCH_ARG(bool, pin_memory) = false;
  // Sharding hooks for data-parallel training: this rank reads every
  // world_size-th sample of the epoch's permutation.
  TORCH_ARG(int64_t, rank) = 0;
  TORCH_ARG(int64_t, world_size) = 1;
  // An unreadable image file is an error instead of a skipped sample.
  TORCH_ARG(bool, strict) = false;
  // 2: MoCo's query and key views; 1: one view (view_k left undefined), as
  // the linear classifier trains on.
  TORCH_ARG(int64_t, views) = 2;
  // Tar shards: samples each worker holds and draws from at random.
  TORCH_ARG(int64_t, shuffle_buffer) = kShuffleBuffer;
};

struct TwoViewBatch {
  torch::Tensor view_q;   // float B x C x S x S
  torch::Tensor view_k;   // float B x C x S x S
  torch::Tensor indices;  // int64 B, dataset indices
  torch::Tensor labels;   // int64 B, when the dataset is labelled
};

// What a training loop reads batches from: image sets by index
// (TwoViewLoader) or tar shards streamed (ShardLoader, data/shard_loader.h).
class BatchSource {
 public:
  virtual ~BatchSource() = default;
  virtual int64_t batches_per_epoch() const = 0;
  // Starts the epoch at batch `first_batch` (a run resumed mid-epoch: the
  // batches before it are not made, and the ones after are those an
  // uninterrupted epoch gives).
  virtual void start_epoch(int64_t epoch, int64_t first_batch) = 0;
  void start_epoch(int64_t epoch) { start_epoch(epoch, 0); }
  // The next batch of the epoch, or nullopt at its end.
  virtual std::optional<TwoViewBatch> next() = 0;
  // Seconds next() spent blocked waiting for workers since start_epoch.
  virtual double wait_seconds() const = 0;
  // Unreadable images met so far (each counted once).
  virtual int64_t skipped_files() const = 0;
};

// Makes the loader DATA calls for: shards stream, everything else by index.
std::unique_ptr<BatchSource> make_batch_source(std::shared_ptr<const ImageSet> data,
                                               AugmentOptions augment,
                                               LoaderOptions options);

// An encoded image decoded for its views: each view drawn with rngs[v],
// the image decoded with `decode`'s channels and pixel limit at the
// smallest JPEG scale the crops allow. Errors (unreadable image) name
// `name`. Split from the rendering so a loader can learn that an image is
// unreadable before it claims the place the views go to.
struct DecodedViews {
  DecodedImage image;
  ViewParams params[2];
  int views = 0;
};
DecodedViews decode_views(const std::vector<uint8_t>& bytes, const std::string& name,
                          const DecodeOptions& decode, const AugmentOptions& augment,
                          Rng* rngs, int views);
// Each view written as C x S x S floats to out[v].
void render_views(const DecodedViews& decoded, const AugmentOptions& augment,
                  float* const* out);

// A run this long of unreadable images ends the epoch with an error, for
// folders and shards alike: past it the data is more likely wrong than
// damaged.
constexpr int64_t kMaxUnreadableInARow = 64;

class TwoViewLoader : public BatchSource {
 public:
  TwoViewLoader(std::shared_ptr<const ImageSet> data, AugmentOptions augment,
                LoaderOptions options);
  ~TwoViewLoader() override;
  TwoViewLoader(const TwoViewLoader&) = delete;
  TwoViewLoader& operator=(const TwoViewLoader&) = delete;

  int64_t batches_per_epoch() const override;
  // Draws the epoch's permutation and starts the workers on it.
  using BatchSource::start_epoch;
  void start_epoch(int64_t epoch, int64_t first_batch) override;
  std::optional<TwoViewBatch> next() override;
  double wait_seconds() const override { return wait_seconds_; }
  int64_t skipped_files() const override;

 private:
  TwoViewBatch make_batch(int64_t b);
  // Renders both views of `sample` into row i of the batch.
  void fill(int64_t sample, int64_t i, TwoViewBatch& batch) const;
  bool known_bad(int64_t sample);
  void worker_loop();
  void stop_workers();

  std::shared_ptr<const ImageSet> data_;
  AugmentOptions augment_;
  LoaderOptions options_;
  int64_t epoch_ = 0;
  std::vector<int64_t> order_;  // this rank's sample indices for the epoch
  int64_t num_batches_ = 0;
  int64_t consumed_ = 0;
  double wait_seconds_ = 0;

  std::vector<std::thread> workers_;
  std::atomic<int64_t> next_to_make_{0};
  std::mutex mutex_;
  std::condition_variable ready_cv_, space_cv_;
  std::map<int64_t, TwoViewBatch> ready_;
  std::exception_ptr error_;
  bool stop_ = false;
  mutable std::mutex bad_mutex_;
  std::set<int64_t> bad_;  // unreadable samples, warned about once
};

// Evaluation images as uint8 N x C x size x size: in-memory images as they
// are (size ignored), image files decoded, the shorter side resized to
// `resize` (antialiased bilinear) and centre-cropped to `size`, as
// torchvision's Resize + CenterCrop. Unreadable files raise, or, when
// `readable` is given, come out black and false in it (bool N).
torch::Tensor load_eval_images(const ImageSet& set,
                               const torch::Tensor& indices, int64_t resize,
                               int64_t size, torch::Tensor* readable = nullptr);

}  // namespace moco::data
