#include "train/knn.h"

#include <cmath>

#include "../support.h"

namespace moco::train {

TEST(Knn, WeightedVoteByHand) {
  // Bank of 4 unit vectors in 2-D with labels 0, 0, 1, 1.
  auto bank = torch::tensor({{1.0f, 0.0f}, {0.8f, 0.6f}, {0.0f, 1.0f},
                             {-1.0f, 0.0f}})
                  .t()
                  .contiguous();
  auto labels = torch::tensor({0, 0, 1, 1}, torch::kInt64);
  auto f = torch::tensor({{0.6f, 0.8f}});
  // Similarities: 0.6, 0.96, 0.8, -0.6. Top-3: 0.96 (0), 0.8 (1), 0.6 (0).
  auto scores = knn_predict(f, bank, labels, 2, 3, 0.5);
  const double s0 = std::exp(0.96 / 0.5) + std::exp(0.6 / 0.5);
  const double s1 = std::exp(0.8 / 0.5);
  EXPECT_NEAR(scores[0][0].item<double>(), s0, 1e-4);
  EXPECT_NEAR(scores[0][1].item<double>(), s1, 1e-4);
  // With k = 1 only the nearest neighbour votes.
  auto s = knn_predict(f, bank, labels, 2, 1, 0.5);
  EXPECT_NEAR(s[0][1].item<double>(), 0.0, 1e-7);
}

TEST(Knn, EvaluateCountsTop1AndTop5) {
  // Six classes, one exemplar each at angle 30 c degrees; every test point
  // sits at 0 degrees, so class c ranks c + 1.
  std::vector<float> xy;
  for (int c = 0; c < 6; ++c) {
    xy.push_back(std::cos(c * M_PI / 6));
    xy.push_back(std::sin(c * M_PI / 6));
  }
  auto bank = torch::tensor(xy).view({6, 2});
  auto test = torch::tensor({1.0f, 0.0f}).repeat({4, 1});
  auto test_labels = torch::tensor({0, 5, 4, 1}, torch::kInt64);
  auto r = knn_evaluate(bank, torch::arange(6), test, test_labels, 6,
                        KnnOptions().k(6).t(0.1).batch(3));
  EXPECT_DOUBLE_EQ(r.top1, 25.0);  // only label 0 ranks first
  EXPECT_DOUBLE_EQ(r.top5, 75.0);  // label 5 ranks sixth
  EXPECT_EQ(r.bank_size, 6);
  EXPECT_EQ(r.test_size, 4);
}

}  // namespace moco::train
