// Labelled subsets: stratified counts checked by hand, seeded and nested,
// written and read back, and damaged lists refused naming file and line.
#include "data/subsets.h"

#include <map>

#include "../support.h"
#include "data/dataset.h"

namespace moco::data {
namespace {

namespace fs = test::fs;

// 3 classes of 100, 50 and 7 images, interleaved.
torch::Tensor uneven_labels() {
  std::vector<int64_t> y;
  for (int64_t i = 0; i < 100; ++i) y.push_back(0);
  for (int64_t i = 0; i < 50; ++i) y.push_back(1);
  for (int64_t i = 0; i < 7; ++i) y.push_back(2);
  auto t = torch::tensor(y);
  return t.index_select(0, torch::randperm(t.size(0), torch::TensorOptions().dtype(torch::kLong)));
}

std::map<int64_t, int64_t> per_class(const torch::Tensor& labels,
                                     const std::vector<int64_t>& idx) {
  std::map<int64_t, int64_t> count;
  for (int64_t i : idx) ++count[labels[i].item<int64_t>()];
  return count;
}

TEST(Subsets, FractionsArePerClassRoundedWithAtLeastOne) {
  torch::manual_seed(3);
  const auto y = uneven_labels();
  // 10%: round(10), round(5), round(0.7) = 1.
  auto idx = stratified_subset(y, {0.1, 0}, 0);
  EXPECT_EQ(per_class(y, idx), (std::map<int64_t, int64_t>{{0, 10}, {1, 5}, {2, 1}}));
  EXPECT_TRUE(std::is_sorted(idx.begin(), idx.end()));
  // 1%: every class keeps one image.
  idx = stratified_subset(y, {0.01, 0}, 0);
  EXPECT_EQ(per_class(y, idx), (std::map<int64_t, int64_t>{{0, 1}, {1, 1}, {2, 1}}));
  // All of them.
  EXPECT_EQ(stratified_subset(y, {1.0, 0}, 0).size(), 157u);
  // Exactly N per class.
  idx = stratified_subset(y, {1.0, 7}, 0);
  EXPECT_EQ(per_class(y, idx), (std::map<int64_t, int64_t>{{0, 7}, {1, 7}, {2, 7}}));
}

TEST(Subsets, SeededReproducibleAndNested) {
  torch::manual_seed(4);
  const auto y = uneven_labels();
  const auto a = stratified_subset(y, {0.1, 0}, 5);
  EXPECT_EQ(a, stratified_subset(y, {0.1, 0}, 5));
  EXPECT_NE(a, stratified_subset(y, {0.1, 0}, 6));
  // The 10% subset of a seed contains its 2% subset; 4 per class contains 2.
  const auto small = stratified_subset(y, {0.02, 0}, 5);
  for (int64_t i : small) {
    EXPECT_TRUE(std::binary_search(a.begin(), a.end(), i)) << i;
  }
  const auto four = stratified_subset(y, {1.0, 4}, 5);
  for (int64_t i : stratified_subset(y, {1.0, 2}, 5)) {
    EXPECT_TRUE(std::binary_search(four.begin(), four.end(), i)) << i;
  }
}

TEST(Subsets, ImpossibleSizesNameTheFlag) {
  const auto y = uneven_labels();
  auto msg = test::error_message([&] { stratified_subset(y, {1.0, 8}, 0); });
  EXPECT_NE(msg.find("--labels-per-class <= 7"), std::string::npos) << msg;
  EXPECT_NE(msg.find("class 2 has only 7"), std::string::npos) << msg;
  msg = test::error_message([&] { stratified_subset(y, {0.0, 0}, 0); });
  EXPECT_NE(msg.find("--label-fraction in (0, 1]"), std::string::npos) << msg;
  msg = test::error_message([&] { stratified_subset(y, {1.5, 0}, 0); });
  EXPECT_NE(msg.find("--label-fraction"), std::string::npos) << msg;
}

TEST(Subsets, WrittenListsReadBackAndDamagedOnesAreRefused) {
  auto dir = test::scratch_dir("subsets");
  ImageSet set;
  for (int i = 0; i < 12; ++i) set.files.push_back("/img/" + std::to_string(i) + ".png");
  set.labels = torch::arange(12) % 3;
  set.num_classes = 3;
  set.description = "a list";
  const auto idx = stratified_subset(set.labels, {1.0, 2}, 1);
  const auto path = (dir / "labels.txt").string();
  write_subset(path, set, idx);
  EXPECT_EQ(read_subset(path, set), idx);
  const auto text = test::read_text(path);
  EXPECT_EQ(text.rfind("# moco labelled subset: 6 of 12", 0), 0u) << text;
  const ImageSet few = select(set, idx);
  ASSERT_EQ(few.size(), 6);
  for (size_t i = 0; i < idx.size(); ++i) {
    EXPECT_EQ(few.files[i], set.files[static_cast<size_t>(idx[i])]);
    EXPECT_EQ(few.labels[static_cast<int64_t>(i)].item<int64_t>(), idx[i] % 3);
  }
  // Another dataset's list: a label that differs, an index out of range, a
  // file that differs, and text that is no list.
  const std::string first = std::to_string(idx[0]);
  auto check_refused = [&](const std::string& body, const std::string& what) {
    test::write_file(dir / "bad.txt", body);
    const auto msg = test::error_message(
        [&] { read_subset((dir / "bad.txt").string(), set); });
    EXPECT_NE(msg.find((dir / "bad.txt").string() + ":2"), std::string::npos) << msg;
    EXPECT_NE(msg.find(what), std::string::npos) << msg;
  };
  check_refused("# c\n" + first + "\t" + std::to_string((idx[0] + 1) % 3) +
                    "\t/img/" + first + ".png\n",
                "has label");
  check_refused("# c\n40\t0\t\n", "outside the 12 training images");
  check_refused("# c\n" + first + "\t" + std::to_string(idx[0] % 3) + "\t/x.png\n",
                "not /x.png");
  check_refused("# c\nthree\t1\n", "expected 'index<TAB>label<TAB>file'");
}

TEST(Subsets, HoldOutValidationIsStratifiedAndDisjoint) {
  Splits s;
  s.train.images = torch::arange(40, torch::kUInt8).view({40, 1, 1, 1});
  s.train.labels = torch::arange(40) % 4;
  s.train.num_classes = 4;
  hold_out_validation(s, 0.2, 0);
  ASSERT_TRUE(s.test.has_value());
  EXPECT_EQ(s.test->size(), 8);
  EXPECT_EQ(s.train.size(), 32);
  for (int64_t c = 0; c < 4; ++c) {
    EXPECT_EQ(s.test->labels.eq(c).sum().item<int64_t>(), 2) << c;
  }
  // No image is in both: the pixel values are the original indices.
  auto all = torch::cat({s.train.images.flatten(), s.test->images.flatten()});
  EXPECT_EQ(std::get<0>(at::_unique(all)).numel(), 40);
}

}  // namespace
}  // namespace moco::data
