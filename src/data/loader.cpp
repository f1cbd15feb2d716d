#include "data/loader.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>

#include "core/log.h"
#include "core/rng.h"
#include "data/image_decode.h"

namespace moco::data {

TwoViewLoader::TwoViewLoader(std::shared_ptr<const ImageSet> data,
                             AugmentOptions augment, LoaderOptions options)
    : data_(std::move(data)),
      augment_(std::move(augment)),
      options_(std::move(options)) {
  TORCH_CHECK(data_ && data_->size() > 0, "expected a non-empty dataset");
  TORCH_CHECK(options_.batch_size() > 0, "expected --batch-size > 0, got ",
              options_.batch_size());
  TORCH_CHECK(options_.workers() >= 0, "expected --workers >= 0, got ",
              options_.workers());
  TORCH_CHECK(options_.views() == 1 || options_.views() == 2,
              "expected 1 or 2 views, got ", options_.views());
  TORCH_CHECK(options_.world_size() >= 1 && options_.rank() >= 0 &&
                  options_.rank() < options_.world_size(),
              "expected 0 <= rank < world_size, got rank ", options_.rank(),
              " of ", options_.world_size());
  const int64_t per_rank = data_->size() / options_.world_size();
  TORCH_CHECK(!options_.drop_last() || per_rank >= options_.batch_size(),
              "expected --batch-size <= the number of training images (",
              per_rank, " per process), got ", options_.batch_size());
}

TwoViewLoader::~TwoViewLoader() { stop_workers(); }

int64_t TwoViewLoader::batches_per_epoch() const {
  const int64_t per_rank = data_->size() / options_.world_size();
  return options_.drop_last()
             ? per_rank / options_.batch_size()
             : (per_rank + options_.batch_size() - 1) / options_.batch_size();
}

void TwoViewLoader::stop_workers() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  space_cv_.notify_all();
  ready_cv_.notify_all();
  for (auto& t : workers_) t.join();
  workers_.clear();
}

void TwoViewLoader::start_epoch(int64_t epoch, int64_t first_batch) {
  stop_workers();
  epoch_ = epoch;
  const auto perm = permutation(
      data_->size(), mix_seed(options_.seed(), static_cast<uint64_t>(epoch),
                              0x5eedULL, 0));
  const int64_t per_rank = data_->size() / options_.world_size();
  order_.clear();
  for (int64_t i = 0; i < per_rank; ++i) {
    order_.push_back(perm[i * options_.world_size() + options_.rank()]);
  }
  num_batches_ = batches_per_epoch();
  TORCH_CHECK(first_batch >= 0 && first_batch <= num_batches_, "expected a ",
              "batch within the epoch's ", num_batches_, ", got ", first_batch);
  consumed_ = first_batch;
  wait_seconds_ = 0;
  next_to_make_ = first_batch;
  ready_.clear();
  error_ = nullptr;
  stop_ = false;
  for (int64_t w = 0; w < options_.workers(); ++w) {
    workers_.emplace_back([this] { worker_loop(); });
  }
}

namespace {

// Maps a crop drawn on the full-size image onto the decoded (possibly DCT
// downscaled) one.
CropBox scale_box(const CropBox& b, double sy, double sx, int64_t h,
                  int64_t w) {
  if (sy == 1.0 && sx == 1.0) return b;
  CropBox o;
  o.top = std::min<int64_t>(static_cast<int64_t>(b.top * sy), h - 1);
  o.left = std::min<int64_t>(static_cast<int64_t>(b.left * sx), w - 1);
  o.height = std::clamp<int64_t>(std::llround(b.height * sy), 1, h - o.top);
  o.width = std::clamp<int64_t>(std::llround(b.width * sx), 1, w - o.left);
  return o;
}

ImageView8 hwc_view(const DecodedImage& d) {
  return {d.pixels.data(), d.channels, d.height, d.width, 1,
          d.width * d.channels, d.channels};
}

}  // namespace

void TwoViewLoader::fill(int64_t sample, int64_t i, TwoViewBatch& batch) const {
  const int64_t s = augment_.size();
  const int64_t plane = batch.view_q.size(1) * s * s;
  const int views = static_cast<int>(options_.views());
  float* out[2] = {batch.view_q.data_ptr<float>() + i * plane,
                   views == 2 ? batch.view_k.data_ptr<float>() + i * plane
                              : nullptr};
  Rng rngs[2] = {
      Rng(mix_seed(options_.seed(), static_cast<uint64_t>(epoch_),
                   static_cast<uint64_t>(sample), 0)),
      Rng(mix_seed(options_.seed(), static_cast<uint64_t>(epoch_),
                   static_cast<uint64_t>(sample), 1))};
  if (!data_->on_disk()) {
    const auto image = data_->images[sample];
    const auto view = image_view(image);
    for (int v = 0; v < views; ++v) {
      const auto params =
          draw_view_params(view.height, view.width, augment_, rngs[v]);
      render_view(view, params, augment_, out[v]);
    }
    return;
  }
  const std::string& path = data_->files[sample];
  render_views(decode_views(read_file(path), path,
                            DecodeOptions()
                                .channels(data_->file_channels)
                                .max_pixels(data_->max_image_pixels),
                            augment_, rngs, views),
               augment_, out);
}

