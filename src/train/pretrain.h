// `moco pretrain`: MoCo v1/v2 pretraining, with the official main_moco.py
// flags and defaults, a kNN monitor, metrics.jsonl and resumable checkpoints
// in the official layout.
//
//   PretrainOptions o;
//   o.data("/usr/share/datasets/fashion-mnist").arch("resnet18").epochs(1);
//   PretrainResult r = run_pretrain(o);
#pragma once

#include <torch/arg.h>

#include <nlohmann/json.hpp>

#include "dist/dist.h"

#include <string>
#include <vector>

namespace moco::train {

struct PretrainOptions {
  // Official main_moco.py flags, with its defaults.
  TORCH_ARG(std::string, data) = "/usr/share/datasets/fashion-mnist";
  TORCH_ARG(std::string, arch) = "resnet50";
  TORCH_ARG(int64_t, workers) = -1;  // -1: one per core beyond the first
  TORCH_ARG(int64_t, epochs) = 200;
  TORCH_ARG(int64_t, start_epoch) = 0;
  TORCH_ARG(int64_t, batch_size) = 256;
  TORCH_ARG(double, lr) = 0.03;
  TORCH_ARG(std::vector<int64_t>, schedule) = {120, 160};
  TORCH_ARG(double, momentum) = 0.9;
  TORCH_ARG(double, wd) = 1e-4;
  TORCH_ARG(int64_t, print_freq) = 10;
  TORCH_ARG(std::string, resume) = "";
  TORCH_ARG(int64_t, seed) = 0;
  TORCH_ARG(int64_t, moco_dim) = 128;
  TORCH_ARG(int64_t, moco_k) = 65536;
  TORCH_ARG(double, moco_m) = 0.999;
  TORCH_ARG(double, moco_t) = 0.07;
  TORCH_ARG(bool, mlp) = false;
  TORCH_ARG(bool, aug_plus) = false;
  TORCH_ARG(bool, cos) = false;
  // Ours.
  TORCH_ARG(int64_t, threads) = 0;  // 0: all cores
  TORCH_ARG(int64_t, bn_splits) = 8;
  TORCH_ARG(bool, symmetric) = false;
  TORCH_ARG(int64_t, max_steps) = 0;  // 0: no limit
  TORCH_ARG(std::string, output) = "runs/pretrain";
  TORCH_ARG(std::string, device) = "cpu";
  TORCH_ARG(std::string, stem) = "auto";  // auto | small | imagenet
  TORCH_ARG(int64_t, width) = 64;
  TORCH_ARG(int64_t, crop_size) = 0;      // 0: 224, or the image size if small
  TORCH_ARG(bool, blur) = true;           // with --aug-plus
  TORCH_ARG(int64_t, knn_k) = 200;
  TORCH_ARG(double, knn_t) = 0.1;
  TORCH_ARG(int64_t, knn_freq) = 1;       // epochs between monitors; 0: end only
  TORCH_ARG(int64_t, knn_bank) = 0;       // train images in the bank; 0: all
  TORCH_ARG(int64_t, knn_test) = 0;       // test images scored; 0: all
  TORCH_ARG(bool, knn_init) = false;      // also score the untrained encoder
  TORCH_ARG(bool, progress) = true;       // bar on a terminal
  TORCH_ARG(int64_t, channels) = 0;       // 1 | 3; 0: the data's own
  TORCH_ARG(bool, strict_data) = false;   // unreadable image: error, not skip
  // Distributed (official names; see dist/dist.h).
  TORCH_ARG(std::string, dist_url) = "";
  TORCH_ARG(std::string, dist_backend) = "gloo";
  TORCH_ARG(int64_t, world_size) = -1;
  TORCH_ARG(int64_t, rank) = -1;
  TORCH_ARG(bool, multiprocessing_distributed) = false;
  TORCH_ARG(int64_t, nproc_per_node) = 0;
  TORCH_ARG(double, dist_timeout) = 1800;  // seconds
  TORCH_ARG(bool, sync_bn) = false;  // SyncBN instead of shuffle-BN
  TORCH_ARG(std::string, amp) = "off";  // off | bf16 | fp16 (CUDA): autocast
  TORCH_ARG(bool, channels_last) = false;  // NHWC activations and weights
};

nlohmann::json to_json(const PretrainOptions& o);

// The distributed flags, for dist::resolve.
dist::DistOptions dist_options(const PretrainOptions& o);

// Fills what depends on the data and the machine (stem, crop size, threads,
// workers) and checks every value; throws c10::Error naming the flag.
void validate(const PretrainOptions& o);

struct PretrainResult {
  int64_t steps = 0;            // optimizer steps this run
  int64_t epochs_done = 0;
  double final_loss = 0;
  double knn_top1 = -1, knn_top5 = -1;   // last monitor; -1 if none
  double knn_init_top1 = -1;             // with --knn-init
  double images_per_second = 0;
  double data_wait_share = 0;   // fraction of step time waiting for data
  int64_t skipped_files = 0;    // unreadable image files skipped
  std::string checkpoint;       // last checkpoint written
};

PretrainResult run_pretrain(const PretrainOptions& options);

}  // namespace moco::train
