// The evaluation transform's pieces: subsets, the small-image rule, the
// normalisation statistics, by hand.
#include "data/eval_transform.h"

#include <fmt/format.h>

#include "../support.h"
#include "data/dataset.h"
#include "image_fixtures.h"

namespace moco::data {

TEST(EvalTransform, SubsetIndicesAreEvenlySpaced) {
  EXPECT_TRUE(subset_indices(10, 0).equal(torch::arange(10)));
  EXPECT_TRUE(subset_indices(10, 20).equal(torch::arange(10)));
  auto s = subset_indices(100, 4);
  EXPECT_TRUE(s.equal(torch::tensor({0, 33, 66, 99}, torch::kInt64)));
}

TEST(EvalTransform, SmallImagesGetTheirOwnStatisticsFilesImageNets) {
  ImageSet small;
  // Two 1-channel 2x2 images: pixels 0, 51, 102, 153 and 255 x4.
  small.images = torch::tensor({0, 51, 102, 153, 255, 255, 255, 255}, torch::kUInt8)
                     .view({2, 1, 2, 2});
  EXPECT_TRUE(is_small(small));
  const auto [mean, std] = normalization(small);
  const auto x = torch::tensor({0.0, 0.2, 0.4, 0.6, 1.0, 1.0, 1.0, 1.0}, torch::kFloat64);
  EXPECT_NEAR(mean[0], x.mean().item<double>(), 1e-12);
  EXPECT_NEAR(std[0], x.std().item<double>(), 1e-12);
  const auto t = eval_transform(small);
  const auto y = t.load(small, torch::arange(2));
  EXPECT_NEAR(y[0][0][0][1].item<double>(), (0.2 - mean[0]) / std[0], 1e-6);
  EXPECT_EQ(eval_crop(small), 2);
  ImageSet files;
  files.files = {"a.jpg"};
  EXPECT_FALSE(is_small(files));
  EXPECT_EQ(eval_crop(files), 224);
  EXPECT_EQ(normalization(files).first, (std::vector<double>{0.485, 0.456, 0.406}));
  files.file_channels = 1;
  EXPECT_EQ(normalization(files).first, (std::vector<double>{0.449}));
}

}  // namespace moco::data

namespace moco::data {

TEST(EvalTransform, BatchesDecodedByWorkersComeInTheOrderOfTheData) {
  // 23 image files of different sizes, one unreadable; batches of 4 in a
  // shuffled order of indices, made by 0 (the caller) and by 3 workers.
  auto dir = test::scratch_dir("eval_batches");
  for (int i = 0; i < 23; ++i) {
    const auto path = dir / "images" / fmt::format("{:02d}.jpg", i);
    test::fs::create_directories(path.parent_path());
    if (i == 9) {
      test::write_file(path, "not an image");
    } else {
      test::small_jpeg(path, 30 + i, 50 - i, static_cast<unsigned>(i));
    }
  }
  const auto set = open_dataset((dir / "images").string()).train;
  ASSERT_EQ(set.size(), 23);
  EvalTransform t;
  t.crop = 24;
  t.mean = {0.5, 0.5, 0.5};
  t.std = {0.25, 0.25, 0.25};
  const auto idx = torch::randperm(23, torch::TensorOptions().dtype(torch::kInt64));
  auto collect = [&](int64_t workers) {
    std::vector<torch::Tensor> images, ok;
    std::vector<int64_t> firsts;
    EvalBatches batches(set, idx, t, 4, workers);
    while (auto b = batches.next()) {
      images.push_back(b->images);
      ok.push_back(b->readable);
      firsts.push_back(b->first);
    }
    return std::make_tuple(torch::cat(images), torch::cat(ok), firsts);
  };
  const auto [x0, ok0, f0] = collect(0);
  const auto [x3, ok3, f3] = collect(3);
  ASSERT_EQ(x0.size(0), 23);
  EXPECT_TRUE(x0.equal(x3));
  EXPECT_TRUE(ok0.equal(ok3));
  EXPECT_EQ(f0, (std::vector<int64_t>{0, 4, 8, 12, 16, 20}));
  EXPECT_EQ(f3, f0);
  // Row r is image idx[r], as load() gives it; the unreadable one is black
  // and false.
  for (int64_t r = 0; r < 23; ++r) {
    const int64_t i = idx[r].item<int64_t>();
    EXPECT_EQ(ok0[r].item<bool>(), i != 9) << r;
    if (i == 9) continue;
    EXPECT_TRUE(x0[r].equal(t.load(set, idx.slice(0, r, r + 1))[0])) << r;
  }
}

}  // namespace moco::data
