// A ResNet-50 pretrained for a step, exported and embedded, for the tests
// that hand moco's files to torchvision, timm and safetensors.
#pragma once

#include <fmt/format.h>

#include "../support.h"
#include "data/dataset.h"
#include "data/eval_transform.h"

namespace moco::test {

struct Resnet50Files {
  std::string ckpt, pth, safetensors, features;
  // CIFAR.bin MEAN STD: the records embedded and their normalization, as
  // the Python checks take them.
  std::string images_args;
};

// Pretrains a ResNet-50 (ImageNet stem) for one step on 40 CIFAR-10
// records in DIR/cifar, exports it as .pth and .safetensors (--format
// given) and embeds the 20 test records; ASSERTs on each command.
inline void resnet50_export(const fs::path& dir, Resnet50Files* out) {
  write_cifar(dir / "cifar", 40);
  const std::string cifar = (dir / "cifar").string();
  auto r = run_moco("pretrain '" + cifar + "' -a resnet50 --stem imagenet --max-steps 1" +
                        kTinyRun + "'" + (dir / "run").string() + "'",
                    dir);
  ASSERT_EQ(r.rc, 0) << r.out;
  out->ckpt = (dir / "run" / "checkpoint.pth.tar").string();
  out->pth = (dir / "r50.pth").string();
  out->safetensors = (dir / "r50.safetensors").string();
  out->features = (dir / "feats.npy").string();
  r = run_moco("export '" + out->ckpt + "' '" + out->pth + "'", dir);
  ASSERT_EQ(r.rc, 0) << r.out;
  r = run_moco("export '" + out->ckpt + "' '" + out->safetensors + "' --format safetensors", dir);
  ASSERT_EQ(r.rc, 0) << r.out;
  r = run_moco("embed '" + cifar + "' --pretrained '" + out->ckpt + "' --split test -o '" +
                   out->features + "' --threads 2",
               dir);
  ASSERT_EQ(r.rc, 0) << r.out;
  auto [mean, std] = data::normalization(data::open_dataset(cifar).train);
  auto csv = [](const std::vector<double>& v) {
    return fmt::format("{:.17g},{:.17g},{:.17g}", v[0], v[1], v[2]);
  };
  out->images_args =
      "'" + (dir / "cifar" / "test_batch.bin").string() + "' " + csv(mean) + " " + csv(std);
}

}  // namespace moco::test
