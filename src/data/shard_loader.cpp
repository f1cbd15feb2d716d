#include "data/shard_loader.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>

#include "core/log.h"
#include "core/rng.h"
#include "data/image_decode.h"
#include "data/loader.h"

namespace moco::data {

struct ShardLoader::Building {
  TwoViewBatch batch;
  torch::Tensor labels;
  int64_t filled = 0, labelled = 0;
};

ShardLoader::ShardLoader(std::shared_ptr<const ImageSet> data, AugmentOptions augment,
                         LoaderOptions options)
    : data_(std::move(data)),
      shards_(*data_->shards),
      augment_(std::move(augment)),
      options_(std::move(options)) {
  TORCH_CHECK(options_.batch_size() > 0, "expected --batch-size > 0, got ",
              options_.batch_size());
  TORCH_CHECK(options_.shuffle_buffer() > 0, "expected --shuffle-buffer > 0, got ",
              options_.shuffle_buffer());
  const int64_t world = options_.world_size();
  const int64_t n = static_cast<int64_t>(shards_.shards.size());
  TORCH_CHECK(n >= world, shards_.spec, ": ", n, " shard", n == 1 ? "" : "s", " for ", world,
              " processes; each process reads whole shards, so it needs at least one "
              "(write more, smaller shards: moco shard --shard-size)");
  std::vector<int64_t> counts;
  for (const auto& s : shards_.shards) counts.push_back(s.samples);
  std::sort(counts.begin(), counts.end());
  int64_t least = 0;
  for (int64_t i = 0; i < n / world; ++i) least += counts[static_cast<size_t>(i)];
  batches_ = least / options_.batch_size();
  TORCH_CHECK(batches_ > 0, "expected --batch-size <= the samples a process reads (", least,
              " in the ", n / world, " smallest shards of ", shards_.spec, "), got ",
              options_.batch_size());
}

ShardLoader::~ShardLoader() { stop_workers(); }

int64_t ShardLoader::skipped_files() const { return skipped_.load(); }

void ShardLoader::stop_workers() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  space_cv_.notify_all();
  for (auto& t : threads_) t.join();
  threads_.clear();
}

int64_t ShardLoader::position(int64_t w, int64_t k) const {
  // k whole rounds of the workers that still have a sample at that round,
  // then those before w that have a k-th sample.
  int64_t p = 0;
  for (size_t v = 0; v < expected_.size(); ++v) {
    p += std::min(expected_[v], k);
    if (static_cast<int64_t>(v) < w && expected_[v] > k) ++p;
  }
  return p;
}

void ShardLoader::start_epoch(int64_t epoch, int64_t first_batch) {
  stop_workers();
  TORCH_CHECK(first_batch >= 0 && first_batch <= batches_, "expected a batch within the epoch's ",
              batches_, ", got ", first_batch);
  epoch_ = epoch;
  consumed_ = first_batch;
  wait_seconds_ = 0;
  building_.clear();
  finished_workers_ = 0;
  short_end_ = -1;
  error_ = nullptr;
  stop_ = false;
  const int64_t n = static_cast<int64_t>(shards_.shards.size());
  const auto order = permutation(
      n, mix_seed(options_.seed(), static_cast<uint64_t>(epoch), 0x5a4dULL, 0));
  std::vector<int64_t> mine;
  for (int64_t i = options_.rank(); i < n; i += options_.world_size()) {
    mine.push_back(order[static_cast<size_t>(i)]);
  }
  const int64_t nw = std::max<int64_t>(
      1, std::min<int64_t>(options_.workers(), static_cast<int64_t>(mine.size())));
  worker_shards_.assign(static_cast<size_t>(nw), {});
  for (size_t j = 0; j < mine.size(); ++j) {
    worker_shards_[j % static_cast<size_t>(nw)].push_back(mine[j]);
  }
  expected_.assign(static_cast<size_t>(nw), 0);
  skip_.assign(static_cast<size_t>(nw), 0);
  const int64_t first = first_batch * options_.batch_size();
  for (int64_t w = 0; w < nw; ++w) {
    auto& e = expected_[static_cast<size_t>(w)];
    for (int64_t s : worker_shards_[static_cast<size_t>(w)]) {
      e += shards_.shards[static_cast<size_t>(s)].samples;
    }
  }
  for (int64_t w = 0; w < nw; ++w) {
    // A resumed epoch: the worker's samples placed before first_batch
    // (positions grow with k, so the first k placed at or after it).
    int64_t lo = 0, hi = expected_[static_cast<size_t>(w)];
    while (lo < hi) {
      const int64_t mid = (lo + hi) / 2;
      if (position(w, mid) < first) lo = mid + 1; else hi = mid;
    }
    skip_[static_cast<size_t>(w)] = lo;
  }
  for (int64_t b = first_batch; b < std::min(batches_, first_batch + depth()); ++b) {
    building_.emplace(b, fresh_batch());
  }
  for (int64_t w = 0; w < nw; ++w) threads_.emplace_back([this, w] { run_worker(w); });
}

