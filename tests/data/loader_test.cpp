#include "data/loader.h"

#include "../support.h"
#include "image_fixtures.h"

#include "data/image_decode.h"

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

// ---- image files ----------------------------------------------------------

namespace {

std::shared_ptr<ImageSet> file_set(const test::fs::path& dir) {
  return std::make_shared<ImageSet>(open_dataset(dir.string()).train);
}

std::vector<TwoViewBatch> file_batches(std::shared_ptr<ImageSet> set,
                                       int64_t workers, bool strict = false,
                                       int64_t* skipped = nullptr) {
  TwoViewLoader loader(set, moco_v2_augment(32),
                       LoaderOptions()
                           .batch_size(4)
                           .workers(workers)
                           .seed(8)
                           .strict(strict));
  loader.start_epoch(1);
  std::vector<TwoViewBatch> out;
  while (auto b = loader.next()) out.push_back(*b);
  if (skipped) *skipped = loader.skipped_files();
  return out;
}

}  // namespace

TEST(LoaderFiles, BatchesDoNotDependOnTheNumberOfWorkers) {
  auto dir = test::scratch_dir("imgs");
  // Large JPEGs, so the 32 px crops decode at a reduced DCT scale.
  for (int i = 0; i < 10; ++i) {
    test::small_jpeg(dir / ("j" + std::to_string(i) + ".jpg"), 200 + 10 * i,
                     300, i);
  }
  test::small_png(dir / "p.png", 50, 70, 99);
  test::small_png(dir / "q.png", 64, 64, 98);
  auto set = file_set(dir);
  const auto ref = file_batches(set, 0);
  ASSERT_EQ(ref.size(), 3u);
  for (int64_t w : {1, 3}) {
    const auto got = file_batches(set, w);
    ASSERT_EQ(got.size(), ref.size());
    for (size_t b = 0; b < ref.size(); ++b) {
      EXPECT_TRUE(got[b].view_q.equal(ref[b].view_q)) << w << " workers";
      EXPECT_TRUE(got[b].view_k.equal(ref[b].view_k)) << w << " workers";
      EXPECT_TRUE(got[b].indices.equal(ref[b].indices));
    }
  }
  EXPECT_EQ(ref[0].view_q.sizes(), (std::vector<int64_t>{4, 3, 32, 32}));
  EXPECT_FALSE(ref[0].view_q.equal(ref[0].view_k));
}

TEST(LoaderFiles, PngFilesGiveTheViewsOfTheSamePixelsInMemory) {
  auto dir = test::scratch_dir("png");
  std::vector<torch::Tensor> images;
  for (int i = 0; i < 8; ++i) {
    auto px = test::pattern(36, 36, 3, 20 + i);
    test::write_png(dir / ("i" + std::to_string(i) + ".png"), px, 36, 36);
    images.push_back(torch::from_blob(px.data(), {36, 36, 3}, torch::kUInt8)
                         .permute({2, 0, 1})
                         .clone());
  }
  auto files = file_set(dir);
  auto memory = std::make_shared<ImageSet>();
  memory->images = torch::stack(images);
  memory->description = "memory";
  const auto a = file_batches(files, 2);
  const auto b = file_batches(memory, 2);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_TRUE(a[i].view_q.equal(b[i].view_q));
    EXPECT_TRUE(a[i].view_k.equal(b[i].view_k));
  }
}

TEST(LoaderFiles, BadFilesAreSkippedCountedOrFatalWithStrictData) {
  auto dir = test::scratch_dir("bad");
  for (int i = 0; i < 9; ++i) {
    test::small_jpeg(dir / ("good" + std::to_string(i) + ".jpg"), 40, 40, i);
  }
  test::put_bytes(dir / "empty.jpg", {});
  test::truncate_copy(dir / "good0.jpg", dir / "cut.jpg",
                      test::fs::file_size(dir / "good0.jpg") / 2);
  test::write_file(dir / "text.png", "<html>not a png</html>");
  auto set = file_set(dir);
  ASSERT_EQ(set->size(), 12);
  std::vector<int64_t> bad;
  for (int64_t i = 0; i < set->size(); ++i) {
    const auto name = test::fs::path(set->files[i]).filename().string();
    if (name.rfind("good", 0) != 0) bad.push_back(i);
  }
  for (int64_t workers : {0, 2}) {
    int64_t skipped = 0;
    const auto batches = file_batches(set, workers, false, &skipped);
    ASSERT_EQ(batches.size(), 3u);  // full batches: bad slots are refilled
    EXPECT_EQ(skipped, 3);
    for (const auto& b : batches) {
      for (int64_t i = 0; i < b.indices.size(0); ++i) {
        const int64_t idx = b.indices[i].item<int64_t>();
        EXPECT_EQ(std::count(bad.begin(), bad.end(), idx), 0);
      }
    }
  }
  // --strict-data: the first bad file the epoch meets stops it, by name.
  const auto msg = test::error_message([&] { file_batches(set, 2, true); });
  EXPECT_NE(msg.find("--strict-data"), std::string::npos) << msg;
  EXPECT_NE(msg.find(dir.string()), std::string::npos) << msg;
}

TEST(LoaderFiles, EvalImagesMatchTorchvisionResizeAndCentreCrop) {
  auto dir = test::scratch_dir("eval");
  test::small_png(dir / "wide.png", 60, 90, 1);
  test::small_png(dir / "tall.png", 100, 50, 2);
  auto set = file_set(dir);  // sorted: tall, wide
  const auto ours = load_eval_images(*set, torch::arange(2), 36, 32);
  ASSERT_EQ(ours.sizes(), (std::vector<int64_t>{2, 3, 32, 32}));
  std::vector<std::pair<std::string, torch::Tensor>> in;
  for (int i = 0; i < 2; ++i) {
    const auto d = decode_image(read_file(set->files[i]), set->files[i]);
    in.emplace_back("img" + std::to_string(i),
        torch::from_blob(const_cast<uint8_t*>(d.pixels.data()),
                         {d.height, d.width, 3}, torch::kUInt8)
            .permute({2, 0, 1})
            .clone());
  }
  test::save_tensors(dir / "in.pt", in);
  test::run_python("tv_eval_resize.py",
                   "'" + (dir / "in.pt").string() + "' '" +
                       (dir / "out.pt").string() + "' 36 32",
                   dir);
  const auto ref = test::load_tensors(dir / "out.pt");
  for (int i = 0; i < 2; ++i) {
    const auto& r = ref.at("img" + std::to_string(i));
    ASSERT_EQ(r.sizes(), ours[i].sizes());
    const auto diff = (r.to(torch::kInt32) - ours[i].to(torch::kInt32)).abs();
    EXPECT_LE(diff.max().item<int>(), 1) << i;
  }
}

}  // namespace moco::data
