// Downstream evaluation of a pretrained backbone: the official linear
// classification protocol (main_lincls.py), a weighted kNN classifier, and
// feature export (.npy).
//
//   LinclsOptions o;
//   o.data("/usr/share/datasets/fashion-mnist").pretrained("runs/x/checkpoint.pth.tar");
//   LinclsResult r = run_lincls(o);   // r.best_acc1
#pragma once

#include <torch/arg.h>

#include <string>
#include <vector>

namespace moco::train {

struct LinclsOptions {
  // main_lincls.py's flags and defaults.
  TORCH_ARG(std::string, data) = "/usr/share/datasets/fashion-mnist";
  TORCH_ARG(std::string, arch) = "";  // "": as the checkpoint holds
  TORCH_ARG(int64_t, workers) = -1;
  TORCH_ARG(int64_t, epochs) = 100;
  TORCH_ARG(int64_t, start_epoch) = 0;
  TORCH_ARG(int64_t, batch_size) = 256;
  TORCH_ARG(double, lr) = 30.0;
  TORCH_ARG(std::vector<int64_t>, schedule) = {60, 80};
  TORCH_ARG(double, momentum) = 0.9;
  TORCH_ARG(double, wd) = 0.0;
  TORCH_ARG(int64_t, print_freq) = 10;
  TORCH_ARG(std::string, resume) = "";
  TORCH_ARG(bool, evaluate) = false;
  TORCH_ARG(std::string, pretrained) = "";
  TORCH_ARG(int64_t, seed) = 0;
  // Ours.
  TORCH_ARG(bool, cos) = false;
  TORCH_ARG(int64_t, threads) = 0;
  TORCH_ARG(std::string, output) = "runs/lincls";
  TORCH_ARG(std::string, device) = "cpu";
  TORCH_ARG(int64_t, channels) = 0;
  TORCH_ARG(int64_t, max_steps) = 0;  // per epoch; 0: all (for tests)
  TORCH_ARG(bool, progress) = true;
};

struct LinclsResult {
  double best_acc1 = 0, acc1 = 0, acc5 = 0;  // last evaluation
  int64_t epochs_done = 0;
  std::string checkpoint, best;
};

LinclsResult run_lincls(const LinclsOptions& options);

struct KnnOptions {
  TORCH_ARG(std::string, data) = "/usr/share/datasets/fashion-mnist";
  TORCH_ARG(std::string, pretrained) = "";
  TORCH_ARG(int64_t, knn_k) = 200;
  TORCH_ARG(double, knn_t) = 0.1;
  TORCH_ARG(int64_t, batch_size) = 256;
  TORCH_ARG(int64_t, knn_bank) = 0;  // training images in the bank; 0: all
  TORCH_ARG(int64_t, knn_test) = 0;  // test images scored; 0: all
  TORCH_ARG(int64_t, threads) = 0;
  TORCH_ARG(std::string, device) = "cpu";
  TORCH_ARG(int64_t, channels) = 0;
};

struct KnnCommandResult {
  double top1 = 0, top5 = 0;
  int64_t bank = 0, test = 0;
};

KnnCommandResult run_knn_command(const KnnOptions& options);

struct EmbedOptions {
  TORCH_ARG(std::string, data) = "";
  TORCH_ARG(std::string, pretrained) = "";
  TORCH_ARG(std::string, output) = "features.npy";
  TORCH_ARG(std::string, split) = "train";  // train | test
  TORCH_ARG(bool, head) = false;  // the projection head's output instead
  TORCH_ARG(int64_t, batch_size) = 256;
  TORCH_ARG(int64_t, threads) = 0;
  TORCH_ARG(std::string, device) = "cpu";
  TORCH_ARG(int64_t, channels) = 0;
};

// Writes OUTPUT (N x D float32 .npy) and OUTPUT with .txt for .npy (one line
// per row: image path, or dataset#index, a tab, the label or -1). Returns N.
int64_t run_embed(const EmbedOptions& options);

}  // namespace moco::train
