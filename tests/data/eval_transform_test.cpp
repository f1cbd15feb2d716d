// The evaluation transform's pieces: subsets, the small-image rule, the
// normalisation statistics, by hand.
#include "data/eval_transform.h"

#include "../support.h"
#include "data/dataset.h"

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
