// The MoCo step on CUDA against the CPU path; skips itself without a GPU.
#include "models/moco.h"

#include "../support.h"

namespace moco::models {

TEST(MocoCuda, StepMatchesTheCpuPath) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  torch::manual_seed(0);
  auto opts = MocoOptions().dim(16).K(64).shuffle_bn(false);
  auto enc = ResNetOptions("resnet18").in_channels(1).small_stem(true)
                 .width(16).bn_splits(4);
  Moco cpu(enc, opts);
  Moco gpu(enc, opts);
  {
    torch::NoGradGuard g;
    auto src = cpu->named_parameters();
    for (auto& p : gpu->named_parameters()) p.value().copy_(src[p.key()]);
    auto bsrc = cpu->named_buffers();
    for (auto& b : gpu->named_buffers()) b.value().copy_(bsrc[b.key()]);
  }
  gpu->to(torch::kCUDA);
  auto q = torch::randn({16, 1, 28, 28});
  auto k = torch::randn({16, 1, 28, 28});
  auto a = cpu->forward(q, k);
  auto b = gpu->forward(q.cuda(), k.cuda());
  EXPECT_NEAR(a.loss.item<double>(), b.loss.item<double>(), 1e-3);
  EXPECT_TRUE(torch::allclose(a.keys, b.keys.cpu(), 1e-3, 1e-4));
  a.loss.backward();
  b.loss.backward();
  auto ga = cpu->encoder_q->parameters()[0].grad();
  auto gb = gpu->encoder_q->parameters()[0].grad().cpu();
  EXPECT_TRUE(torch::allclose(ga, gb, 1e-2, 1e-3));
  gpu->enqueue(b.keys);
  EXPECT_EQ(gpu->queue_ptr.item<int64_t>(), 16);
}

}  // namespace moco::models
