// Step parity with the official code: N MoCo steps as `moco pretrain` takes
// them (build_model, make_optimizer, the lr schedule, training_step) and in
// the Python reference (bench/moco_peer.py: moco/builder.py and
// main_moco.py's semantics on torchvision, via tests/python/moco_parity.py),
// from the same initial weights, on the same batches, with the same shuffle
// permutations, split-BN as the CIFAR demo, on the CPU. Compared: the loss
// and lr at every step, and after the last step every parameter and BN
// buffer of f_q and f_k and the queue.
//
// What this catches that the by-hand unit tests cannot: the order of the
// momentum update, key forward, loss and enqueue; BN running statistics
// under split-BN; weight decay on which tensors; the schedule's epochs.
//
// Precision. 6 steps over 3 epochs run in float64 on both sides, to 1e-10
// relative (measured: 2e-14 at worst). In float32 the comparison after the
// first step holds to 1e-5 (measured: 1.5e-6), but not after more: at
// random initialisation all features are nearly collinear, so the InfoNCE
// gradient is a difference of near-equal terms and float32 rounding grows
// ~10x a step. The reference differs from itself by 2e-3 after two steps
// and 1e-1 after four when only its thread count changes (1 vs 2), so no
// float32 implementation could be held to 1e-5 there.
#include "train/pretrain.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "../support.h"
#include "train/amp.h"
#include "train/backbone.h"
#include "train/step.h"

