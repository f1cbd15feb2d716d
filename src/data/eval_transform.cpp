#include "data/eval_transform.h"

#include "data/image_decode.h"

#include <torch/torch.h>

#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <thread>

#include "data/dataset.h"
#include "data/loader.h"
#include "data/shards.h"

namespace moco::data {

bool is_small(const ImageSet& set) {
  return !set.on_disk() && set.height() <= kSmallImageSide &&
         set.width() <= kSmallImageSide;
}

int64_t typical_image_side(const ImageSet& set, int64_t samples) {
  if (!set.on_disk()) return std::min(set.height(), set.width());
  std::vector<int64_t> sides;
  // An unreadable image is left out here; the loader reports it.
  auto add = [&](const std::function<std::vector<uint8_t>()>& bytes, const std::string& name) {
    try {
      const auto info = read_image_info(bytes(), name);
      sides.push_back(std::min(info.height, info.width));
    } catch (const std::exception&) {
    }
  };
  if (set.streamed()) {
    // The first samples of the first shards (reading on is what costs).
    for (const auto& shard : set.shards->shards) {
      ShardReader reader(shard.path);
      ShardSample s;
      while (static_cast<int64_t>(sides.size()) < samples && reader.next(s)) {
        add([&] { return s.image; }, s.name());
      }
      if (static_cast<int64_t>(sides.size()) >= samples) break;
    }
  } else {
    const auto idx = subset_indices(set.size(), samples);
    for (int64_t i = 0; i < idx.size(0); ++i) {
      const auto& path = set.files[static_cast<size_t>(idx[i].item<int64_t>())];
      add([&] { return read_file(path); }, path);
    }
  }
  if (sides.empty()) return 0;
  std::nth_element(sides.begin(), sides.begin() + sides.size() / 2, sides.end());
  return sides[sides.size() / 2];
}

std::pair<std::vector<double>, std::vector<double>> normalization(
    const ImageSet& set) {
  if (is_small(set)) {
    auto idx = subset_indices(set.size(), 10000);
    auto x = set.images.index_select(0, idx).to(torch::kFloat64).div_(255.0);
    auto mean = x.mean({0, 2, 3});
    auto std = x.std({0, 2, 3});
    return {std::vector<double>(mean.data_ptr<double>(),
                                mean.data_ptr<double>() + mean.numel()),
            std::vector<double>(std.data_ptr<double>(),
                                std.data_ptr<double>() + std.numel())};
  }
  if (set.channels() == 1) return {{0.449}, {0.226}};
  return {{0.485, 0.456, 0.406}, {0.229, 0.224, 0.225}};
}

torch::Tensor normalize_images(const torch::Tensor& u8,
                               const std::vector<double>& mean,
                               const std::vector<double>& std) {
  const int64_t c = u8.size(1);
  auto m = torch::tensor(mean).view({1, c, 1, 1}).to(torch::kFloat32);
  auto s = torch::tensor(std).view({1, c, 1, 1}).to(torch::kFloat32);
  return u8.to(torch::kFloat32).div_(255.0).sub_(m).div_(s);
}

torch::Tensor subset_indices(int64_t n, int64_t count) {
  if (count <= 0 || count >= n) return torch::arange(n);
  return torch::linspace(0, n - 1, count).floor().to(torch::kInt64);
}

torch::Tensor EvalTransform::load(const ImageSet& set,
                                  const torch::Tensor& indices,
                                  torch::Tensor* readable) const {
  return normalize_images(
      load_eval_images(set, indices, resize_for_crop(crop), crop, readable), mean,
      std);
}

struct EvalBatches::State {
  State(const ImageSet& s, torch::Tensor i, EvalTransform t)
      : set(s), indices(std::move(i)), transform(std::move(t)) {}
  const ImageSet& set;
  torch::Tensor indices;
  EvalTransform transform;
  int64_t batch = 0, batches = 0, workers = 0, consumed = 0;
  std::vector<std::thread> threads;
  std::mutex mutex;
  std::condition_variable ready_cv, space_cv;
  std::map<int64_t, Batch> ready;
  std::exception_ptr error;
  bool stop = false;

  Batch make(int64_t b) const {
    const int64_t first = b * batch;
    const auto idx = indices.slice(0, first, std::min(indices.size(0), first + batch));
    Batch out;
    out.images = transform.load(set, idx, &out.readable);
    out.first = first;
    return out;
  }

  void work(int64_t w) {
    for (int64_t b = w; b < batches; b += workers) {
      {
        std::unique_lock<std::mutex> lock(mutex);
        space_cv.wait(lock, [&] { return stop || b < consumed + 2 * workers; });
        if (stop) return;
      }
      try {
        auto made = make(b);
        std::lock_guard<std::mutex> lock(mutex);
        ready.emplace(b, std::move(made));
      } catch (...) {
        std::lock_guard<std::mutex> lock(mutex);
        if (!error) error = std::current_exception();
      }
      ready_cv.notify_all();
    }
  }
};

EvalBatches::EvalBatches(const ImageSet& set, torch::Tensor indices,
                         EvalTransform transform, int64_t batch, int64_t workers)
    : state_(std::make_unique<State>(set, std::move(indices), std::move(transform))) {
  TORCH_CHECK(batch > 0, "expected --batch-size > 0, got ", batch);
  auto& s = *state_;
  s.batch = batch;
  s.batches = (s.indices.size(0) + batch - 1) / batch;
  // In-memory images need no decoding: threads would only copy.
  s.workers = set.on_disk() ? std::min(std::max<int64_t>(workers, 0), s.batches) : 0;
  for (int64_t w = 0; w < s.workers; ++w) s.threads.emplace_back([this, w] { state_->work(w); });
}

EvalBatches::~EvalBatches() {
  {
    std::lock_guard<std::mutex> lock(state_->mutex);
    state_->stop = true;
  }
  state_->space_cv.notify_all();
  for (auto& t : state_->threads) t.join();
}

std::optional<EvalBatches::Batch> EvalBatches::next() {
  auto& s = *state_;
  if (s.consumed >= s.batches) return std::nullopt;
  if (s.workers == 0) return s.make(s.consumed++);
  std::unique_lock<std::mutex> lock(s.mutex);
  s.ready_cv.wait(lock, [&] { return s.error || s.ready.count(s.consumed) > 0; });
  if (s.error) std::rethrow_exception(s.error);
  auto node = s.ready.extract(s.consumed++);
  lock.unlock();
  s.space_cv.notify_all();
  return std::move(node.mapped());
}

int64_t default_crop(int64_t side) {
  return side > 0 && side <= kSmallImageSide ? side : 224;
}

int64_t eval_crop(const ImageSet& set) {
  return set.on_disk() ? default_crop(typical_image_side(set)) : set.height();
}

EvalTransform eval_transform(const ImageSet& train, int64_t crop) {
  EvalTransform t;
  t.crop = crop > 0 ? crop : 224;
  std::tie(t.mean, t.std) = normalization(train);
  return t;
}

}  // namespace moco::data