int64_t ShardLoader::depth() const {
  return std::max<int64_t>(2, options_.prefetch() * static_cast<int64_t>(expected_.size()));
}

// On the consumer's thread, which also frees the batches: memory freed on
// the thread that allocated it is reused at once (allocated by the workers
// and freed here, every batch was fresh pages, ~15% slower on one worker).
ShardLoader::Building ShardLoader::fresh_batch() const {
  const int64_t b = options_.batch_size(), c = data_->channels(), s = augment_.size();
  auto opts = torch::TensorOptions().dtype(torch::kFloat32).pinned_memory(options_.pin_memory());
  Building slot;
  slot.batch.view_q = torch::empty({b, c, s, s}, opts);
  if (options_.views() == 2) slot.batch.view_k = torch::empty({b, c, s, s}, opts);
  slot.labels = torch::empty({b}, torch::kInt64);
  return slot;
}

// One worker thread's epoch: its shards read in turn through its shuffle
// buffer, each sample rendered into the row of its place in the epoch.
struct ShardLoader::Worker {
  Worker(ShardLoader& loader, int64_t w)
      : l(loader),
        w(w),
        batch(l.options_.batch_size()),
        plane(l.data_->channels() * l.augment_.size() * l.augment_.size()),
        slots(l.batches_ * batch),
        depth(l.depth()),
        skip(l.skip_[static_cast<size_t>(w)]),
        views(static_cast<int>(l.options_.views())),
        shards(l.worker_shards_[static_cast<size_t>(w)]),
        stream(mix_seed(l.options_.seed(), 0x5a4e, static_cast<uint64_t>(l.options_.rank()),
                        static_cast<uint64_t>(w))),
        shuffle(mix_seed(stream, static_cast<uint64_t>(l.epoch_), 0x5bf0, 0)),
        decode(DecodeOptions()
                   .channels(l.data_->file_channels)
                   .max_pixels(l.data_->max_image_pixels)) {}

  void run() {
    bool going = true;
    for (size_t si = 0; si < shards.size() && going; ++si) {
      going = read_shard(l.shards_.shards[static_cast<size_t>(shards[si])].path);
    }
    while (going && !buffer.empty()) going = emit(draw());
    if (pending.empty()) return;
    TORCH_CHECK(have_good, pending.size(), " unreadable images in a row in ", l.shards_.spec,
                " and no readable one in the ", shards.size(), " shard",
                shards.size() == 1 ? "" : "s", " of loader worker ", w,
                "; see the warnings above");
    for (int64_t p : pending) {
      if (l.position(w, p) < slots && !render_into(last_good, p)) break;
    }
  }

