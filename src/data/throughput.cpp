#include "data/throughput.h"

#include <chrono>
#include <thread>

#include "data/loader.h"

namespace moco::data {

ThroughputResult measure_throughput(std::shared_ptr<const ImageSet> set,
                                    const AugmentOptions& augment,
                                    const ThroughputOptions& o) {
  const int64_t batch = std::min<int64_t>(o.batch_size(), set->size());
  auto loader = make_batch_source(set, augment,
                                  LoaderOptions()
                                      .batch_size(batch)
                                      .workers(o.workers())
                                      .seed(o.seed())
                                      .shuffle_buffer(o.shuffle_buffer()));
  using Clock = std::chrono::steady_clock;
  const auto t0 = Clock::now();
  loader->start_epoch(o.epoch());
  ThroughputResult r;
  while (auto b = loader->next()) {
    if (b->labels.defined()) r.labelled += b->labels.size(0);
    r.images += b->view_q.size(0);
    if (o.step_seconds() > 0) {
      std::this_thread::sleep_for(std::chrono::duration<double>(o.step_seconds()));
    }
    if (o.max_images() > 0 && r.images >= o.max_images()) break;
  }
  r.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  r.images_per_second = r.images / std::max(r.seconds, 1e-9);
  r.wait_share = loader->wait_seconds() / std::max(r.seconds, 1e-9);
  r.skipped_files = loader->skipped_files();
  return r;
}

}  // namespace moco::data
