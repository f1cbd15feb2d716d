// ResNets against torchvision 0.14: the same state-dict keys and shapes, and
// the same eval-mode output for the same weights and input (tolerance 1e-4
// relative to the output's scale).
#include "models/resnet.h"

#include <set>

#include "../support.h"

namespace moco::models {

namespace {

std::map<std::string, torch::Tensor> state_of(ResNet& net) {
  std::map<std::string, torch::Tensor> out;
  for (auto& p : net->named_parameters()) out[p.key()] = p.value();
  for (auto& b : net->named_buffers()) out[b.key()] = b.value();
  return out;
}

void check_against(const std::string& name, ResNetOptions opts) {
  static const auto dir = [] {
    auto d = test::suite_scratch_dir("tv-resnet");
    const auto log = (d / "py.log").string();
    const int rc = test::run_command(test::python() + " '" +
                                         test::python_script("tv_resnet.py") +
                                         "' '" + d.string() + "'",
                                     log);
    EXPECT_EQ(rc, 0) << test::read_text(log);
    return d;
  }();
  auto ref = test::load_tensors(dir / (name + ".pt"));
  ASSERT_FALSE(ref.empty());
  ResNet net(opts);
  auto ours = state_of(net);
  std::set<std::string> ref_keys, our_keys;
  for (auto& [k, v] : ref) {
    if (k.rfind("sd.", 0) == 0) ref_keys.insert(k.substr(3));
  }
  for (auto& [k, v] : ours) our_keys.insert(k);
  ASSERT_EQ(our_keys, ref_keys) << name;
  torch::NoGradGuard no_grad;
  for (auto& [k, v] : ours) {
    const auto& src = ref.at("sd." + k);
    ASSERT_EQ(v.sizes(), src.sizes()) << name << " " << k;
    v.copy_(src);
  }
  net->eval();
  auto y = net->forward(ref.at("x"));
  const auto& want = ref.at("y");
  const double scale = want.abs().max().item<double>();
  const double err = (y - want).abs().max().item<double>();
  EXPECT_LE(err, 1e-4 * std::max(1.0, scale)) << name << " max error " << err;
}

}  // namespace

TEST(ResNet, MatchesTorchvisionResNet18) {
  check_against("resnet18", ResNetOptions("resnet18").num_classes(128));
}

TEST(ResNet, MatchesTorchvisionResNet50WithMlpHead) {
  check_against("resnet50_mlp",
                ResNetOptions("resnet50").num_classes(128).mlp(true));
}

TEST(ResNet, MatchesTheSmallImageStemOnOneChannel) {
  check_against("resnet18_small", ResNetOptions("resnet18")
                                      .num_classes(10)
                                      .small_stem(true)
                                      .in_channels(1));
}

TEST(ResNet, FeatureDimsAndArchErrors) {
  ResNet r18(ResNetOptions("resnet18").num_classes(8));
  EXPECT_EQ(r18->feature_dim(), 512);
  ResNet r34(ResNetOptions("resnet34").num_classes(8));
  EXPECT_EQ(r34->feature_dim(), 512);
  ResNet r101(ResNetOptions("resnet101").num_classes(8));
  EXPECT_EQ(r101->feature_dim(), 2048);
  ResNet narrow(ResNetOptions("resnet18").num_classes(8).width(16));
  EXPECT_EQ(narrow->feature_dim(), 128);
  auto f = narrow->forward_features(torch::randn({2, 3, 32, 32}));
  EXPECT_EQ(f.sizes(), (std::vector<int64_t>{2, 128}));
  try {
    ResNet bad(ResNetOptions("resnet19"));
    FAIL();
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what_without_backtrace()).find("resnet19"),
              std::string::npos);
  }
}

namespace {

// BatchNorm in training by its formula, over the samples of `xs` alone.
torch::Tensor hand_batch_norm(const torch::Tensor& xs, const torch::Tensor& w,
                              const torch::Tensor& b) {
  auto mean = xs.mean({0, 2, 3}, true);
  auto var = xs.var({0, 2, 3}, /*unbiased=*/false, true);
  const int64_t c = xs.size(1);
  return (xs - mean) / torch::sqrt(var + 1e-5) * w.view({1, c, 1, 1}) +
         b.view({1, c, 1, 1});
}

}  // namespace

