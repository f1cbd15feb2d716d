// The augmentation preview: the grid's layout by hand, two different views
// of each image, white gaps, and the PNG read back by our decoder; the CLI
// writes it for a dataset.
#include "data/preview.h"

#include "../support.h"
#include "data/dataset.h"
#include "data/image_decode.h"

namespace moco::data {
namespace {

TEST(Preview, GridHoldsTwoViewsPerImageAndRoundTripsThroughPng) {
  ImageSet set;
  set.images = torch::randint(0, 256, {5, 1, 12, 12}, torch::kUInt8);
  set.description = "random";
  const auto grid = augmentation_grid(set, moco_v1_augment(12), 3, 7);
  ASSERT_EQ(grid.sizes(), (std::vector<int64_t>{2 * 12 + kGridGap, 3 * 12 + 2 * kGridGap, 1}));
  // The gaps are white; the two views of an image differ.
  EXPECT_TRUE(grid.slice(0, 12, 12 + kGridGap).eq(255).all().item<bool>());
  EXPECT_TRUE(grid.slice(1, 12, 12 + kGridGap).eq(255).all().item<bool>());
  const auto top = grid.slice(0, 0, 12).slice(1, 0, 12);
  const auto bottom = grid.slice(0, 12 + kGridGap, 24 + kGridGap).slice(1, 0, 12);
  EXPECT_FALSE(top.equal(bottom));
  // Seeded: the same grid again.
  EXPECT_TRUE(grid.equal(augmentation_grid(set, moco_v1_augment(12), 3, 7)));
  const auto png = encode_png(grid.data_ptr<uint8_t>(), grid.size(0), grid.size(1), 1);
  const auto back = decode_image(png, "grid.png", DecodeOptions().channels(1));
  ASSERT_EQ(back.height, grid.size(0));
  ASSERT_EQ(back.width, grid.size(1));
  EXPECT_TRUE(std::equal(back.pixels.begin(), back.pixels.end(), grid.data_ptr<uint8_t>()));
}

TEST(Preview, CommandWritesThePngForADataset) {
  auto dir = test::scratch_dir("preview");
  test::fs::create_directories(dir / "data");
  test::write_idx_dataset(dir / "data", 16, 12, 4);
  const auto out = (dir / "aug.png").string();
  auto r = test::run_moco("preview-aug '" + (dir / "data").string() +
                              "' --images 4 --aug-plus -o '" + out + "'",
                          dir);
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("4 images"), std::string::npos) << r.out;
  const auto img = decode_image(read_file(out), out);
  EXPECT_EQ(img.height, 2 * 12 + kGridGap);
  EXPECT_EQ(img.width, 4 * 12 + 3 * kGridGap);
  r = test::run_moco("preview-aug --images 4", dir);
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.out.find("--data is required"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace moco::data
