#include "data/dataset.h"

#include "../support.h"

namespace moco::data {

using test::scratch_dir;
using test::write_file;

TEST(Dataset, ReadsGzippedAndPlainIdx) {
  for (bool gz : {true, false}) {
    auto dir = scratch_dir(gz ? "gz" : "plain");
    test::write_idx_dataset(dir, 20, 12, 4, gz);
    auto s = open_dataset(dir.string());
    EXPECT_EQ(s.train.images.sizes(), (std::vector<int64_t>{20, 1, 12, 12}));
    EXPECT_EQ(s.train.images.dtype(), torch::kUInt8);
    ASSERT_TRUE(s.test.has_value());
    EXPECT_EQ(s.test->size(), 10);
    EXPECT_EQ(s.train.num_classes, 4);
    EXPECT_EQ(s.train.labels[5].item<int64_t>(), 1);  // 5 % 4
    EXPECT_EQ(s.train.images[5][0][3][0].item<int>(), 220);  // class-1 stripe
  }
}

TEST(Dataset, ReadsTheDebianFashionMnist) {
  if (!std::filesystem::exists(kDefaultDataset)) {
    GTEST_SKIP() << "dataset-fashion-mnist not installed";
  }
  auto s = open_dataset(kDefaultDataset);
  EXPECT_EQ(s.train.images.sizes(), (std::vector<int64_t>{60000, 1, 28, 28}));
  EXPECT_EQ(s.test->size(), 10000);
  EXPECT_EQ(s.train.num_classes, 10);
  // The first training image is an ankle boot (class 9), as published.
  EXPECT_EQ(s.train.labels[0].item<int64_t>(), 9);
}

TEST(Dataset, TruncatedIdxNamesTheFile) {
  auto dir = scratch_dir("trunc");
  auto img = test::idx_bytes(torch::zeros({4, 5, 5}, torch::kUInt8), true);
  write_file(dir / "train-images-idx3-ubyte", img.substr(0, img.size() - 7));
  const auto msg = test::error_message([&] { open_dataset(dir.string()); });
  EXPECT_NE(msg.find("truncated"), std::string::npos) << msg;
  EXPECT_NE(msg.find("train-images-idx3-ubyte"), std::string::npos) << msg;
}

TEST(Dataset, CorruptGzipAndBadMagicAreErrors) {
  auto dir = scratch_dir("corrupt");
  auto img = test::idx_bytes(torch::zeros({4, 5, 5}, torch::kUInt8), true);
  write_file(dir / "x.gz", img, true);
  std::string gz = test::read_text(dir / "x.gz");
  write_file(dir / "train-images-idx3-ubyte.gz", gz.substr(0, gz.size() / 2));
  EXPECT_THROW(open_dataset(dir.string()), c10::Error);

  auto dir2 = scratch_dir("magic");
  img[3] = 0x01;  // label magic in an image file
  write_file(dir2 / "train-images-idx3-ubyte", img);
  try {
    open_dataset(dir2.string());
    FAIL();
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what_without_backtrace()).find("magic"),
              std::string::npos);
  }
}

TEST(Dataset, LabelCountMismatchIsAnError) {
  auto dir = scratch_dir("labels");
  write_file(dir / "train-images-idx3-ubyte",
             test::idx_bytes(torch::zeros({4, 5, 5}, torch::kUInt8), true));
  write_file(dir / "train-labels-idx1-ubyte",
             test::idx_bytes(torch::zeros({3}, torch::kUInt8), false));
  EXPECT_THROW(open_dataset(dir.string()), c10::Error);
}

TEST(Dataset, ReadsCifar10AndCifar100Records) {
  auto dir = scratch_dir("cifar10");
  for (int b = 1; b <= 5; ++b) {
    std::string bytes;
    for (int r = 0; r < 3; ++r) {
      bytes.push_back(char((b + r) % 10));
      bytes.append(3072, char(b * 10 + r));
    }
    write_file(dir / ("data_batch_" + std::to_string(b) + ".bin"), bytes);
  }
  auto s = open_dataset(dir.string());
  EXPECT_EQ(s.train.images.sizes(), (std::vector<int64_t>{15, 3, 32, 32}));
  EXPECT_EQ(s.train.labels[4].item<int64_t>(), 3);  // batch 2, record 1
  EXPECT_EQ(s.train.images[4][2][31][31].item<int>(), 21);
  EXPECT_FALSE(s.test.has_value());

  auto dir100 = scratch_dir("cifar100");
  std::string bytes;
  bytes.push_back(char(3));   // coarse
  bytes.push_back(char(77));  // fine
  bytes.append(3072, char(5));
  write_file(dir100 / "train.bin", bytes);
  auto s100 = open_dataset(dir100.string());
  EXPECT_EQ(s100.train.labels[0].item<int64_t>(), 77);
  EXPECT_EQ(s100.train.num_classes, 100);

  write_file(dir100 / "train.bin", bytes.substr(0, 100));
  EXPECT_THROW(open_dataset(dir100.string()), c10::Error);
}

TEST(Dataset, MissingOrUnrecognisedFolderNamesThePath) {
  auto dir = scratch_dir("empty");
  try {
    open_dataset(dir.string());
    FAIL();
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what_without_backtrace()).find(dir.string()),
              std::string::npos);
  }
  try {
    open_dataset((dir / "nope").string());
    FAIL();
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what_without_backtrace()).find("not found"),
              std::string::npos);
  }
}

}  // namespace moco::data
