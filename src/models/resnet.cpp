#include "models/resnet.h"

#include <torch/torch.h>

namespace moco::models {

namespace nn = torch::nn;

namespace {

nn::Conv2d conv(int64_t in, int64_t out, int64_t k, int64_t stride) {
  return nn::Conv2d(nn::Conv2dOptions(in, out, k)
                        .stride(stride)
                        .padding(k / 2)
                        .bias(false));
}

SplitBatchNorm2d bn(int64_t c, int64_t splits) {
  return SplitBatchNorm2d(SplitBatchNorm2dOptions(c).num_splits(splits));
}

// torchvision's BasicBlock (expansion 1) and Bottleneck (expansion 4, stride
// on the 3x3 conv, "ResNet v1.5"), in one module so a layer is a Sequential
// of one type.
class BlockImpl : public nn::Module {
 public:
  BlockImpl(bool bottleneck, int64_t inplanes, int64_t planes, int64_t stride,
            int64_t width_per_group, int64_t splits)
      : bottleneck_(bottleneck) {
    const int64_t expansion = bottleneck ? 4 : 1;
    if (bottleneck) {
      const int64_t w = planes * width_per_group / 64;
      conv1 = register_module("conv1", conv(inplanes, w, 1, 1));
      bn1 = register_module("bn1", bn(w, splits));
      conv2 = register_module("conv2", conv(w, w, 3, stride));
      bn2 = register_module("bn2", bn(w, splits));
      conv3 = register_module("conv3", conv(w, planes * expansion, 1, 1));
      bn3 = register_module("bn3", bn(planes * expansion, splits));
    } else {
      conv1 = register_module("conv1", conv(inplanes, planes, 3, stride));
      bn1 = register_module("bn1", bn(planes, splits));
      conv2 = register_module("conv2", conv(planes, planes, 3, 1));
      bn2 = register_module("bn2", bn(planes, splits));
    }
    if (stride != 1 || inplanes != planes * expansion) {
      downsample = register_module(
          "downsample",
          nn::Sequential(conv(inplanes, planes * expansion, 1, stride),
                         bn(planes * expansion, splits)));
    }
  }

  torch::Tensor forward(const torch::Tensor& x) {
    auto out = bn1(conv1(x)).relu_();
    out = bn2(conv2(out));
    if (bottleneck_) out = bn3(conv3(out.relu_()));
    auto identity = downsample ? downsample->forward(x) : x;
    return out.add_(identity).relu_();
  }

 private:
  bool bottleneck_;
  nn::Conv2d conv1{nullptr}, conv2{nullptr}, conv3{nullptr};
  SplitBatchNorm2d bn1{nullptr}, bn2{nullptr}, bn3{nullptr};
  nn::Sequential downsample{nullptr};
};
TORCH_MODULE(Block);

struct ArchSpec {
  const char* name;
  bool bottleneck;
  std::array<int64_t, 4> blocks;
};

constexpr ArchSpec kArchs[] = {
    {"resnet18", false, {2, 2, 2, 2}},
    {"resnet34", false, {3, 4, 6, 3}},
    {"resnet50", true, {3, 4, 6, 3}},
    {"resnet101", true, {3, 4, 23, 3}},
};

}  // namespace

const std::vector<std::string>& resnet_archs() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (const auto& a : kArchs) v.emplace_back(a.name);
    return v;
  }();
  return names;
}

ResNetImpl::ResNetImpl(const ResNetOptions& o) : options_(o) {
  const ArchSpec* spec = nullptr;
  for (const auto& a : kArchs) {
    if (o.arch() == a.name) spec = &a;
  }
  TORCH_CHECK(spec != nullptr, "expected --arch one of resnet18, resnet34, ",
              "resnet50, resnet101, got '", o.arch(), "'");
  TORCH_CHECK(o.in_channels() == 1 || o.in_channels() == 3,
              "expected 1 or 3 input channels, got ", o.in_channels());
  TORCH_CHECK(o.width() >= 8 && o.width() % 8 == 0,
              "expected --width a positive multiple of 8, got ", o.width());
  TORCH_CHECK(o.num_classes() > 0, "expected --moco-dim > 0, got ",
              o.num_classes());
  const int64_t w = o.width();
  const int64_t splits = o.bn_splits();
  conv1 = register_module(
      "conv1", o.small_stem() ? conv(o.in_channels(), w, 3, 1)
                              : nn::Conv2d(nn::Conv2dOptions(o.in_channels(),
                                                             w, 7)
                                               .stride(2)
                                               .padding(3)
                                               .bias(false)));
  bn1 = register_module("bn1", bn(w, splits));
  const int64_t expansion = spec->bottleneck ? 4 : 1;
  int64_t inplanes = w;
  auto make_layer = [&](int64_t planes, int64_t blocks, int64_t stride) {
    nn::Sequential layer;
    for (int64_t i = 0; i < blocks; ++i) {
      layer->push_back(Block(spec->bottleneck, inplanes, planes,
                             i == 0 ? stride : 1, /*width_per_group=*/64, splits));
      inplanes = planes * expansion;
    }
    return layer;
  };
  layer1 = register_module("layer1", make_layer(w, spec->blocks[0], 1));
  layer2 = register_module("layer2", make_layer(w * 2, spec->blocks[1], 2));
  layer3 = register_module("layer3", make_layer(w * 4, spec->blocks[2], 2));
  layer4 = register_module("layer4", make_layer(w * 8, spec->blocks[3], 2));
  feature_dim_ = w * 8 * expansion;
  if (o.mlp()) {
    fc_mlp = register_module(
        "fc", nn::Sequential(nn::Linear(feature_dim_, feature_dim_),
                             nn::ReLU(),
                             nn::Linear(feature_dim_, o.num_classes())));
  } else {
    fc_linear =
        register_module("fc", nn::Linear(feature_dim_, o.num_classes()));
  }
  // torchvision's initialisation: Kaiming-normal (fan_out) convolutions,
  // BN weight 1 and bias 0; Linear layers keep the default init, which
  // LibTorch shares with PyTorch.
  torch::NoGradGuard no_grad;
  for (auto& m : modules(/*include_self=*/false)) {
    if (auto* c = m->as<nn::Conv2d>()) {
      nn::init::kaiming_normal_(c->weight, 0.0, torch::kFanOut, torch::kReLU);
    } else if (auto* b = m->as<SplitBatchNorm2d>()) {
      b->weight.fill_(1.0);
      b->bias.zero_();
    }
  }
}

torch::Tensor ResNetImpl::forward_features(const torch::Tensor& x) {
  auto out = bn1(conv1(x)).relu_();
  if (!options_.small_stem()) {
    out = torch::max_pool2d(out, {3, 3}, {2, 2}, {1, 1});
  }
  out = layer4->forward(layer3->forward(layer2->forward(layer1->forward(out))));
  return out.mean({2, 3});
}

torch::Tensor ResNetImpl::forward(const torch::Tensor& x) {
  auto f = forward_features(x);
  return fc_mlp ? fc_mlp->forward(f) : fc_linear->forward(f);
}

void ResNetImpl::set_bn_sync(
    const std::function<torch::Tensor(const torch::Tensor&)>& sum) {
  for (auto& m : modules(/*include_self=*/false)) {
    if (auto* b = m->as<SplitBatchNorm2d>()) b->set_sync(sum);
  }
}

void ResNetImpl::set_bn_splits(int64_t splits) {
  for (auto& m : modules(/*include_self=*/false)) {
    if (auto* b = m->as<SplitBatchNorm2d>()) b->set_num_splits(splits);
  }
}

}  // namespace moco::models