  // Every sample of one shard into the buffer, one drawn out per sample
  // once it is full. False when stopping or done.
  bool read_shard(const std::string& path) {
    ShardReader reader(path, max_member_bytes(l.data_->max_image_pixels));
    ShardSample sample;
    int64_t read = 0;
    bool going = true;
    while (going && reader.next(sample)) {
      ++read;
      if (!sample.label_error.empty()) {
        TORCH_CHECK(!l.options_.strict(), "--strict-data: ", sample.label_error);
        log_warn("ignoring a label: ", sample.label_error);
      }
      buffer.push_back(std::move(sample));
      if (buffer.size() >= static_cast<size_t>(l.options_.shuffle_buffer())) going = emit(draw());
    }
    if (going && !reader.damage().empty()) {
      TORCH_CHECK(!l.options_.strict(), "--strict-data: shard ", path, " is damaged after ",
                  read, " samples: ", reader.damage());
      log_warn("shard ", path, " is damaged after ", read, " samples (", reader.damage(),
               "); going on with the next shard");
    }
    return going;
  }

  ShardSample draw() {
    const auto j =
        static_cast<size_t>(shuffle.randint(0, static_cast<int64_t>(buffer.size()) - 1));
    std::swap(buffer[j], buffer.back());
    ShardSample out = std::move(buffer.back());
    buffer.pop_back();
    return out;
  }

  // One sample leaves the shuffle buffer. False when stopping or done.
  //
  // The image is decoded before the worker waits for room for its batch:
  // an unreadable one must not hold a place the consumer is waiting on.
  // Its place is kept and given to the next readable sample, which fills
  // the kept places, lowest first, before its own, so a worker blocked on
  // room has filled every place before the one it waits with.
  bool emit(ShardSample&& sample) {
    const int64_t at = k++;
    if (at < skip) return true;
    if (l.position(w, at) >= slots) return false;  // the epoch is full
    DecodedViews decoded;
    try {
      decoded = decode_at(sample, at);
    } catch (const c10::Error& e) {
      TORCH_CHECK(!l.options_.strict(), "--strict-data: ", e.what_without_backtrace());
      ++l.skipped_;
      log_warn("skipping unreadable image: ", e.what_without_backtrace());
      pending.push_back(at);
      TORCH_CHECK(static_cast<int64_t>(pending.size()) < kMaxUnreadableInARow,
                  kMaxUnreadableInARow, " unreadable images in a row in ", l.shards_.spec,
                  " (loader worker ", w, ", the last ", sample.name(), "); see the warnings above");
      return true;
    }
    for (int64_t p : pending) {
      if (!render_into(sample, p)) return false;
    }
    pending.clear();
    if (!place(decoded, sample.label, at)) return false;
    last_good = std::move(sample);
    have_good = true;
    return true;
  }

  // The views of this worker's at-th place, drawn for that place.
  DecodedViews decode_at(const ShardSample& sample, int64_t at) const {
    const auto epoch = static_cast<uint64_t>(l.epoch_), place = static_cast<uint64_t>(at);
    Rng rngs[2] = {Rng(mix_seed(stream, epoch, place, 0)), Rng(mix_seed(stream, epoch, place, 1))};
    TORCH_CHECK(sample.image_error.empty(), sample.name(), ": ", sample.image_error);
    return decode_views(sample.image, sample.name(), decode, l.augment_, rngs, views);
  }

  // Renders `sample` into the row of this worker's at-th place. False when
  // stopping.
  bool render_into(const ShardSample& sample, int64_t at) {
    return place(decode_at(sample, at), sample.label, at);
  }

  // Writes decoded views into the row of this worker's at-th place once
  // its batch has room. False when stopping.
  bool place(const DecodedViews& decoded, int64_t label, int64_t at) {
    const int64_t p = l.position(w, at);
    const int64_t b = p / batch, row = p % batch;
    Building* slot = nullptr;
    {
      std::unique_lock<std::mutex> lock(l.mutex_);
      l.space_cv_.wait(lock, [&] { return l.stop_ || b < l.consumed_ + depth; });
      if (l.stop_) return false;
      slot = &l.building_[b];
      TORCH_INTERNAL_ASSERT(slot->batch.view_q.defined(), "batch ", b, " not allocated");
    }
    float* out[2] = {slot->batch.view_q.data_ptr<float>() + row * plane,
                     views == 2 ? slot->batch.view_k.data_ptr<float>() + row * plane : nullptr};
    render_views(decoded, l.augment_, out);
    bool complete = false;
    {
      std::lock_guard<std::mutex> lock(l.mutex_);
      slot->labels.data_ptr<int64_t>()[row] = label;
      slot->labelled += label >= 0 ? 1 : 0;
      complete = ++slot->filled == batch;
    }
    if (complete) l.ready_cv_.notify_all();
    return true;
  }