TEST(SplitBatchNorm, EqualsBatchNormOnEachStridedSplit) {
  torch::manual_seed(0);
  SplitBatchNorm2d bn(SplitBatchNorm2dOptions(3).num_splits(4));
  {
    torch::NoGradGuard g;
    bn->weight.copy_(torch::tensor({1.5, 0.5, 2.0}));
    bn->bias.copy_(torch::tensor({0.1, -0.2, 0.3}));
  }
  auto x = torch::randn({8, 3, 5, 5});
  auto y = bn->forward(x);
  // Hand reference: split s holds samples s and s + 4; BN over each alone.
  for (int64_t s = 0; s < 4; ++s) {
    auto idx = torch::tensor({s, s + 4});
    auto ref = hand_batch_norm(x.index_select(0, idx), bn->weight, bn->bias);
    EXPECT_TRUE(torch::allclose(y.index_select(0, idx), ref, 1e-4, 1e-5))
        << "split " << s;
  }
  // Running stats: the mean over splits of each split's momentum update.
  auto expect_mean = torch::zeros({3});
  for (int64_t s = 0; s < 4; ++s) {
    expect_mean += 0.1 * x.index_select(0, torch::tensor({s, s + 4}))
                             .mean({0, 2, 3});
  }
  EXPECT_TRUE(torch::allclose(bn->running_mean, expect_mean / 4, 1e-5, 1e-6));
  EXPECT_EQ(bn->num_batches_tracked.item<int64_t>(), 1);
  // In eval it is plain BatchNorm with the running statistics.
  bn->eval();
  auto ye = bn->forward(x);
  auto ref = (x - bn->running_mean.view({1, 3, 1, 1})) /
                 torch::sqrt(bn->running_var.view({1, 3, 1, 1}) + 1e-5) *
                 bn->weight.view({1, 3, 1, 1}) +
             bn->bias.view({1, 3, 1, 1});
  EXPECT_TRUE(torch::allclose(ye, ref, 1e-4, 1e-5));
}

TEST(SplitBatchNorm, ChannelsLastNormalisesRunsOfSamplesInPlace) {
  torch::manual_seed(1);
  SplitBatchNorm2d bn(SplitBatchNorm2dOptions(3).num_splits(2));
  {
    torch::NoGradGuard g;
    bn->weight.copy_(torch::tensor({1.5, 0.5, 2.0}));
    bn->bias.copy_(torch::tensor({0.1, -0.2, 0.3}));
  }
  auto x0 = torch::randn({8, 3, 4, 5});
  auto x = x0.contiguous(torch::MemoryFormat::ChannelsLast).requires_grad_(true);
  auto y = bn->forward(x);
  EXPECT_TRUE(y.is_contiguous(torch::MemoryFormat::ChannelsLast));
  auto g = torch::randn({8, 3, 4, 5});
  (y * g).sum().backward();
  // Hand reference: split s holds samples 4s..4s+3; BN over each alone,
  // gradients by autograd through the plain formula.
  auto xr = x0.clone().requires_grad_(true);
  auto w = bn->weight.detach().clone().requires_grad_(true);
  std::vector<torch::Tensor> parts;
  auto expect_mean = torch::zeros({3});
  for (int64_t s = 0; s < 2; ++s) {
    auto xs = xr.narrow(0, 4 * s, 4);
    parts.push_back(hand_batch_norm(xs, w, bn->bias.detach()));
    expect_mean += 0.1 * xs.detach().mean({0, 2, 3});
  }
  auto ref = torch::cat(parts, 0);
  (ref * g).sum().backward();
  EXPECT_TRUE(torch::allclose(y, ref, 1e-4, 1e-5));
  EXPECT_TRUE(torch::allclose(x.grad(), xr.grad(), 1e-4, 1e-5));
  EXPECT_TRUE(torch::allclose(bn->weight.grad(), w.grad(), 1e-4, 1e-5));
  EXPECT_TRUE(torch::allclose(bn->running_mean, expect_mean / 2, 1e-5, 1e-6));
}

TEST(SplitBatchNorm, RejectsBatchesThatDoNotSplit) {
  SplitBatchNorm2d bn(SplitBatchNorm2dOptions(2).num_splits(4));
  EXPECT_THROW(bn->forward(torch::randn({6, 2, 3, 3})), c10::Error);
  EXPECT_THROW(bn->forward(torch::randn({4, 2, 3, 3})), c10::Error);
}

}  // namespace moco::models