namespace moco::train {
namespace {

struct Case {
  std::string name;
  bool mlp = false;
  double T = 0.07;
  bool symmetric = false;
  bool cos = false;
};

constexpr int64_t kBatch = 16, kSize = 16;

struct Precision {
  bool f64;
  int64_t epochs, steps_per_epoch;
  double tolerance;  // relative, per tensor (and on each step's loss)
};
const Precision kFloat64{true, 3, 2, 1e-10};
const Precision kFloat32{false, 1, 1, 1e-5};

PretrainOptions options_of(const Case& c, int64_t epochs) {
  return PretrainOptions()
      .arch("resnet18")
      .stem("small")
      .width(64)  // torchvision's shapes
      .moco_dim(128)
      .moco_k(64)
      .moco_m(0.99)
      .moco_t(c.T)
      .mlp(c.mlp)
      .symmetric(c.symmetric)
      .bn_splits(4)
      .batch_size(kBatch)
      .lr(0.06)
      .momentum(0.9)
      .wd(5e-4)
      .cos(c.cos)
      .schedule({1, 2})
      .epochs(epochs);
}

// max |a - b| / max |b| over a tensor (exact equality for integers).
double relative_error(const torch::Tensor& a, const torch::Tensor& b) {
  if (!b.is_floating_point()) return a.equal(b) ? 0.0 : 1.0;
  const double scale = std::max(b.abs().max().item<double>(), 1e-12);
  return (a - b).abs().max().item<double>() / scale;
}

void run_case(const Case& c, const Precision& p) {
  const std::string name = c.name + (p.f64 ? "-f64" : "-f32");
  SCOPED_TRACE(name);
  at::set_num_threads(1);
  torch::manual_seed(11);
  const auto dir = test::scratch_dir(name);
  const PretrainOptions o = options_of(c, p.epochs);
  const int64_t steps = p.epochs * p.steps_per_epoch;
  const double tolerance = p.tolerance;
  const bool f64 = p.f64;
  PretrainPlan plan;
  plan.options = o;
  plan.local_splits = o.bn_splits();
  plan.in_channels = 3;
  auto model = build_model(plan);
  if (f64) {
    // Floating tensors only (Module::to would make queue_ptr a double).
    torch::NoGradGuard no_grad;
    for (auto& t : model->parameters()) t.set_data(t.data().to(torch::kFloat64));
    for (auto& t : model->buffers()) {
      if (t.is_floating_point()) t.set_data(t.data().to(torch::kFloat64));
    }
  }
  auto sgd = make_optimizer(model, o);
  Amp amp("off", torch::kCPU);

  const int64_t calls = c.symmetric ? 2 : 1;
  const auto dtype = f64 ? torch::kFloat64 : torch::kFloat32;
  const auto im_q = torch::randn({steps, kBatch, 3, kSize, kSize}, dtype);
  const auto im_k = torch::randn({steps, kBatch, 3, kSize, kSize}, dtype);
  std::vector<torch::Tensor> perms;
  for (int64_t i = 0; i < steps * calls; ++i) perms.push_back(torch::randperm(kBatch));
  const auto perm = torch::stack(perms).view({steps, calls, kBatch});

  std::vector<std::pair<std::string, torch::Tensor>> init;
  for (const auto& e : prefixed_state_dict(*model, "module.")) {
    init.emplace_back(e.key().toStringRef(), e.value().toTensor());
  }
  test::save_tensors(dir / "init.pth", init);
  test::save_tensors(dir / "batches.pth", {{"im_q", im_q}, {"im_k", im_k}, {"perm", perm}});
  const nlohmann::json cfg = {
      {"arch", o.arch()}, {"dim", o.moco_dim()}, {"K", o.moco_k()},
      {"m", o.moco_m()}, {"T", o.moco_t()}, {"mlp", o.mlp()},
      {"symmetric", o.symmetric()}, {"bn_splits", o.bn_splits()},
      {"lr", o.lr()}, {"momentum", o.momentum()}, {"wd", o.wd()},
      {"cos", o.cos()}, {"schedule", o.schedule()}, {"epochs", o.epochs()},
      {"steps_per_epoch", p.steps_per_epoch}, {"float64", f64}};
  test::write_file(dir / "config.json", cfg.dump());
  test::run_python("moco_parity.py",
                   "'" + (dir / "config.json").string() + "' '" +
                       (dir / "init.pth").string() + "' '" +
                       (dir / "batches.pth").string() + "' '" +
                       (dir / "ref.pth").string() + "'",
                   dir);
  if (::testing::Test::HasFatalFailure()) return;

  // Our side: the permutations replayed in the order the reference used.
  size_t next = 0;
  model->set_shuffle_source([&](int64_t n, const torch::Device&) {
    models::BatchShuffle s;
    s.forward = perms.at(next++);
    s.inverse = torch::argsort(s.forward);
    EXPECT_EQ(n, kBatch);
    return s;
  });
  model->train();
  std::vector<double> losses, lrs;
  for (int64_t epoch = 0, step = 0; epoch < p.epochs; ++epoch) {
    const double lr = learning_rate(o.lr(), epoch, o.epochs(), o.cos(), o.schedule());
    sgd.set_lr(lr);
    for (int64_t i = 0; i < p.steps_per_epoch; ++i, ++step) {
      const auto out = training_step(model, sgd, amp, im_q[step], im_k[step]);
      losses.push_back(out.loss.item<double>());
      lrs.push_back(lr);
    }
  }
  EXPECT_EQ(next, perms.size());

  auto ref = test::load_tensors(dir / "ref.pth");
  for (int64_t s = 0; s < steps; ++s) {
    const double want = ref.at("loss")[s].item<double>();
    EXPECT_NEAR(losses[s], want, tolerance * std::max(1.0, std::fabs(want)))
        << "loss at step " << s;
    EXPECT_NEAR(lrs[s], ref.at("lr")[s].item<double>(), 1e-12) << "lr at step " << s;
  }
  // The loss moved: the steps did something to compare.
  if (steps > 1) EXPECT_GT(std::fabs(losses.front() - losses.back()), 1e-3);

  double worst = 0;
  std::string worst_name;
  int64_t compared = 0;
  for (const auto& e : prefixed_state_dict(*model, "module.")) {
    const std::string key = e.key().toStringRef();
    const auto ours = e.value().toTensor();
    if (key.size() > 19 && key.substr(key.size() - 19) == "num_batches_tracked") {
      // The CIFAR demo's SplitBatchNorm calls F.batch_norm itself and never
      // counts; ours counts forward passes in training mode, as
      // nn.BatchNorm2d (and so the official ImageNet code) does. It never
      // enters the arithmetic (BN momentum is fixed).
      EXPECT_EQ(ours.item<int64_t>(), steps * calls) << name;
      continue;
    }
    ASSERT_TRUE(ref.count(key)) << key << " missing from the reference";
    const double err = relative_error(ours, ref.at(key));
    EXPECT_LE(err, tolerance) << key;
    if (err > worst) worst = err, worst_name = key;
    ++compared;
  }
  // f_q and f_k moved away from the start: the comparison is not of copies.
  EXPECT_GT(relative_error(model->encoder_q->named_parameters()["conv1.weight"],
                           test::load_tensors(dir / "init.pth")
                               .at("module.encoder_q.conv1.weight")),
            1e-4);
  EXPECT_GT(compared, 200);
  std::printf("%s: %lld steps, %lld tensors, worst relative difference %.3g (%s)\n",
              name.c_str(), static_cast<long long>(steps),
              static_cast<long long>(compared), worst, worst_name.c_str());
}

const Case kV1{"v1", /*mlp=*/false, /*T=*/0.07, /*symmetric=*/false, /*cos=*/false};
const Case kV2{"v2", /*mlp=*/true, /*T=*/0.2, /*symmetric=*/false, /*cos=*/true};
const Case kSymmetric{"symmetric", /*mlp=*/false, /*T=*/0.1, /*symmetric=*/true,
                      /*cos=*/true};

TEST(Parity, MocoV1StepsEqualTheOfficialCode) {
  run_case(kV1, kFloat64);
  run_case(kV1, kFloat32);
}

TEST(Parity, MocoV2StepsEqualTheOfficialCode) {
  run_case(kV2, kFloat64);
  run_case(kV2, kFloat32);
}

TEST(Parity, SymmetricStepsEqualTheCifarDemo) {
  run_case(kSymmetric, kFloat64);
  run_case(kSymmetric, kFloat32);
}

}  // namespace
}  // namespace moco::train
