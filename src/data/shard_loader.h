// Two-view batches streamed from tar shards (data/shards.h), WebDataset's
// way: per epoch the shard order is shuffled (seeded by seed and epoch),
// each rank takes every world_size-th shard of it and each worker thread
// every workers-th of the rank's; a worker reads its shards in turn
// through a shuffle buffer, decodes and augments straight into its rows of
// the batches, which take one sample from each worker in turn (the row of
// a worker's k-th sample follows from the shards' sample counts). Nothing
// is kept per sample: memory is the buffers, whatever the number of
// samples.
//
// Deterministic for (seed, epoch, rank, workers); a run resumed at batch b
// reads (without decoding) up to where the uninterrupted run was and goes
// on with the same samples and the same augmentation. An unreadable image
// gives its slot to the worker's next readable one (a warning names
// shard:member; strict: an error), so batch positions never shift.
//
//   ShardLoader loader(set, moco_v2_augment(224),
//                      LoaderOptions().batch_size(256).workers(4).shuffle_buffer(1000));
//   loader.start_epoch(epoch);
//   while (auto batch = loader.next()) step(batch->view_q, batch->view_k);
#pragma once

#include "data/loader.h"
#include "data/shards.h"

namespace moco::data {

class ShardLoader : public BatchSource {
 public:
  ShardLoader(std::shared_ptr<const ImageSet> data, AugmentOptions augment,
              LoaderOptions options);
  ~ShardLoader() override;
  ShardLoader(const ShardLoader&) = delete;
  ShardLoader& operator=(const ShardLoader&) = delete;

  // The same for every epoch and rank: floor(S / world_size) shards a
  // rank at least, so the samples of the smallest that many shards,
  // divided by the batch.
  int64_t batches_per_epoch() const override { return batches_; }
  using BatchSource::start_epoch;
  void start_epoch(int64_t epoch, int64_t first_batch) override;
  std::optional<TwoViewBatch> next() override;
  double wait_seconds() const override { return wait_seconds_; }
  int64_t skipped_files() const override;

  // This epoch's shards for each worker of this rank (tests, logs).
  const std::vector<std::vector<int64_t>>& worker_shards() const { return worker_shards_; }

 private:
  struct Building;
  struct Worker;
  void stop_workers();
  void run_worker(int64_t w);
  // Position in the epoch of worker w's k-th sample: samples are taken one
  // from each worker in turn, a worker whose shards are used up skipped.
  int64_t position(int64_t w, int64_t k) const;
  int64_t depth() const;  // batches the workers may fill ahead of next()
  Building fresh_batch() const;

  std::shared_ptr<const ImageSet> data_;
  const ShardList& shards_;
  AugmentOptions augment_;
  LoaderOptions options_;
  int64_t batches_ = 0;
  int64_t epoch_ = 0, consumed_ = 0;
  double wait_seconds_ = 0;
  std::vector<std::vector<int64_t>> worker_shards_;
  std::vector<int64_t> expected_;  // samples in each worker's shards
  std::vector<int64_t> skip_;      // samples each worker passes over (a resume)

  std::vector<std::thread> threads_;
  std::mutex mutex_;
  std::condition_variable ready_cv_, space_cv_;
  std::map<int64_t, Building> building_;  // batches being filled
  int64_t finished_workers_ = 0;
  int64_t short_end_ = -1;  // first place a worker that ran short left empty
  std::exception_ptr error_;
  bool stop_ = false;
  std::atomic<int64_t> skipped_{0};
};

}  // namespace moco::data
