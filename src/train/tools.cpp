#include "train/tools.h"

#include <c10/util/Exception.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <thread>

#include <fmt/format.h>

#include "core/log.h"
#include "core/text.h"
#include "data/augment.h"
#include "data/dataset.h"
#include "data/eval_transform.h"
#include "data/image_decode.h"
#include "data/preview.h"
#include "data/shards.h"
#include "data/throughput.h"
#include "io/report.h"
#include "train/pictures.h"

namespace moco::train {

int bench_data_command(const BenchDataOptions& o, const Invocation&) {
  validate_flags(o);
  TORCH_CHECK(o.crop_size() > 0, "expected --crop-size > 0, got ", o.crop_size());
  const int64_t workers = o.workers() >= 0
                              ? o.workers()
                              : std::max<int64_t>(1, std::thread::hardware_concurrency());
  auto splits = data::open_dataset(o.data(), open_options(o));
  auto set = std::make_shared<data::ImageSet>(std::move(splits.train));
  log_info("data: ", set->description, ": ", set->summary);
  auto augment = o.aug_plus() ? data::moco_v2_augment(o.crop_size())
                              : data::moco_v1_augment(o.crop_size());
  const auto [mean, std] = data::normalization(*set);
  augment.mean(mean).std(std);
  auto opts = data::ThroughputOptions()
                  .batch_size(o.batch_size())
                  .max_images(o.images())
                  .shuffle_buffer(o.shuffle_buffer());
  auto report = [&](const std::string& what, const data::ThroughputResult& r) {
    std::printf("%-34s %8.1f images/s  (%lld images in %.2f s%s)\n", what.c_str(),
                r.images_per_second, static_cast<long long>(r.images), r.seconds,
                r.skipped_files
                    ? fmt::format(", {} unreadable skipped", r.skipped_files).c_str()
                    : "");
    std::fflush(stdout);
  };
  // A warm-up pass fills the page cache, so both numbers measure decoding
  // and augmenting, not the disk.
  data::measure_throughput(set, augment, data::ThroughputOptions(opts).workers(workers));
  // Shards are read by a worker thread even with -j 0 (the calling thread
  // only hands the batches over).
  report(set->streamed() ? "1 worker (shards):" : "1 core (on the calling thread):",
         data::measure_throughput(set, augment,
                                  data::ThroughputOptions(opts).workers(0).epoch(1)));
  report(fmt::format("{} workers:", workers),
         data::measure_throughput(
             set, augment, data::ThroughputOptions(opts).workers(workers).epoch(2)));
  if (o.step_ms() > 0) {
    const auto stepped = data::measure_throughput(
        set, augment,
        data::ThroughputOptions(opts).workers(workers).epoch(3).step_seconds(
            o.step_ms() / 1000.0));
    std::printf("with a %.0f ms step per batch of %lld: waiting for data %.1f%% of "
                "the time\n",
                o.step_ms(), static_cast<long long>(o.batch_size()),
                100.0 * stepped.wait_share);
  }
  return 0;
}

int preview_aug_command(const PreviewAugOptions& o, const Invocation&) {
  validate_flags(o);
  TORCH_CHECK(o.images() > 0, "expected --images > 0, got ", o.images());
  auto splits = data::open_dataset(o.data(), open_options(o));
  data::require_indexed(splits.train, "preview-aug");
  // The crop pretraining would choose for this data.
  const int64_t side = data::typical_image_side(splits.train);
  const int64_t crop = o.crop_size() > 0 ? o.crop_size() : data::default_crop(side);
  auto augment = o.aug_plus() ? data::moco_v2_augment(crop) : data::moco_v1_augment(crop);
  const auto grid = data::augmentation_grid(splits.train, augment, o.images(),
                                            static_cast<uint64_t>(o.seed()));
  data::write_png(o.output(), grid);
  log_info("wrote ", o.output(), ": ", grid.size(1) / (crop + data::kGridGap) + 1,
           " images of ", splits.train.description, ", two ", o.aug_plus() ? "v2" : "v1",
           " views each (crop ", crop, ")");
  return 0;
}

int shard_command(const ShardOptions& o, const Invocation&) {
  validate_flags(o);
  const auto limit = data::parse_shard_size(o.shard_size());
  auto splits = data::open_dataset(o.data(), open_options(o));
  const data::ImageSet& set = data::split_named(splits, o.split(), o.data());
  log_info("shard: ", set.description, ": ", set.summary);
  const auto t0 = std::chrono::steady_clock::now();
  const auto r = data::write_dataset_shards(set, o.output(), o.split(), limit);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  log_info(fmt::format("wrote {} sample{} ({} labelled{}) in {} shard{}, {:.1f} MB of images, "
                       "in {:.1f} s",
                       r.samples, r.samples == 1 ? "" : "s", r.labelled,
                       r.skipped ? fmt::format(", {} unreadable skipped", r.skipped) : "",
                       r.shards.size(), r.shards.size() == 1 ? "" : "s", r.bytes / 1e6, seconds));
  // Quoted: pasted as printed, a shell would expand the braces into words.
  std::printf("%s\n", shell_quote(r.pattern).c_str());
  return 0;
}

int report_command(const ReportOptions& o, const Invocation&) {
  const auto r = io::write_report(o.run());
  std::printf("%s\n%s\n", r.html.c_str(), r.svg.c_str());
  return 0;
}

}  // namespace moco::train
