// The GPU path: the MoCo step on CUDA against the CPU path, fp16 with loss
// scaling, bf16 autocast and channels-last on CUDA, and `moco pretrain
// --device cuda` with NCCL as a user runs it. Each skips itself without a
// GPU, so the CPU machines compile and link all of it.
#include "models/moco.h"

#include "../support.h"
#include "train/amp.h"
#include "train/sgd.h"
#include "train/step.h"

namespace moco::models {

namespace {

auto tiny_encoder() {
  return ResNetOptions("resnet18").in_channels(1).small_stem(true).width(16)
      .bn_splits(4);
}

std::vector<torch::Tensor> snapshot(Moco& m) {
  std::vector<torch::Tensor> out;
  for (auto& p : m->encoder_q->parameters()) out.push_back(p.detach().clone());
  return out;
}

// Trains 3 steps on CUDA under `amp_mode` and checks that they were real,
// finite steps: each loss finite, the queue pointer moved, f_q changed.
void expect_trains_on_cuda(const std::string& amp_mode, bool channels_last) {
  torch::manual_seed(0);
  const torch::Device cuda(torch::kCUDA);
  Moco model(tiny_encoder(), MocoOptions().dim(16).K(64));
  model->to(cuda);
  if (channels_last) to_channels_last(*model);
  model->train();
  train::Sgd sgd(model->encoder_q->parameters(),
                 train::SgdOptions().lr(0.03).weight_decay(5e-4));
  train::Amp amp(amp_mode, cuda);
  const auto before = snapshot(model);
  auto fmt = channels_last ? at::MemoryFormat::ChannelsLast
                           : at::MemoryFormat::Contiguous;
  for (int i = 0; i < 3; ++i) {
    auto q = torch::randn({16, 1, 28, 28}, cuda).contiguous(fmt);
    auto k = torch::randn({16, 1, 28, 28}, cuda).contiguous(fmt);
    auto out = train::training_step(model, sgd, amp, q, k);
    EXPECT_TRUE(std::isfinite(out.loss.item<double>())) << amp_mode;
  }
  EXPECT_EQ(model->queue_ptr.item<int64_t>(), 48);
  const auto after = snapshot(model);
  double moved = 0;
  for (size_t i = 0; i < after.size(); ++i) {
    moved += (after[i] - before[i]).abs().sum().item<double>();
  }
  EXPECT_GT(moved, 0.0) << amp_mode << ": no parameter changed";
  if (amp.scaling()) {
    // A clean start: the scale is 2^16, halved for each overflowing step.
    EXPECT_LE(amp.scaler().value(), 65536.0);
    EXPECT_GE(amp.scaler().value(), 65536.0 / 8);
  }
}

}  // namespace

TEST(MocoCuda, StepMatchesTheCpuPath) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  torch::manual_seed(0);
  auto opts = MocoOptions().dim(16).K(64).shuffle_bn(false);
  Moco cpu(tiny_encoder(), opts);
  Moco gpu(tiny_encoder(), opts);
  test::copy_state(*cpu, *gpu);
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

TEST(MocoCuda, ChannelsLastMatchesNchw) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  torch::manual_seed(0);
  auto opts = MocoOptions().dim(16).K(64).shuffle_bn(false);
  // Plain BN: on channels-last memory split-BN takes runs of consecutive
  // samples as its groups, not every n-th (models/moco.h), so the two would
  // normalise different groups.
  auto enc = tiny_encoder().bn_splits(1);
  Moco nchw(enc, opts);
  Moco nhwc(enc, opts);
  test::copy_state(*nchw, *nhwc);
  nchw->to(torch::kCUDA);
  nhwc->to(torch::kCUDA);
  to_channels_last(*nhwc);
  auto q = torch::randn({16, 1, 28, 28}, torch::kCUDA);
  auto k = torch::randn({16, 1, 28, 28}, torch::kCUDA);
  auto a = nchw->forward(q, k);
  auto b = nhwc->forward(q.contiguous(at::MemoryFormat::ChannelsLast),
                         k.contiguous(at::MemoryFormat::ChannelsLast));
  EXPECT_NEAR(a.loss.item<double>(), b.loss.item<double>(), 1e-3);
  a.loss.backward();
  b.loss.backward();
  auto ga = nchw->encoder_q->parameters()[0].grad().cpu();
  auto gb = nhwc->encoder_q->parameters()[0].grad().cpu();
  EXPECT_TRUE(torch::allclose(ga, gb.contiguous(), 1e-2, 1e-3));
}

TEST(MocoCuda, Fp16WithLossScalingTrains) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  expect_trains_on_cuda("fp16", false);
}

TEST(MocoCuda, Bf16ChannelsLastTrains) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  expect_trains_on_cuda("bf16", true);
}

// The binary as a user starts it on one GPU: fp16, channels-last, and the
// launcher's one process per GPU over NCCL (a world of one still builds the
// communicator and runs every collective).
TEST(MocoCudaCli, PretrainOnTheGpuWithNccl) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  auto dir = test::scratch_dir("cuda_cli");
  test::fs::create_directories(dir / "data");
  test::write_idx_dataset(dir / "data", 64, 16, 4);
  const auto data = (dir / "data").string();
  auto r = test::run_moco(
      "pretrain '" + data + "' -a resnet18 --width 8 --max-steps 3 "
      "--device cuda --amp fp16 --channels-last" +
          std::string(test::kTinyRun) + "'" + (dir / "one").string() + "'",
      dir);
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_TRUE(test::fs::exists(dir / "one" / "checkpoint.pth.tar")) << r.out;
  r = test::run_moco(
      "pretrain '" + data + "' -a resnet18 --width 8 --max-steps 3 "
      "--device cuda --multiprocessing-distributed --dist-backend nccl "
      "--dist-url tcp://127.0.0.1:" + std::to_string(test::free_port()) +
          " --world-size 1 --rank 0" + std::string(test::kTinyRun) + "'" +
          (dir / "nccl").string() + "'",
      dir);
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_TRUE(test::fs::exists(dir / "nccl" / "checkpoint.pth.tar")) << r.out;
}

}  // namespace moco::models
