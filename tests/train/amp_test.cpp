// Mixed precision: the loss scaler's rules (torch.cuda.amp.GradScaler's,
// checked by hand) and the autocast scope.
#include <ATen/autocast_mode.h>

#include "../support.h"
#include "core/autocast.h"
#include "train/amp.h"

namespace moco::train {
namespace {

TEST(LossScaler, UnscalesGrowsAndBacksOffAsGradScaler) {
  LossScaler s(/*init_scale=*/8.0, /*growth=*/2.0, /*backoff=*/0.5,
               /*interval=*/2);
  auto p = torch::ones({3}, torch::requires_grad());
  auto q = torch::ones({2}, torch::requires_grad());
  EXPECT_DOUBLE_EQ(s.scale(torch::tensor(1.5)).item<double>(), 12.0);

  // Finite gradients: divided by the scale; after `interval` good steps the
  // scale doubles.
  s.scale((p * torch::tensor({1.0, 2.0, 3.0})).sum() + q.sum()).backward();
  EXPECT_TRUE(s.unscale_and_update({p, q}));
  EXPECT_TRUE(torch::allclose(p.grad(), torch::tensor({1.0f, 2.0f, 3.0f})));
  EXPECT_TRUE(torch::allclose(q.grad(), torch::ones({2})));
  EXPECT_DOUBLE_EQ(s.value(), 8.0);
  EXPECT_EQ(s.growth_tracker(), 1);
  EXPECT_TRUE(s.unscale_and_update({p, q}));
  EXPECT_DOUBLE_EQ(s.value(), 16.0);
  EXPECT_EQ(s.growth_tracker(), 0);

  // An inf or NaN anywhere: the step is refused, the scale halves and the
  // count of good steps restarts.
  q.mutable_grad().fill_(std::numeric_limits<float>::infinity());
  EXPECT_FALSE(s.unscale_and_update({p, q}));
  EXPECT_DOUBLE_EQ(s.value(), 8.0);
  EXPECT_EQ(s.growth_tracker(), 0);
  q.mutable_grad().fill_(std::numeric_limits<float>::quiet_NaN());
  EXPECT_FALSE(s.unscale_and_update({p, q}));
  EXPECT_DOUBLE_EQ(s.value(), 4.0);

  // A parameter without a gradient is left alone.
  auto r = torch::ones({2}, torch::requires_grad());
  q.mutable_grad().fill_(4.0);
  EXPECT_TRUE(s.unscale_and_update({q, r}));
  EXPECT_TRUE(torch::allclose(q.grad(), torch::ones({2})));
  EXPECT_FALSE(r.grad().defined());
}

TEST(Amp, AutocastScopeAndModes) {
  Amp off("off", torch::kCPU);
  EXPECT_FALSE(off.scaling());
  {
    auto g = off.autocast();
    EXPECT_FALSE(moco::autocast::enabled(c10::DeviceType::CPU));
  }
  Amp bf16("bf16", torch::kCPU);
  {
    auto g = bf16.autocast();
    EXPECT_TRUE(moco::autocast::enabled(c10::DeviceType::CPU));
    auto w = torch::randn({4, 3}), x = torch::randn({2, 3});
    EXPECT_EQ(torch::nn::functional::linear(x, w).scalar_type(), torch::kBFloat16);
  }
  EXPECT_FALSE(moco::autocast::enabled(c10::DeviceType::CPU));
  // Without scaling the loss and the step pass through.
  auto loss = torch::tensor(2.0);
  EXPECT_TRUE(bf16.scale(loss).equal(loss));
  EXPECT_TRUE(bf16.unscale_and_check({}));
}

TEST(Amp, Fp16OnTheCpuIsRefusedNamingTheFlag) {
  try {
    Amp a("fp16", torch::kCPU);
    FAIL() << "fp16 on the CPU accepted";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what_without_backtrace()).find("--amp fp16"),
              std::string::npos);
  }
  EXPECT_THROW(Amp("fp8", torch::kCPU), c10::Error);
}

}  // namespace
}  // namespace moco::train