DecodedViews decode_views(const std::vector<uint8_t>& bytes, const std::string& name,
                          const DecodeOptions& decode, const AugmentOptions& augment,
                          Rng* rngs, int views) {
  const int64_t s = augment.size();
  const auto info = read_image_info(bytes, name);
  DecodedViews d;
  d.views = views;
  double min_scale = 0;
  for (int v = 0; v < views; ++v) {
    d.params[v] = draw_view_params(info.height, info.width, augment, rngs[v]);
    // Smallest decode scale at which this crop still has >= size pixels
    // each way: below it the resize would upsample what the DCT dropped.
    const auto& c = d.params[v].crop;
    min_scale = std::max(min_scale, static_cast<double>(s) /
                                        std::min(c.height, c.width));
  }
  d.image = decode_image(bytes, name, DecodeOptions(decode).min_scale(min_scale));
  const double sy = static_cast<double>(d.image.height) / info.height;
  const double sx = static_cast<double>(d.image.width) / info.width;
  for (int v = 0; v < views; ++v) {
    d.params[v].crop = scale_box(d.params[v].crop, sy, sx, d.image.height, d.image.width);
  }
  return d;
}

void render_views(const DecodedViews& d, const AugmentOptions& augment, float* const* out) {
  for (int v = 0; v < d.views; ++v) render_view(hwc_view(d.image), d.params[v], augment, out[v]);
}

bool TwoViewLoader::known_bad(int64_t sample) {
  std::lock_guard<std::mutex> lock(bad_mutex_);
  return bad_.count(sample) > 0;
}

int64_t TwoViewLoader::skipped_files() const {
  std::lock_guard<std::mutex> lock(bad_mutex_);
  return static_cast<int64_t>(bad_.size());
}

TwoViewBatch TwoViewLoader::make_batch(int64_t b) {
  const int64_t begin = b * options_.batch_size();
  const int64_t total = static_cast<int64_t>(order_.size());
  const int64_t end = std::min<int64_t>(begin + options_.batch_size(), total);
  const int64_t n = end - begin;
  const int64_t c = data_->channels(), s = augment_.size();
  // Allocated pinned from the start (not copied into pinned memory after),
  // and written in place by fill().
  auto opts = torch::TensorOptions().dtype(torch::kFloat32).pinned_memory(
      options_.pin_memory());
  TwoViewBatch batch;
  batch.view_q = torch::empty({n, c, s, s}, opts);
  if (options_.views() == 2) batch.view_k = torch::empty({n, c, s, s}, opts);
  batch.indices = torch::empty({n}, torch::kInt64);
  auto idx = batch.indices.accessor<int64_t, 1>();
  // A bad file gives its slot to the next readable sample of the epoch, so
  // batches stay full; the substitute is the same whatever the workers.
  for (int64_t i = 0; i < n; ++i) {
    int64_t tries = 0;
    for (int64_t pos = begin + i;; pos = (pos + 1) % total) {
      const int64_t sample = order_[pos];
      if (data_->on_disk() && known_bad(sample)) {
        TORCH_CHECK(++tries < kMaxUnreadableInARow, kMaxUnreadableInARow,
                    " unreadable images in a row in ", data_->description,
                    "; see the warnings above");
        continue;
      }
      try {
        fill(sample, i, batch);
        idx[i] = sample;
        break;
      } catch (const std::exception& e) {
        const auto* ce = dynamic_cast<const c10::Error*>(&e);
        const std::string why = ce ? ce->what_without_backtrace() : e.what();
        if (!data_->on_disk()) {
          TORCH_CHECK(false, "while augmenting sample ", sample, " of ",
                      data_->description, ": ", why);
        }
        TORCH_CHECK(!options_.strict(), "--strict-data: ", why);
        bool first = false;
        {
          std::lock_guard<std::mutex> lock(bad_mutex_);
          first = bad_.insert(sample).second;
        }
        if (first) log_warn("skipping unreadable image: ", why);
        TORCH_CHECK(++tries < kMaxUnreadableInARow, kMaxUnreadableInARow,
                    " unreadable images in a row in ", data_->description,
                    "; see the warnings above");
      }
    }
  }
  if (data_->labelled()) batch.labels = data_->labels.index_select(0, batch.indices);
  return batch;
}

