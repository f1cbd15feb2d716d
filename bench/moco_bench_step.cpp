// One MoCo training step, timed: forward of both encoders, InfoNCE, backward,
// SGD, enqueue, in fp32 or under autocast, NCHW or channels-last, on the CPU
// or a GPU; with --breakdown also the MoCo-specific parts alone (momentum
// update, batch shuffle, enqueue, split-BN against plain BN).
//
//   moco_bench_step --arch resnet18 --stem small --channels 1 --size 28 \
//       --batch 256 --moco-k 4096 --threads 2 --steps 20 [--amp bf16]
// Prints one JSON object (step time, images/s, peak host RSS, peak GPU
// memory). bench/run_speed.py runs it against the Python peer.
#include <CLI/CLI.hpp>
#include <sys/resource.h>
#include <torch/torch.h>
#include <torch/version.h>
#include <torch/csrc/autograd/profiler_legacy.h>

#include <chrono>
#include <algorithm>
#include <iostream>
#include <optional>

// From CMake, when the LibTorch found is a CUDA build: a CPU LibTorch
// (Debian's) ships c10/cuda headers that do not compile, and a CUDA toolkit
// on the machine does not make LibTorch a CUDA build.
#ifdef MOCO_WITH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#define MOCO_BENCH_CUDA 1
#endif

#include <nlohmann/json.hpp>

#include "core/malloc_tuning.h"
#include "data/dataset.h"
#include "models/moco.h"
#include "train/amp.h"
#include "train/sgd.h"
#include "train/step.h"

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

double peak_rss_mib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;  // Linux: KiB
}