  ShardLoader& l;
  const int64_t w, batch, plane, slots, depth, skip;
  const int views;
  const std::vector<int64_t>& shards;
  const uint64_t stream;
  Rng shuffle;
  const DecodeOptions decode;
  int64_t k = 0;                 // samples this worker has placed or passed over
  std::vector<int64_t> pending;  // k of unreadable samples, to give away
  ShardSample last_good;
  bool have_good = false;
  std::vector<ShardSample> buffer;
};

void ShardLoader::run_worker(int64_t w) {
  int64_t end = -1;
  try {
    Worker worker(*this, w);
    worker.run();
    // A worker whose shards held fewer samples than their headers counted
    // (a shard cut while the epoch streamed it) leaves its places from
    // here on empty: the batch holding the first of them never fills.
    if (worker.k < expected_[static_cast<size_t>(w)]) end = position(w, worker.k);
  } catch (...) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!error_) error_ = std::current_exception();
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    ++finished_workers_;
    if (end >= 0) short_end_ = short_end_ < 0 ? end : std::min(short_end_, end);
  }
  ready_cv_.notify_all();
}

std::optional<TwoViewBatch> ShardLoader::next() {
  if (consumed_ >= batches_) return std::nullopt;
  const int64_t b = options_.batch_size();
  const auto nw = static_cast<int64_t>(threads_.size());
  const auto t0 = std::chrono::steady_clock::now();
  std::unique_lock<std::mutex> lock(mutex_);
  ready_cv_.wait(lock, [&] {
    if (error_ || finished_workers_ == nw) return true;
    if (short_end_ >= 0 && short_end_ < (consumed_ + 1) * b) return true;
    const auto it = building_.find(consumed_);
    return it != building_.end() && it->second.filled == b;
  });
  wait_seconds_ +=
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (error_) {
    auto err = error_;
    lock.unlock();
    stop_workers();
    std::rethrow_exception(err);
  }
  auto it = building_.find(consumed_);
  if (it == building_.end() || it->second.filled < b) {
    // Fewer samples than the headers counted (a shard changed since). The
    // workers that still have samples wait for room: they are stopped.
    lock.unlock();
    stop_workers();
    log_warn("the shards of ", shards_.spec, " ran out at batch ", consumed_ + 1, " of ",
             batches_, " this epoch; the epoch ends here");
    consumed_ = batches_;
    return std::nullopt;
  }
  Building done = std::move(it->second);
  building_.erase(it);
  ++consumed_;
  // The batch the workers may start now, there before they can see it.
  const int64_t opened = consumed_ + depth() - 1;
  if (opened < batches_) building_.emplace(opened, fresh_batch());
  lock.unlock();
  space_cv_.notify_all();
  TwoViewBatch batch = std::move(done.batch);
  batch.indices = torch::arange((consumed_ - 1) * b, consumed_ * b, torch::kInt64);
  if (done.labelled == b) batch.labels = done.labels;
  return batch;
}

std::unique_ptr<BatchSource> make_batch_source(std::shared_ptr<const ImageSet> data,
                                               AugmentOptions augment, LoaderOptions options) {
  if (data->streamed()) {
    return std::make_unique<ShardLoader>(std::move(data), std::move(augment), std::move(options));
  }
  return std::make_unique<TwoViewLoader>(std::move(data), std::move(augment), std::move(options));
}

}  // namespace moco::data
