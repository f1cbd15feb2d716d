#include "train/sgd.h"

#include <cmath>

#include "../support.h"

namespace moco::train {

TEST(Sgd, MatchesTorchOptimSgdOverSeveralSteps) {
  torch::manual_seed(0);
  std::vector<torch::Tensor> ours, theirs;
  for (auto shape : {std::vector<int64_t>{3, 4}, std::vector<int64_t>{5}}) {
    auto p = torch::randn(shape);
    ours.push_back(p.clone().set_requires_grad(true));
    theirs.push_back(p.clone().set_requires_grad(true));
  }
  Sgd sgd(ours, SgdOptions().lr(0.1).momentum(0.9).weight_decay(1e-2));
  torch::optim::SGD ref(theirs, torch::optim::SGDOptions(0.1)
                                    .momentum(0.9)
                                    .weight_decay(1e-2));
  for (int step = 0; step < 4; ++step) {
    auto target = torch::randn({3, 4});
    auto loss_of = [&](std::vector<torch::Tensor>& p) {
      return (p[0] - target).pow(2).sum() + p[1].pow(3).sum();
    };
    loss_of(ours).backward();
    sgd.step();
    sgd.zero_grad();
    ref.zero_grad();
    loss_of(theirs).backward();
    ref.step();
    for (size_t i = 0; i < ours.size(); ++i) {
      EXPECT_TRUE(torch::allclose(ours[i], theirs[i], 1e-5, 1e-6))
          << "step " << step << " param " << i;
    }
  }
  EXPECT_EQ(sgd.momentum_buffers().size(), 2u);
  EXPECT_FALSE(ours[0].grad().defined());
}

TEST(Sgd, ScheduleIsTheOfficialOne) {
  EXPECT_DOUBLE_EQ(learning_rate(0.03, 0, 200, false, {120, 160}), 0.03);
  EXPECT_NEAR(learning_rate(0.03, 120, 200, false, {120, 160}), 0.003, 1e-12);
  EXPECT_NEAR(learning_rate(0.03, 199, 200, false, {120, 160}), 0.0003,
              1e-12);
  EXPECT_DOUBLE_EQ(learning_rate(0.06, 0, 10, true, {}), 0.06);
  EXPECT_NEAR(learning_rate(0.06, 5, 10, true, {}), 0.03, 1e-12);
  EXPECT_NEAR(learning_rate(0.06, 9, 10, true, {}),
              0.06 * 0.5 * (1 + std::cos(M_PI * 0.9)), 1e-12);
}

}  // namespace moco::train