double peak_gpu_mib() {
#ifdef MOCO_BENCH_CUDA
  if (!torch::cuda::is_available()) return 0;
  const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(0);
  return static_cast<double>(stats.allocated_bytes[0].peak) / (1 << 20);
#else
  return 0;
#endif
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
  std::string amp = "off", device_name = "cpu";
  bool channels_last = false, breakdown = false;
  app.add_option("--amp", amp, "off | bf16 | fp16 (fp16: CUDA, with loss scaling)")
      ->check(CLI::IsMember({"off", "bf16", "fp16"}))
      ->capture_default_str();
  app.add_flag("--channels-last", channels_last, "NHWC activations and weights");
  app.add_option("--device", device_name, "cpu | cuda")->capture_default_str();
  app.add_flag("--breakdown", breakdown,
               "also time the MoCo-specific parts and split-BN vs plain BN");
  CLI11_PARSE(app, argc, argv);
  const std::string allocator = moco::tune_malloc_for_training();
  const torch::Device device(device_name);
  const bool cuda = device.is_cuda();
  if (cuda) moco::train::enable_cudnn_autotune();

  at::set_num_threads(static_cast<int>(threads));
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
  // Synthetic data already on the device: the step, not the copy, is timed.
  const auto fmt = channels_last ? torch::MemoryFormat::ChannelsLast
                                 : torch::MemoryFormat::Contiguous;
  auto im_q = x.to(device).contiguous(fmt);
  auto im_k = x.flip({3}).to(device).contiguous(fmt);
  auto sync = [&] {
    if (cuda) torch::cuda::synchronize();
  };

  auto make = [&](int64_t splits) {
    auto m = moco::models::Moco(
        moco::models::ResNetOptions(arch)
            .in_channels(x.size(1))
            .small_stem(stem == "small")
            .width(width)
            .bn_splits(splits),
        moco::models::MocoOptions().dim(128).K(K).m(0.99).T(0.1));
    m->to(device);
    if (channels_last) moco::models::to_channels_last(*m);
    return m;
  };
  // The trainer's step; the loss is read once per step here (the trainer
  // reads it every -p steps on a GPU), which also waits for the GPU.
  struct Runner {
    moco::models::Moco model;
    moco::train::Sgd sgd;
    moco::train::Amp amp;
    double step(const torch::Tensor& q, const torch::Tensor& k) {
      const auto t0 = Clock::now();
      moco::train::training_step(model, sgd, amp, q, k).loss.item<double>();
      return secs(t0);
    }
  };
  auto runner = [&](int64_t splits) {
    auto m = make(splits);
    m->train();
    return Runner{m,
                  moco::train::Sgd(m->encoder_q->parameters(),
                                   moco::train::SgdOptions()
                                       .lr(0.06)
                                       .weight_decay(5e-4)),
                  moco::train::Amp(amp, device)};
  };
  auto split = runner(bn_splits);
  std::optional<Runner> plain;
  if (breakdown) plain = runner(1);
  for (int64_t i = 0; i < warmup; ++i) {
    split.step(im_q, im_k);
    if (plain) plain->step(im_q, im_k);
  }
  // MOCO_BENCH_PROFILE=FILE: one more step under the autograd profiler, as a
  // chrome trace (where the time goes, op by op).
  if (const char* prof = std::getenv("MOCO_BENCH_PROFILE")) {
    torch::autograd::profiler::RecordProfile guard(prof);
    split.step(im_q, im_k);
  }
  // Interleaved, so drift in the machine's speed hits both alike; medians.
  std::vector<double> t_split, t_plain;
  for (int64_t i = 0; i < steps; ++i) {
    t_split.push_back(split.step(im_q, im_k));
    if (plain) t_plain.push_back(plain->step(im_q, im_k));
  }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  const double step_s = median(t_split);
  auto& model = split.model;
  nlohmann::json j = {{"impl", "moco-cpp"},
                      {"torch", TORCH_VERSION},
                      {"device", device_name},
                      {"arch", arch},
                      {"stem", stem},
                      {"width", width},
                      {"size", size},
                      {"batch", batch},
                      {"moco_k", K},
                      {"bn_splits", bn_splits},
                      {"amp", amp},
                      {"channels_last", channels_last},
                      {"threads", threads},
                      {"allocator", allocator},
                      {"steps", steps},
                      {"step_s", step_s},
                      {"images_per_s", batch / step_s},
                      {"peak_rss_mib", peak_rss_mib()},
                      {"peak_gpu_mib", peak_gpu_mib()}};
  if (!breakdown) {
    std::cout << j.dump() << std::endl;
    return 0;
  }
  const double plain_step_s = median(t_plain);

  // The MoCo-specific parts on their own.
  const double momentum_s = time_per_call(20, [&] {
    model->momentum_update();
    sync();
  });
  auto keys = torch::nn::functional::normalize(
      torch::randn({batch, 128}, torch::TensorOptions().device(device)),
      torch::nn::functional::NormalizeFuncOptions().dim(1));
  const double enqueue_s = time_per_call(20, [&] {
    model->enqueue(keys);
    sync();
  });
  const double shuffle_s = time_per_call(20, [&] {
    auto s = moco::models::draw_batch_shuffle(batch, device);
    auto shuffled = im_k.index_select(0, s.forward);
    auto back = keys.index_select(0, s.inverse);
    sync();
  });

  // Split-BN against plain BN layer by layer: the whole-step difference above
  // is within the machine's step-to-step noise, so time every BatchNorm of
  // the encoder on its own input shape, interleaved, median of `reps`: once
  // forward+backward (f_q) and once forward without gradient (f_k).
  // Shapes: for basic-block ResNets, the layer with C channels sees
  // size / (C / width) pixels a side (after the stem).
  bool bn_layers_measured = false;
  double bn_split_extra_s = 0;
  if (!cuda && (arch == "resnet18" || arch == "resnet34")) {
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

  j.update({{"momentum_update_s", momentum_s},
            {"enqueue_s", enqueue_s},
            {"shuffle_s", shuffle_s},
            {"step_plain_bn_s", plain_step_s},
            {"split_bn_extra_s", step_s - plain_step_s},
            {"split_bn_layer_extra_s",
             bn_layers_measured ? nlohmann::json(bn_split_extra_s)
                                : nlohmann::json()},
            {"moco_specific_share",
             (momentum_s + enqueue_s + shuffle_s +
              std::max(0.0, bn_layers_measured ? bn_split_extra_s
                                               : step_s - plain_step_s)) /
                 step_s}});
  std::cout << j.dump() << std::endl;
  return 0;
}