void TwoViewLoader::worker_loop() {
  // at::set_num_threads is process-wide, so it is not called here: the small
  // per-sample tensors stay under ATen's parallel grain size anyway.
  const int64_t depth = options_.prefetch() * options_.workers();
  while (true) {
    const int64_t b = next_to_make_.fetch_add(1);
    if (b >= num_batches_) return;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      space_cv_.wait(lock, [&] { return stop_ || b < consumed_ + depth; });
      if (stop_) return;
    }
    try {
      auto batch = make_batch(b);
      std::lock_guard<std::mutex> lock(mutex_);
      ready_.emplace(b, std::move(batch));
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!error_) error_ = std::current_exception();
    }
    ready_cv_.notify_all();
  }
}

std::optional<TwoViewBatch> TwoViewLoader::next() {
  if (consumed_ >= num_batches_) return std::nullopt;
  if (workers_.empty()) return make_batch(consumed_++);
  const auto t0 = std::chrono::steady_clock::now();
  std::unique_lock<std::mutex> lock(mutex_);
  ready_cv_.wait(lock, [&] { return error_ || ready_.count(consumed_) > 0; });
  wait_seconds_ += std::chrono::duration<double>(
                       std::chrono::steady_clock::now() - t0)
                       .count();
  if (error_) {
    auto err = error_;
    lock.unlock();
    stop_workers();
    std::rethrow_exception(err);
  }
  auto node = ready_.extract(consumed_);
  ++consumed_;
  lock.unlock();
  space_cv_.notify_all();
  return std::move(node.mapped());
}

}  // namespace moco::data

namespace moco::data {

namespace {

// Resize(resize) + CenterCrop(size) of one image file into `out` (C x S x S).
void load_eval_image(const std::string& path, int64_t channels,
                     int64_t max_pixels, int64_t resize, int64_t size,
                     torch::Tensor out) {
  const auto bytes = read_file(path);
  const auto info = read_image_info(bytes, path);
  const double short_side = std::min(info.height, info.width);
  // Decode at the smallest DCT scale that keeps the short side >= resize.
  const auto img = decode_image(bytes, path,
                                DecodeOptions()
                                    .channels(channels)
                                    .min_scale(resize / short_side)
                                    .max_pixels(max_pixels));
  auto t = torch::from_blob(const_cast<uint8_t*>(img.pixels.data()),
                            {img.height, img.width, img.channels},
                            torch::kUInt8)
               .permute({2, 0, 1})
               .to(torch::kFloat32)
               .unsqueeze(0);
  // torchvision's Resize(int): the short side to `resize`, the long side
  // scaled and truncated.
  int64_t h = resize, w = resize;
  if (img.height < img.width) {
    w = static_cast<int64_t>(static_cast<double>(resize) * img.width /
                             img.height);
  } else {
    h = static_cast<int64_t>(static_cast<double>(resize) * img.height /
                             img.width);
  }
  t = torch::nn::functional::interpolate(
      t, torch::nn::functional::InterpolateFuncOptions()
             .size(std::vector<int64_t>{h, w})
             .mode(torch::kBilinear)
             .align_corners(false)
             .antialias(true));
  const int64_t top = static_cast<int64_t>(std::round((h - size) / 2.0));
  const int64_t left = static_cast<int64_t>(std::round((w - size) / 2.0));
  out.copy_(t[0]
                .slice(1, top, top + size)
                .slice(2, left, left + size)
                .round()
                .clamp(0, 255)
                .to(torch::kUInt8));
}

}  // namespace

torch::Tensor load_eval_images(const ImageSet& set,
                               const torch::Tensor& indices, int64_t resize,
                               int64_t size, torch::Tensor* readable) {
  const int64_t n = indices.size(0), c = set.channels();
  if (readable) *readable = torch::ones({n}, torch::kBool);
  if (!set.on_disk()) return set.images.index_select(0, indices);
  TORCH_CHECK(resize >= size, "expected the resize (", resize,
              ") >= the crop size (", size, ")");
  auto out = torch::empty({n, c, size, size}, torch::kUInt8);
  auto idx = indices.accessor<int64_t, 1>();
  for (int64_t i = 0; i < n; ++i) {
    const std::string& path = set.files[idx[i]];
    if (!readable) {
      load_eval_image(path, c, set.max_image_pixels, resize, size, out[i]);
      continue;
    }
    try {
      load_eval_image(path, c, set.max_image_pixels, resize, size, out[i]);
    } catch (const c10::Error& e) {
      log_warn("evaluation skips unreadable image: ", e.what_without_backtrace());
      (*readable)[i] = false;
      out[i].zero_();
    }
  }
  return out;
}

}  // namespace moco::data
