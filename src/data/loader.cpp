#include "data/loader.h"

#include <chrono>

#include "core/rng.h"

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

void TwoViewLoader::start_epoch(int64_t epoch) {
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
  consumed_ = 0;
  wait_seconds_ = 0;
  next_to_make_ = 0;
  ready_.clear();
  error_ = nullptr;
  stop_ = false;
  for (int64_t w = 0; w < options_.workers(); ++w) {
    workers_.emplace_back([this] { worker_loop(); });
  }
}

TwoViewBatch TwoViewLoader::make_batch(int64_t b) const {
  const int64_t begin = b * options_.batch_size();
  const int64_t end = std::min<int64_t>(begin + options_.batch_size(),
                                        static_cast<int64_t>(order_.size()));
  const int64_t n = end - begin;
  const int64_t c = data_->channels(), s = augment_.size();
  auto opts = torch::TensorOptions().dtype(torch::kFloat32);
  TwoViewBatch batch;
  batch.view_q = torch::empty({n, c, s, s}, opts);
  batch.view_k = torch::empty({n, c, s, s}, opts);
  batch.indices = torch::empty({n}, torch::kInt64);
  auto idx = batch.indices.accessor<int64_t, 1>();
  for (int64_t i = 0; i < n; ++i) {
    const int64_t sample = order_[begin + i];
    idx[i] = sample;
    const auto image = data_->images[sample];
    try {
      for (int view = 0; view < 2; ++view) {
        Rng rng(mix_seed(options_.seed(), static_cast<uint64_t>(epoch_),
                         static_cast<uint64_t>(sample), view));
        auto out = augment_view(image, augment_, rng);
        (view == 0 ? batch.view_q : batch.view_k)[i].copy_(out);
      }
    } catch (const std::exception& e) {
      TORCH_CHECK(false, "while augmenting sample ", sample, " of ",
                  data_->description, ": ", e.what());
    }
  }
  if (options_.pin_memory()) {
    batch.view_q = batch.view_q.pin_memory();
    batch.view_k = batch.view_k.pin_memory();
  }
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
