#include "data/loader.h"

#include "../support.h"

namespace moco::data {

namespace {

std::shared_ptr<ImageSet> synthetic(int64_t n) {
  auto set = std::make_shared<ImageSet>();
  torch::manual_seed(0);
  set->images = torch::randint(0, 256, {n, 1, 12, 12}).to(torch::kUInt8);
  set->labels = torch::arange(n) % 3;
  set->num_classes = 3;
  set->description = "synthetic";
  return set;
}

std::vector<TwoViewBatch> epoch_batches(std::shared_ptr<ImageSet> set,
                                        int64_t workers, int64_t epoch) {
  TwoViewLoader loader(set, moco_v2_augment(12).mean({0.5}).std({0.5}),
                       LoaderOptions().batch_size(8).workers(workers).seed(4));
  loader.start_epoch(epoch);
  std::vector<TwoViewBatch> out;
  while (auto b = loader.next()) out.push_back(*b);
  return out;
}

}  // namespace

TEST(Loader, BatchesDoNotDependOnTheNumberOfWorkers) {
  auto set = synthetic(40);
  auto ref = epoch_batches(set, 0, 1);
  ASSERT_EQ(ref.size(), 5u);
  for (int64_t workers : {1, 3}) {
    auto got = epoch_batches(set, workers, 1);
    ASSERT_EQ(got.size(), ref.size());
    for (size_t b = 0; b < ref.size(); ++b) {
      EXPECT_TRUE(got[b].indices.equal(ref[b].indices));
      EXPECT_TRUE(got[b].view_q.equal(ref[b].view_q)) << workers << " " << b;
      EXPECT_TRUE(got[b].view_k.equal(ref[b].view_k)) << workers << " " << b;
    }
  }
}

TEST(Loader, EpochsArePermutationsAndViewsDiffer) {
  auto set = synthetic(40);
  auto e0 = epoch_batches(set, 2, 0);
  auto e1 = epoch_batches(set, 2, 1);
  std::vector<torch::Tensor> idx0, idx1;
  for (auto& b : e0) idx0.push_back(b.indices);
  for (auto& b : e1) idx1.push_back(b.indices);
  auto all0 = torch::cat(idx0), all1 = torch::cat(idx1);
  EXPECT_TRUE(std::get<0>(all0.sort()).equal(torch::arange(40)));
  EXPECT_FALSE(all0.equal(all1));
  EXPECT_FALSE(e0[0].view_q.equal(e0[0].view_k));
  EXPECT_EQ(e0[0].view_q.sizes(), (std::vector<int64_t>{8, 1, 12, 12}));
}

TEST(Loader, DropsTheLastPartialBatchAndShards) {
  auto set = synthetic(43);
  TwoViewLoader loader(set, moco_v1_augment(12).mean({0.5}).std({0.5}),
                       LoaderOptions().batch_size(8).workers(1));
  EXPECT_EQ(loader.batches_per_epoch(), 5);
  TwoViewLoader rank1(set, moco_v1_augment(12).mean({0.5}).std({0.5}),
                      LoaderOptions().batch_size(4).workers(0).rank(1)
                          .world_size(2));
  EXPECT_EQ(rank1.batches_per_epoch(), 5);  // 21 samples per rank
}

TEST(Loader, WorkerErrorsReachTheConsumerNamingTheDataset) {
  auto set = synthetic(16);
  // hue outside [-0.5, 0.5] makes adjust_hue throw inside a worker; this
  // needs 3 channels.
  set->images = torch::randint(0, 256, {16, 3, 12, 12}).to(torch::kUInt8);
  auto bad = moco_v1_augment(12).hue(0.9).jitter_p(1.0);
  TwoViewLoader loader(set, bad, LoaderOptions().batch_size(4).workers(2));
  loader.start_epoch(0);
  const auto msg = test::error_message([&] {
    while (loader.next()) {
    }
  });
  EXPECT_NE(msg.find("synthetic"), std::string::npos) << msg;
  EXPECT_NE(msg.find("hue_factor"), std::string::npos) << msg;
}

TEST(Loader, BatchLargerThanTheDatasetIsAnError) {
  auto set = synthetic(10);
  try {
    TwoViewLoader loader(set, moco_v1_augment(12),
                         LoaderOptions().batch_size(11));
    FAIL();
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what_without_backtrace()).find("--batch-size"),
              std::string::npos);
  }
}

}  // namespace moco::data
