#include "data/dataset.h"

#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include "../support.h"
#include "image_fixtures.h"

namespace moco::data {

using test::scratch_dir;
using test::write_file;
namespace fs = std::filesystem;

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


// ---- image files ----------------------------------------------------------

// A small ImageFolder with nested folders, mixed-case extensions, a PNG and
// files that are not images.
static void make_image_folder(const fs::path& root) {
  fs::create_directories(root / "dog" / "nested");
  fs::create_directories(root / "cat");
  fs::create_directories(root / "zebra");
  test::small_jpeg(root / "dog" / "b.jpg", 20, 24, 1);
  test::small_jpeg(root / "dog" / "A.JPEG", 20, 24, 2);
  test::small_png(root / "dog" / "nested" / "c.png", 16, 16, 3);
  test::small_jpeg(root / "dog" / "z.Jpg", 20, 24, 4);
  test::small_png(root / "cat" / "x.PNG", 16, 16, 5);
  test::small_jpeg(root / "zebra" / "y.jpeg", 20, 24, 6);
  write_file(root / "dog" / "notes.txt", "not an image\n");
  write_file(root / "cat" / "thumbs.db", "junk");
}

TEST(ImageFiles, ImageFolderListsAsTorchvision) {
  auto dir = scratch_dir("folder");
  make_image_folder(dir / "train");
  make_image_folder(dir / "val");
  auto s = open_dataset(dir.string());
  ASSERT_TRUE(s.train.on_disk());
  EXPECT_EQ(s.train.size(), 6);
  EXPECT_EQ(s.train.channels(), 3);
  EXPECT_EQ(s.train.num_classes, 3);
  ASSERT_TRUE(s.test.has_value());
  EXPECT_EQ(s.test->size(), 6);
  EXPECT_NE(s.train.summary.find("JPEG 4, PNG 2"), std::string::npos)
      << s.train.summary;
  EXPECT_NE(s.train.summary.find("skipped 2 files"), std::string::npos)
      << s.train.summary;
  // torchvision's ImageFolder on the same folder: same classes, same order.
  test::run_python("tv_imagefolder.py",
                   "'" + (dir / "train").string() + "' '" +
                       (dir / "tv.json").string() + "'",
                   dir);
  const auto tv = nlohmann::json::parse(test::read_text(dir / "tv.json"));
  EXPECT_EQ(tv["classes"].get<std::vector<std::string>>(), s.train.classes);
  ASSERT_EQ(tv["samples"].size(), s.train.files.size());
  for (size_t i = 0; i < s.train.files.size(); ++i) {
    EXPECT_EQ(tv["samples"][i][0].get<std::string>(), s.train.files[i]) << i;
    EXPECT_EQ(tv["samples"][i][1].get<int64_t>(),
              s.train.labels[i].item<int64_t>()) << i;
  }
  // DIR/<class>/<image> without train/ gives the same listing.
  auto direct = open_dataset((dir / "train").string());
  EXPECT_EQ(direct.train.files, s.train.files);
  EXPECT_FALSE(direct.test.has_value());
}

TEST(ImageFiles, UnlabelledFolderIsSearchedRecursively) {
  auto dir = scratch_dir("photos");
  fs::create_directories(dir / "2024" / "june");
  test::small_jpeg(dir / "top.jpg");
  test::small_jpeg(dir / "2024" / "a.jpg");
  test::small_png(dir / "2024" / "june" / "b.png");
  write_file(dir / "2024" / "readme.md", "#");
  auto s = open_dataset(dir.string(), OpenOptions().channels(1));
  EXPECT_EQ(s.train.size(), 3);
  EXPECT_FALSE(s.train.labelled());
  EXPECT_EQ(s.train.channels(), 1);
  EXPECT_NE(s.train.summary.find("skipped 1 file that is not .jpg/.jpeg/.png"), std::string::npos);
  // Folder order, then names: top level first, as os.walk.
  EXPECT_EQ(fs::path(s.train.files[0]).filename(), "top.jpg");
  EXPECT_EQ(fs::path(s.train.files[2]).filename(), "b.png");
}

TEST(ImageFiles, FileListsWithAndWithoutLabels) {
  auto dir = scratch_dir("list");
  fs::create_directories(dir / "img");
  test::small_jpeg(dir / "img" / "one.jpg");
  test::small_png(dir / "img" / "two words.png");
  const auto abs_path = (dir / "img" / "one.jpg").string();
  write_file(dir / "labelled.txt", "# comment\nimg/one.jpg 3\n\nimg/two words.png 1\n" +
                                       abs_path + " 0\n");
  auto s = open_dataset((dir / "labelled.txt").string());
  ASSERT_EQ(s.train.size(), 3);
  EXPECT_EQ(s.train.files[1], (dir / "img" / "two words.png").string());
  EXPECT_EQ(s.train.labels[0].item<int64_t>(), 3);
  EXPECT_EQ(s.train.labels[1].item<int64_t>(), 1);
  EXPECT_EQ(s.train.num_classes, 4);

  write_file(dir / "plain.txt", "img/one.jpg\nimg/two words.png\n");
  auto p = open_dataset((dir / "plain.txt").string());
  EXPECT_EQ(p.train.size(), 2);
  EXPECT_FALSE(p.train.labelled());

  write_file(dir / "mixed.txt", "img/one.jpg 1\nimg/two words.png\n");
  auto msg = test::error_message(
      [&] { open_dataset((dir / "mixed.txt").string()); });
  EXPECT_NE(msg.find("line 2"), std::string::npos) << msg;

  // Missing files: skipped with a warning, or an error with --strict-data.
  write_file(dir / "missing.txt", "img/one.jpg\nimg/gone.jpg\n");
  auto m = open_dataset((dir / "missing.txt").string());
  EXPECT_EQ(m.train.size(), 1);
  EXPECT_NE(m.train.summary.find("1 missing"), std::string::npos);
  msg = test::error_message([&] {
    open_dataset((dir / "missing.txt").string(), OpenOptions().strict(true));
  });
  EXPECT_NE(msg.find("gone.jpg"), std::string::npos) << msg;
  EXPECT_NE(msg.find("line 2"), std::string::npos) << msg;

  write_file(dir / "none.txt", "img/gone.jpg\n");
  msg = test::error_message([&] { open_dataset((dir / "none.txt").string()); });
  EXPECT_NE(msg.find("none.txt"), std::string::npos) << msg;
}

TEST(ImageFiles, FoldersWithoutImagesAreErrorsBeforeTraining) {
  auto dir = scratch_dir("noimages");
  fs::create_directories(dir / "a" / "b");
  write_file(dir / "a" / "b" / "notes.txt", "x");
  auto msg = test::error_message([&] { open_dataset(dir.string()); });
  EXPECT_NE(msg.find("no images"), std::string::npos) << msg;
  EXPECT_NE(msg.find(dir.string()), std::string::npos) << msg;
  fs::create_directories(dir / "empty" / "train");
  msg = test::error_message([&] { open_dataset((dir / "empty").string()); });
  EXPECT_NE(msg.find("no images"), std::string::npos) << msg;
  msg = test::error_message(
      [&] { open_dataset(dir.string(), OpenOptions().channels(2)); });
  EXPECT_NE(msg.find("--channels"), std::string::npos) << msg;
}

TEST(ImageFiles, Stl10BinaryIsColumnMajor) {
  auto dir = scratch_dir("stl") / "stl10_binary";
  fs::create_directories(dir);
  // Image i has value (i + 7 * c + 3 * x + y) % 251 at (c, y, x); the file
  // stores each channel column by column, i.e. [c][x][y].
  auto make = [&](const std::string& name, int n, int first) {
    std::string bytes;
    for (int i = 0; i < n; ++i) {
      for (int c = 0; c < 3; ++c) {
        for (int x = 0; x < 96; ++x) {
          for (int y = 0; y < 96; ++y) {
            bytes.push_back(char((first + i + 7 * c + 3 * x + y) % 251));
          }
        }
      }
    }
    write_file(dir / name, bytes);
  };
  make("unlabeled_X.bin", 3, 100);
  make("train_X.bin", 2, 0);
  make("test_X.bin", 2, 50);
  write_file(dir / "train_y.bin", std::string{char(1), char(10)});
  write_file(dir / "test_y.bin", std::string{char(3), char(4)});
  auto s = open_dataset(dir.parent_path().string());
  EXPECT_EQ(s.train.size(), 5);  // unlabeled + train, for pretraining
  EXPECT_FALSE(s.train.labelled());
  ASSERT_TRUE(s.train_labelled.has_value());
  EXPECT_EQ(s.train_labelled->size(), 2);
  EXPECT_EQ(s.train_labelled->labels[1].item<int64_t>(), 9);
  EXPECT_EQ(s.test->labels[0].item<int64_t>(), 2);
  auto img = s.train.images;
  EXPECT_EQ(img[0][1][5][9].item<int>(), (100 + 7 + 27 + 5) % 251);  // y=5, x=9
  EXPECT_EQ(img[3][2][90][1].item<int>(), (0 + 14 + 3 + 90) % 251);  // train 0
  EXPECT_EQ(s.test->images[1][0][0][2].item<int>(), (51 + 6) % 251);
  // --channels 1 converts in-memory sets too.
  auto grey = open_dataset(dir.string(), OpenOptions().channels(1));
  EXPECT_EQ(grey.train.channels(), 1);

  write_file(dir / "test_X.bin", std::string(1000, 'x'));
  auto msg = test::error_message([&] { open_dataset(dir.string()); });
  EXPECT_NE(msg.find("test_X.bin"), std::string::npos) << msg;
}

// ---- hostile trees, lists and archives --------------------------------------

// Two links to the folder itself once made the walk endless (3 GB and
// growing); a link to the root listed every class under "cat".
TEST(HostileData, SymlinkLoopsAreFollowedOnce) {
  auto dir = scratch_dir("loops");
  make_image_folder(dir);
  fs::create_directory_symlink(".", dir / "cat" / "l1");
  fs::create_directory_symlink(".", dir / "cat" / "l2");
  fs::create_directory_symlink("..", dir / "cat" / "loop");
  fs::create_directory_symlink("../dog", dir / "zebra" / "to_dog");
  auto s = open_dataset(dir.string());
  EXPECT_EQ(s.train.size(), 6);  // as without the links
  const auto labels = s.train.labels;
  EXPECT_EQ((labels == 0).sum().item<int64_t>(), 1);  // cat
  EXPECT_EQ((labels == 1).sum().item<int64_t>(), 4);  // dog
  EXPECT_EQ((labels == 2).sum().item<int64_t>(), 1);  // zebra
  // Unlabelled: a loop below the root, and a second path to a folder.
  auto flat = scratch_dir("flat");
  test::small_jpeg(flat / "top.jpg");
  fs::create_directories(flat / "a");
  test::small_jpeg(flat / "a" / "x.jpg");
  fs::create_directory_symlink("..", flat / "a" / "up");
  fs::create_directory_symlink("a", flat / "also_a");
  auto u = open_dataset(flat.string());
  EXPECT_EQ(u.train.size(), 2);
}

// A FIFO named in a list blocked the reader forever; a folder named like an
// image gave "std::bad_alloc"; a label of 20 digits gave "stoll".
TEST(HostileData, FileListsNameOnlyRegularFiles) {
  auto dir = scratch_dir("list");
  test::small_jpeg(dir / "ok.jpg");
  ASSERT_EQ(::mkfifo((dir / "pipe.jpg").c_str(), 0644), 0);
  fs::create_directories(dir / "d.jpg");
  write_file(dir / "list.txt", "ok.jpg\npipe.jpg\nd.jpg\n");
  auto s = open_dataset((dir / "list.txt").string());
  EXPECT_EQ(s.train.size(), 1);
  auto msg = test::error_message([&] {
    open_dataset((dir / "list.txt").string(), OpenOptions().strict(true));
  });
  EXPECT_NE(msg.find("pipe.jpg, which is not a regular file"),
            std::string::npos)
      << msg;
  write_file(dir / "labels.txt", "ok.jpg 1\nok.jpg 99999999999999999999\n");
  msg =
      test::error_message([&] { open_dataset((dir / "labels.txt").string()); });
  EXPECT_NE(msg.find("line 2 of"), std::string::npos) << msg;
  EXPECT_NE(msg.find("99999999999999999999"), std::string::npos) << msg;
}

// A .gz of a few kB whose header claims 4 tiny images but inflates to 64 MB
// of zeros: refused once the bytes pass the header's size, not read whole.
TEST(HostileData, GzipIdxIsCheckedAgainstItsHeaderWhileInflating) {
  auto dir = scratch_dir("bomb");
  auto img = test::idx_bytes(torch::zeros({4, 5, 5}, torch::kUInt8), true);
  write_file(dir / "train-images-idx3-ubyte.gz",
             img + std::string(64 << 20, '\0'), true);
  const auto msg = test::error_message([&] { open_dataset(dir.string()); });
  EXPECT_NE(msg.find("expected 116 bytes (from the header)"), std::string::npos)
      << msg;
  EXPECT_NE(msg.find("train-images-idx3-ubyte.gz"), std::string::npos) << msg;
}

TEST(HostileData, IdxDimensionsThatOverflowNameTheFile) {
  auto dir = scratch_dir("overflow");
  std::string head = {0, 0, 8, 3};
  for (int i = 0; i < 3; ++i)
    head += std::string{'\x7f', '\xff', '\xff', '\xff'};
  write_file(dir / "train-images-idx3-ubyte", head + "xx");
  const auto msg = test::error_message([&] { open_dataset(dir.string()); });
  EXPECT_NE(msg.find("2147483647x2147483647x2147483647"), std::string::npos)
      << msg;
  EXPECT_NE(msg.find("damaged header"), std::string::npos) << msg;
}

}  // namespace moco::data