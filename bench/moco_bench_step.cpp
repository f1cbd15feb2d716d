// One MoCo training step, timed: forward of both encoders, InfoNCE, backward,
// SGD, enqueue; plus the MoCo-specific parts alone (momentum update, batch
// shuffle, enqueue, split-BN against plain BN), to say where the time goes.
//
//   moco_bench_step --arch resnet18 --stem small --channels 1 --size 28 \
//       --batch 256 --moco-k 4096 --threads 2 --steps 20
// Prints one JSON object.
#include <ATen/autocast_mode.h>
#include <CLI/CLI.hpp>
#include <torch/torch.h>

#include <chrono>
#include <algorithm>
#include <iostream>

#include <nlohmann/json.hpp>

#include "core/malloc_tuning.h"
#include "data/dataset.h"
#include "models/moco.h"
#include "train/sgd.h"

using Clock = std::chrono::steady_clock;

namespace {

double secs(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

template <typename F>
double time_per_call(int reps, F&& f) {
  f();
  const auto t0 = Clock::now();
  for (int i = 0; i < reps; ++i) f();
  return secs(t0) / reps;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"time one MoCo step"};
  std::string arch = "resnet18", stem = "small", data;
  int64_t channels = 1, size = 28, batch = 256, K = 4096, threads = 2,
          steps = 20, warmup = 3, bn_splits = 8, width = 64;
  app.add_option("--arch", arch)->capture_default_str();
  app.add_option("--stem", stem, "small | imagenet")->capture_default_str();
  app.add_option("--channels", channels)->capture_default_str();
  app.add_option("--size", size)->capture_default_str();
  app.add_option("--width", width)->capture_default_str();
  app.add_option("--batch", batch)->capture_default_str();
  app.add_option("--moco-k", K)->capture_default_str();
  app.add_option("--threads", threads)->capture_default_str();
  app.add_option("--steps", steps)->capture_default_str();
  app.add_option("--warmup", warmup)->capture_default_str();
  app.add_option("--bn-splits", bn_splits)->capture_default_str();
  app.add_option("--data", data, "IDX folder: use its first images");
  std::string amp = "off";
  app.add_option("--amp", amp, "off | bf16 (CPU autocast; experiment)")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  const bool malloc_tuned = moco::tune_malloc_for_training();

  at::set_num_threads(static_cast<int>(threads));
  if (amp == "bf16") {
    at::autocast::set_cpu_enabled(true);
    at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
  }
  torch::manual_seed(0);
  torch::Tensor x;
  if (!data.empty()) {
    auto set = moco::data::open_dataset(data).train;
    x = set.images.slice(0, 0, batch).to(torch::kFloat32).div(255.0);
    x = (x - 0.286) / 0.353;
  } else {
    x = torch::randn({batch, channels, size, size});
  }
  // Two views: the key view flipped, so q and k differ as after augmentation.
  auto im_q = x.contiguous();
  auto im_k = x.flip({3}).contiguous();

  auto make = [&](int64_t splits) {
    return moco::models::Moco(
        moco::models::ResNetOptions(arch)
            .in_channels(x.size(1))
            .small_stem(stem == "small")
            .width(width)
            .bn_splits(splits),
        moco::models::MocoOptions().dim(128).K(K).m(0.99).T(0.1));
  };
  // A step as the trainer runs it.
  struct Runner {
    moco::models::Moco model;
    moco::train::Sgd sgd;
    double step(const torch::Tensor& q, const torch::Tensor& k) {
      const auto t0 = Clock::now();
      auto out = model->forward(q, k);
      out.loss.backward();
      sgd.step();
      sgd.zero_grad();
      model->enqueue(out.keys);
      out.loss.item<double>();
      return secs(t0);
    }
  };
  auto runner = [&](int64_t splits) {
    auto m = make(splits);
    m->train();
    return Runner{m, moco::train::Sgd(m->encoder_q->parameters(),
                                      moco::train::SgdOptions()
                                          .lr(0.06)
                                          .weight_decay(5e-4))};
  };
  auto split = runner(bn_splits);
  auto plain = runner(1);
  for (int64_t i = 0; i < warmup; ++i) {
    split.step(im_q, im_k);
    plain.step(im_q, im_k);
  }
  // Interleaved, so drift in the machine's speed hits both alike; medians.
  std::vector<double> t_split, t_plain;
  for (int64_t i = 0; i < steps; ++i) {
    t_split.push_back(split.step(im_q, im_k));
    t_plain.push_back(plain.step(im_q, im_k));
  }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  const double step_s = median(t_split);
  const double plain_step_s = median(t_plain);
  auto& model = split.model;

  // The MoCo-specific parts on their own.
  const double momentum_s = time_per_call(20, [&] { model->momentum_update(); });
  auto keys = torch::nn::functional::normalize(
      torch::randn({batch, 128}),
      torch::nn::functional::NormalizeFuncOptions().dim(1));
  const double enqueue_s = time_per_call(20, [&] { model->enqueue(keys); });
  const double shuffle_s = time_per_call(20, [&] {
    auto s = moco::models::draw_batch_shuffle(batch, torch::kCPU);
    auto shuffled = im_k.index_select(0, s.forward);
    auto back = keys.index_select(0, s.inverse);
  });

  // Split-BN against plain BN layer by layer: the whole-step difference above
  // is within the machine's step-to-step noise, so time every BatchNorm of
  // the encoder on its own input shape, interleaved, median of `reps`: once
  // forward+backward (f_q) and once forward without gradient (f_k).
  // Shapes: for basic-block ResNets, the layer with C channels sees
  // size / (C / width) pixels a side (after the stem).
  bool bn_layers_measured = false;
  double bn_split_extra_s = 0;
  if (arch == "resnet18" || arch == "resnet34") {
    bn_layers_measured = true;
    const int64_t stem_div = stem == "small" ? 1 : 4;
    double extra = 0;
    for (auto& m : model->encoder_q->modules(false)) {
      auto* bn = m->as<moco::models::SplitBatchNorm2d>();
      if (!bn) continue;
      const int64_t c = bn->options.num_features();
      const int64_t side =
          (size / stem_div + (c / width) - 1) / (c / width);
      auto x = torch::randn({batch, c, side, side});
      auto g = torch::randn_like(x);
      moco::models::SplitBatchNorm2d layer_split(
          moco::models::SplitBatchNorm2dOptions(c).num_splits(bn_splits));
      moco::models::SplitBatchNorm2d layer_plain(
          moco::models::SplitBatchNorm2dOptions(c).num_splits(1));
      auto time_layer = [&](moco::models::SplitBatchNorm2d& l) {
        const auto t0 = Clock::now();
        auto xq = x.detach().requires_grad_(true);
        l->forward(xq).backward(g);
        {
          torch::NoGradGuard ng;
          l->forward(x);
        }
        return secs(t0);
      };
      std::vector<double> ts, tp;
      for (int r = 0; r < 15; ++r) {
        ts.push_back(time_layer(layer_split));
        tp.push_back(time_layer(layer_plain));
      }
      extra += median(ts) - median(tp);
    }
    bn_split_extra_s = extra;
  }

  nlohmann::json j = {
      {"impl", "moco-cpp"},
      {"arch", arch},
      {"stem", stem},
      {"width", width},
      {"size", size},
      {"batch", batch},
      {"moco_k", K},
      {"threads", threads},
      {"malloc_tuned", malloc_tuned},
      {"steps", steps},
      {"step_s", step_s},
      {"images_per_s", batch / step_s},
      {"momentum_update_s", momentum_s},
      {"enqueue_s", enqueue_s},
      {"shuffle_s", shuffle_s},
      {"step_plain_bn_s", plain_step_s},
      {"split_bn_extra_s", step_s - plain_step_s},
      {"split_bn_layer_extra_s",
       bn_layers_measured ? nlohmann::json(bn_split_extra_s) : nlohmann::json()},
      {"moco_specific_share",
       (momentum_s + enqueue_s + shuffle_s +
        std::max(0.0, bn_layers_measured ? bn_split_extra_s
                                         : step_s - plain_step_s)) /
           step_s}};
  std::cout << j.dump() << std::endl;
  return 0;
}
