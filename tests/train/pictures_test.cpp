// The report's pictures: the neighbour grid's layout, tiles and frames and
// the PCA embedding, against values worked out by hand.
#include "train/pictures.h"

#include <cmath>

#include "../support.h"
#include "data/dataset.h"

namespace moco::train {
namespace {

// Grey images of one value each, 32 x 32, one channel.
data::ImageSet grey_set(const std::vector<int>& values, const std::vector<int64_t>& labels) {
  data::ImageSet s;
  s.images = torch::empty({static_cast<int64_t>(values.size()), 1, 32, 32}, torch::kUInt8);
  for (size_t i = 0; i < values.size(); ++i) s.images[static_cast<int64_t>(i)].fill_(values[i]);
  s.labels = torch::tensor(labels, torch::kInt64);
  s.num_classes = 3;
  return s;
}

torch::Tensor at_angles(const std::vector<double>& degrees) {
  std::vector<float> xy;
  for (double d : degrees) {
    xy.push_back(static_cast<float>(std::cos(d * M_PI / 180)));
    xy.push_back(static_cast<float>(std::sin(d * M_PI / 180)));
  }
  return torch::tensor(xy).view({-1, 2});
}

std::vector<int> pixel(const torch::Tensor& grid, int64_t y, int64_t x) {
  return {grid[y][x][0].item<int>(), grid[y][x][1].item<int>(), grid[y][x][2].item<int>()};
}

std::vector<int> rgb(const uint8_t* c) { return {c[0], c[1], c[2]}; }

}  // namespace

TEST(Pictures, NeighbourGridShowsEachQueryWithItsNearestBankImagesFramedByClass) {
  const auto bank = grey_set({10, 50, 90, 130, 170, 210}, {0, 0, 1, 1, 2, 2});
  const auto test = grey_set({200, 250}, {0, 2});
  data::EvalTransform t;
  t.mean = {0.5};
  t.std = {0.25};
  KnnFeatures f;
  // Bank i at 20 i degrees: a query at 0 degrees ranks them 0, 1, 2, ...;
  // one at 100 degrees ranks them 5, 4, 3, ...
  f.bank = at_angles({0, 20, 40, 60, 80, 100});
  f.test = at_angles({0, 100});
  f.bank_index = torch::arange(6);
  f.test_index = torch::arange(2);
  f.bank_labels = bank.labels;
  f.test_labels = test.labels;
  const auto g = neighbour_grid(bank, test, t, f, /*queries=*/2, /*neighbours=*/3);
  // 32 px images become 64 px tiles; a 3 px frame makes 70 px boxes, 4 px
  // between boxes, 16 px between the query and its neighbours.
  ASSERT_EQ(g.sizes(), (std::vector<int64_t>{2 * 70 + 4, 70 + 16 + 3 * 70 + 2 * 4, 3}));
  const std::vector<int> white = {255, 255, 255};
  EXPECT_EQ(pixel(g, 70 + 1, 10), white);   // the gap between rows
  EXPECT_EQ(pixel(g, 10, 70 + 5), white);   // the gap after the query
  EXPECT_EQ(pixel(g, 1, 1), rgb(kQueryFrame));
  EXPECT_EQ(pixel(g, 30, 30), (std::vector<int>{200, 200, 200}));  // query 0
  EXPECT_EQ(pixel(g, 74 + 30, 30), (std::vector<int>{250, 250, 250}));  // query 1
  const std::vector<int> expect_value[2] = {{10, 50, 90}, {210, 170, 130}};
  const bool expect_same[2][3] = {{true, true, false}, {true, true, false}};
  for (int r = 0; r < 2; ++r) {
    for (int j = 0; j < 3; ++j) {
      const int64_t y = r * 74, x = 86 + j * 74;
      const int v = expect_value[r][j];
      EXPECT_EQ(pixel(g, y + 35, x + 35), (std::vector<int>{v, v, v})) << r << "," << j;
      EXPECT_EQ(pixel(g, y + 1, x + 1), rgb(expect_same[r][j] ? kSameClass : kOtherClass))
          << r << "," << j;
    }
  }
  // Every tile pixel is its image's value: nearest enlargement only repeats.
  const auto tile = g.slice(0, 3, 67).slice(1, 3, 67);
  EXPECT_TRUE(tile.eq(200).all().item<bool>());
}

TEST(Pictures, EmbeddingIsThePrincipalPlaneWithItsShareOfTheVariance) {
  // Around (5, 5, 5): +-2 along x and +-1 along y, nothing along z. By hand:
  // variances 8/3 and 2/3, so 80% and 20% of the total.
  const auto f = torch::tensor({{7.0f, 5.0f, 5.0f}, {3.0f, 5.0f, 5.0f},
                                {5.0f, 6.0f, 5.0f}, {5.0f, 4.0f, 5.0f}});
  const auto e = embedding_2d(f, torch::tensor({0, 0, 1, 2}, torch::kInt64),
                              {"coat", "shirt"}, 3);
  EXPECT_EQ(e["method"], "PCA");
  EXPECT_NEAR(e["explained_variance"][0].get<double>(), 0.8, 1e-6);
  EXPECT_NEAR(e["explained_variance"][1].get<double>(), 0.2, 1e-6);
  EXPECT_EQ(e["classes"], nlohmann::json({"coat", "shirt", "class 2"}));
  const auto& p = e["points"];
  ASSERT_EQ(p.size(), 4u);
  // Each axis's largest coefficient is positive: x = +2 for the first row.
  const double expect[4][2] = {{2, 0}, {-2, 0}, {0, 1}, {0, -1}};
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_NEAR(p[i][0].get<double>(), expect[i][0], 1e-4) << i;
    EXPECT_NEAR(p[i][1].get<double>(), expect[i][1], 1e-4) << i;
  }
  EXPECT_EQ(p[3][2].get<int64_t>(), 2);
  // At most max_points rows, evenly spaced.
  const auto big = embedding_2d(torch::randn({100, 8}), torch::zeros({100}, torch::kInt64),
                                {}, 1, 10);
  EXPECT_EQ(big["points"].size(), 10u);
  const auto msg = test::error_message(
      [&] { embedding_2d(torch::randn({2, 8}), torch::zeros({2}, torch::kInt64), {}, 1); });
  EXPECT_NE(msg.find("at least 3"), std::string::npos) << msg;
}

}  // namespace moco::train
