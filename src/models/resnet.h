// ResNet-18/34/50/101 with torchvision's module names and parameter shapes
// (conv1, bn1, layer1.0.conv1, layer1.0.downsample.0/1, fc; the MoCo v2 MLP
// head as fc.0 / fc.2), so state dicts move both ways.
//
// Options beyond torchvision: a small-image stem (3x3 stride-1 conv1 and no
// max-pool, as the official CIFAR demo), the number of input channels, a base
// width (64 = torchvision; other widths keep the names, not the shapes), and
// split BatchNorm for shuffle-BN on one process.
//
//   ResNet net(ResNetOptions("resnet18").num_classes(128).small_stem(true)
//                  .in_channels(1));
//   torch::Tensor z = net->forward(x);            // N x 128
//   torch::Tensor f = net->forward_features(x);   // N x 512, before fc
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>

#include <string>
#include <vector>

#include "models/split_batchnorm.h"

namespace moco::models {

struct ResNetOptions {
  explicit ResNetOptions(std::string arch = "resnet50")
      : arch_(std::move(arch)) {}
  TORCH_ARG(std::string, arch);
  TORCH_ARG(int64_t, num_classes) = 1000;  // fc output; MoCo's feature dim
  TORCH_ARG(int64_t, in_channels) = 3;
  TORCH_ARG(bool, small_stem) = false;
  TORCH_ARG(int64_t, width) = 64;
  TORCH_ARG(bool, mlp) = false;
  TORCH_ARG(int64_t, bn_splits) = 1;
};

// The architectures we build, for --help and errors.
const std::vector<std::string>& resnet_archs();

class ResNetImpl : public torch::nn::Module {
 public:
  explicit ResNetImpl(const ResNetOptions& options);
  torch::Tensor forward(const torch::Tensor& x);
  // Globally pooled features before fc (512 or 2048 at width 64).
  torch::Tensor forward_features(const torch::Tensor& x);
  int64_t feature_dim() const { return feature_dim_; }
  const ResNetOptions& options() const { return options_; }
  // Sets the number of BN splits of every BatchNorm layer.
  void set_bn_splits(int64_t splits);
  // SyncBN in every BatchNorm layer (see SplitBatchNorm2d::set_sync).
  void set_bn_sync(const std::function<torch::Tensor(const torch::Tensor&)>& sum);

 private:
  ResNetOptions options_;
  int64_t feature_dim_ = 0;
  torch::nn::Conv2d conv1{nullptr};
  SplitBatchNorm2d bn1{nullptr};
  torch::nn::Sequential layer1{nullptr}, layer2{nullptr}, layer3{nullptr},
      layer4{nullptr};
  torch::nn::Linear fc_linear{nullptr};  // registered as "fc" without --mlp
  torch::nn::Sequential fc_mlp{nullptr};  // registered as "fc" with --mlp
};
TORCH_MODULE(ResNet);

}  // namespace moco::models
