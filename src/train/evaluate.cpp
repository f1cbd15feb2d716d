#include "train/evaluate.h"

#include <torch/torch.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include <fmt/format.h>

#include "cli/progress.h"
#include "core/log.h"
#include "data/augment.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "io/checkpoint.h"
#include "io/metrics.h"
#include "io/tensor_files.h"
#include "models/moco.h"
#include "train/knn.h"
#include "train/pretrained.h"
#include "train/sgd.h"

namespace moco::train {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

int64_t cores() {
  return std::max<int64_t>(1, std::thread::hardware_concurrency());
}

torch::Device pick_device(const std::string& name) {
  TORCH_CHECK(name == "cpu" || name.rfind("cuda", 0) == 0,
              "expected --device cpu or cuda[:N], got '", name, "'");
  const torch::Device d(name);
  TORCH_CHECK(!d.is_cuda() || torch::cuda::is_available(), "--device ", name,
              " asked for, but this build of LibTorch has no CUDA or no GPU ",
              "is visible");
  return d;
}

void set_threads(int64_t threads) {
  TORCH_CHECK(threads >= 0, "expected --threads >= 0, got ", threads);
  at::set_num_threads(static_cast<int>(threads > 0 ? threads : cores()));
}

// The view size: image files are cropped to 224 (Resize 256 + CenterCrop
// for evaluation); in-memory images are used at their own size.
int64_t eval_size(const data::ImageSet& set) {
  return set.on_disk() ? 224 : set.height();
}

void require_labels(const data::Splits& s, const std::string& data,
                    const std::string& command) {
  TORCH_CHECK(s.labelled_train().labelled(), command,
              " needs labelled training images, but ", data,
              " has no labels (an unlabelled folder or a list without labels);"
              " use DIR/train/<class>/... and DIR/val/<class>/...");
  TORCH_CHECK(s.test && s.test->labelled(), command,
              " needs a labelled test split, but ", data, " has none (IDX: "
              "t10k-*, CIFAR: test_batch.bin, image folders: DIR/val/<class>/)");
}

struct Accuracy {
  double top1 = 0, top5 = 0;
};

Accuracy evaluate(models::ResNet& net, const data::ImageSet& set,
                  const std::vector<double>& mean,
                  const std::vector<double>& std, int64_t batch,
                  const torch::Device& device) {
  torch::NoGradGuard no_grad;
  net->eval();
  const int64_t n = set.size(), size = eval_size(set);
  double c1 = 0, c5 = 0;
  for (int64_t i = 0; i < n; i += batch) {
    auto idx = torch::arange(i, std::min(n, i + batch));
    auto x = normalize_images(
        data::load_eval_images(set, idx, size * 256 / 224, size), mean, std);
    auto logits = net->forward(x.to(device)).cpu();
    auto acc = models::topk_accuracy(logits, set.labels.index_select(0, idx),
                                     {1, 5});
    c1 += acc[0] * idx.size(0) / 100.0;
    c5 += acc[1] * idx.size(0) / 100.0;
  }
  return {100.0 * c1 / n, 100.0 * c5 / n};
}

c10::impl::GenericDict new_dict(const c10::TypePtr& key) {
  return c10::impl::GenericDict(key, c10::AnyType::get());
}

// main_lincls.py's checkpoint: the whole classifier as module.*, the
// optimizer over fc's two tensors.
void save_lincls(const std::string& path, models::ResNet& net, Sgd& sgd,
                 int64_t next_epoch, double best_acc1, const LinclsOptions& o) {
  auto sd = prefixed_state_dict(*net, "module.");
  auto opt = sgd_state_dict(sgd);
  auto ckpt = new_dict(c10::StringType::get());
  ckpt.insert("epoch", next_epoch);
  ckpt.insert("arch", net->options().arch());
  ckpt.insert("state_dict", sd);
  ckpt.insert("best_acc1", best_acc1);
  ckpt.insert("optimizer", opt);
  ckpt.insert("pretrained", o.pretrained());
  io::save_pickle(path, ckpt);
}

}  // namespace

LinclsResult run_lincls(const LinclsOptions& o) {
  TORCH_CHECK(o.epochs() > 0, "expected --epochs > 0, got ", o.epochs());
  TORCH_CHECK(o.batch_size() > 0, "expected --batch-size > 0, got ",
              o.batch_size());
  TORCH_CHECK(o.lr() > 0, "expected --lr > 0, got ", o.lr());
  TORCH_CHECK(o.wd() >= 0, "expected --wd >= 0, got ", o.wd());
  TORCH_CHECK(o.print_freq() > 0, "expected --print-freq > 0, got ",
              o.print_freq());
  TORCH_CHECK(!o.pretrained().empty() || !o.resume().empty(),
              "expected --pretrained CKPT (a pretraining checkpoint) or ",
              "--resume CKPT (a linear classifier checkpoint)");
  set_threads(o.threads());
  const auto device = pick_device(o.device());
  torch::manual_seed(static_cast<uint64_t>(o.seed()));

  auto splits = data::open_dataset(o.data(),
                                   data::OpenOptions().channels(o.channels()));
  require_labels(splits, o.data(), "lincls");
  const data::ImageSet& train_set = splits.labelled_train();
  const data::ImageSet& val_set = *splits.test;
  const int64_t classes = std::max(train_set.num_classes, val_set.num_classes);
  auto [mean, std] = data_normalization(train_set);

  // The backbone: from --pretrained, or the classifier being resumed.
  const Backbone pretrained =
      load_backbone(o.pretrained().empty() ? o.resume() : o.pretrained());
  TORCH_CHECK(o.arch().empty() || o.arch() == pretrained.options.arch(),
              "--arch ", o.arch(), " given, but ", pretrained.path, " holds a ",
              pretrained.options.arch());
  check_channels(pretrained, train_set, o.data());
  models::ResNet net = make_classifier(pretrained, classes);
  int64_t start_epoch = o.start_epoch();
  double best_acc1 = 0;
  std::vector<torch::Tensor> fc_params;
  for (auto& p : net->named_parameters()) {
    // Freeze all but fc, as main_lincls.py.
    if (p.key() == "fc.weight" || p.key() == "fc.bias") {
      fc_params.push_back(p.value());
    } else {
      p.value().set_requires_grad(false);
    }
  }
  Sgd sgd(fc_params,
          SgdOptions().lr(o.lr()).momentum(o.momentum()).weight_decay(o.wd()));
  if (!o.resume().empty()) {
    const Backbone resumed =
        o.pretrained().empty() ? pretrained : load_backbone(o.resume());
    TORCH_CHECK(resumed.head.count("fc.weight") &&
                    resumed.head.at("fc.weight").sizes() ==
                        net->named_parameters()["fc.weight"].sizes(),
                "expected a linear classifier checkpoint with fc.weight of ",
                net->named_parameters()["fc.weight"].sizes(), " in ",
                o.resume());
    torch::NoGradGuard no_grad;
    net->named_parameters()["fc.weight"].copy_(resumed.head.at("fc.weight"));
    net->named_parameters()["fc.bias"].copy_(resumed.head.at("fc.bias"));
    const auto ckpt = io::load_pickle(o.resume());
    const auto top = ckpt.toGenericDict();
    if (top.contains("epoch")) start_epoch = top.at("epoch").toInt();
    if (top.contains("best_acc1")) best_acc1 = top.at("best_acc1").toDouble();
    if (top.contains("optimizer")) {
      sgd_load_state(sgd, top.at("optimizer"), o.resume());
    }
    log_info("resumed ", o.resume(), " at epoch ", start_epoch,
             " (best acc@1 so far ", best_acc1, ")");
  }
  net->to(device);
  for (auto& b : sgd.momentum_buffers()) b = b.to(device);
  log_info("lincls: ", pretrained.kind, " ", pretrained.path, ": ",
           pretrained.options.arch(),
           pretrained.options.small_stem() ? " (small-image stem)" : "",
           ", features ", net->feature_dim(), ", ", classes, " classes; data ",
           train_set.description, " (", train_set.size(), ") / ",
           val_set.description, " (", val_set.size(), ")");

  LinclsResult result;
  if (o.evaluate()) {
    const auto acc = evaluate(net, val_set, mean, std, o.batch_size(), device);
    log_info(fmt::format(" * Acc@1 {:.3f} Acc@5 {:.3f}", acc.top1, acc.top5));
    result.acc1 = acc.top1;
    result.acc5 = acc.top5;
    result.best_acc1 = acc.top1;
    return result;
  }

  const fs::path out_dir(o.output());
  const std::string ckpt_path = (out_dir / "checkpoint.pth.tar").string();
  const std::string best_path = (out_dir / "model_best.pth.tar").string();
  TORCH_CHECK(!o.resume().empty() || !fs::exists(ckpt_path), "--output ",
              o.output(), " already holds a checkpoint; pass --resume ",
              ckpt_path, " to continue it, or choose another --output");
  fs::create_directories(out_dir);
  io::MetricsWriter metrics((out_dir / "metrics.jsonl").string());

  // main_lincls.py's training transform: RandomResizedCrop + flip.
  const int64_t size = eval_size(train_set);
  auto augment = data::AugmentOptions()
                     .size(size)
                     .scale_min(0.08)
                     .jitter_p(0)
                     .grayscale_p(0)
                     .blur_p(0)
                     .mean(mean)
                     .std(std);
  const int64_t workers =
      o.workers() >= 0 ? o.workers() : std::max<int64_t>(1, cores() - 1);
  auto train_ptr = std::make_shared<data::ImageSet>(train_set);
  data::TwoViewLoader loader(train_ptr, augment,
                             data::LoaderOptions()
                                 .batch_size(std::min(o.batch_size(),
                                                      train_set.size()))
                                 .workers(workers)
                                 .seed(static_cast<uint64_t>(o.seed()))
                                 .views(1)
                                 .drop_last(false)
                                 .pin_memory(device.is_cuda()));
  const int64_t steps = loader.batches_per_epoch();
  for (int64_t epoch = start_epoch; epoch < o.epochs(); ++epoch) {
    const double lr =
        learning_rate(o.lr(), epoch, o.epochs(), o.cos(), o.schedule());
    sgd.set_lr(lr);
    // The backbone stays in eval mode: BN statistics are not updated.
    net->eval();
    loader.start_epoch(epoch);
    cli::ProgressBar bar(steps, fmt::format("lincls {}/{}", epoch + 1, o.epochs()),
                         o.progress() && stderr_is_tty());
    const auto t0 = Clock::now();
    double loss_sum = 0;
    int64_t n = 0;
    while (auto batch = loader.next()) {
      auto x = batch->view_q.to(device, true);
      auto y = batch->labels.to(device, true);
      auto loss = torch::nn::functional::cross_entropy(net->forward(x), y);
      sgd.zero_grad();
      loss.backward();
      sgd.step();
      const double l = loss.item<double>();
      TORCH_CHECK(std::isfinite(l), "non-finite loss (", l, ") at epoch ",
                  epoch, "; try a lower --lr");
      loss_sum += l;
      ++n;
      if (n % o.print_freq() == 0 || n == steps) {
        bar.update(n, fmt::format("loss {:.4f} lr {:.4g}", l, lr));
        if (!(o.progress() && stderr_is_tty())) {
          log_info(fmt::format("lincls epoch {}/{} step {}/{} loss {:.4f} lr {:.4g}",
                               epoch + 1, o.epochs(), n, steps, l, lr));
        }
      }
      if (o.max_steps() > 0 && n >= o.max_steps()) break;
    }
    bar.finish();
    const auto acc = evaluate(net, val_set, mean, std, o.batch_size(), device);
    const bool is_best = acc.top1 > best_acc1;
    best_acc1 = std::max(best_acc1, acc.top1);
    result.acc1 = acc.top1;
    result.acc5 = acc.top5;
    result.best_acc1 = best_acc1;
    ++result.epochs_done;
    const double secs = seconds_since(t0);
    log_info(fmt::format(
        "lincls epoch {}/{}: loss {:.4f}, val Acc@1 {:.3f} Acc@5 {:.3f} (best "
        "{:.3f}), {:.1f}s",
        epoch + 1, o.epochs(), n ? loss_sum / n : 0.0, acc.top1, acc.top5,
        best_acc1, secs));
    metrics.write({{"kind", "lincls"}, {"epoch", epoch}, {"lr", lr},
                   {"loss", n ? loss_sum / n : 0.0}, {"acc1", acc.top1},
                   {"acc5", acc.top5}, {"seconds", secs}});
    save_lincls(ckpt_path, net, sgd, epoch + 1, best_acc1, o);
    if (is_best) save_lincls(best_path, net, sgd, epoch + 1, best_acc1, o);
  }
  result.checkpoint = ckpt_path;
  result.best = best_path;
  if (!o.pretrained().empty()) {
    // main_lincls.py's sanity_check: only fc may have changed.
    net->to(torch::kCPU);
    const auto changed = changed_backbone_tensors(pretrained, net);
    TORCH_CHECK(changed.empty(), "sanity check failed: the backbone changed (",
                changed.front(), ", ", changed.size(), " tensors in all)");
    log_info("sanity check passed: the backbone equals ", o.pretrained());
  }
  log_info(fmt::format("lincls: best val Acc@1 {:.3f}, last Acc@1 {:.3f} "
                       "Acc@5 {:.3f}; checkpoint {}",
                       best_acc1, result.acc1, result.acc5, ckpt_path));
  return result;
}

KnnCommandResult run_knn_command(const KnnOptions& o) {
  TORCH_CHECK(!o.pretrained().empty(), "expected --pretrained CKPT");
  TORCH_CHECK(o.knn_k() > 0, "expected --knn-k > 0, got ", o.knn_k());
  TORCH_CHECK(o.knn_t() > 0, "expected --knn-t > 0, got ", o.knn_t());
  TORCH_CHECK(o.batch_size() > 0, "expected --batch-size > 0, got ",
              o.batch_size());
  set_threads(o.threads());
  const auto device = pick_device(o.device());
  auto splits = data::open_dataset(o.data(),
                                   data::OpenOptions().channels(o.channels()));
  require_labels(splits, o.data(), "knn");
  const auto& bank_set = splits.labelled_train();
  const auto& test_set = *splits.test;
  const auto b = load_backbone(o.pretrained());
  check_channels(b, bank_set, o.data());
  auto net = make_classifier(b, 1);
  net->to(device);
  auto [mean, std] = data_normalization(bank_set);
  const auto t0 = Clock::now();
  auto encode = [&](const torch::Tensor& x) { return net->forward_features(x); };
  net->eval();
  auto r = knn_score(encode, bank_set, test_set, o.knn_bank(), o.knn_test(),
                     mean, std, o.batch_size(), device, eval_size(bank_set),
                     o.knn_k(), o.knn_t());
  log_info(fmt::format(
      "knn: top-1 {:.2f}% top-5 {:.2f}% (k={}, t={}, bank {} of {}, test {} "
      "of {}, {:.1f}s)",
      r.top1, r.top5, o.knn_k(), o.knn_t(), r.bank_size, bank_set.description,
      r.test_size, test_set.description, seconds_since(t0)));
  return {r.top1, r.top5, r.bank_size, r.test_size};
}

int64_t run_embed(const EmbedOptions& o) {
  TORCH_CHECK(!o.pretrained().empty(), "expected --pretrained CKPT");
  TORCH_CHECK(o.split() == "train" || o.split() == "test",
              "expected --split train or test, got '", o.split(), "'");
  TORCH_CHECK(o.batch_size() > 0, "expected --batch-size > 0, got ",
              o.batch_size());
  set_threads(o.threads());
  const auto device = pick_device(o.device());
  auto splits = data::open_dataset(o.data(),
                                   data::OpenOptions().channels(o.channels()));
  TORCH_CHECK(o.split() == "train" || splits.test, "--split test: ", o.data(),
              " has no test split");
  const data::ImageSet& set = o.split() == "train" ? splits.train : *splits.test;
  const auto b = load_backbone(o.pretrained());
  check_channels(b, set, o.data());
  auto net = o.head() ? make_encoder(b) : make_classifier(b, 1);
  net->to(device);
  // Normalised as the pretraining normalised this dataset.
  auto [mean, std] = data_normalization(
      o.split() == "train" ? splits.train : splits.labelled_train());
  torch::Tensor ok;
  torch::NoGradGuard no_grad;
  net->eval();
  auto encode = [&](const torch::Tensor& x) {
    return o.head() ? net->forward(x) : net->forward_features(x);
  };
  auto f = extract_features(encode, set, torch::Tensor(), mean, std,
                            o.batch_size(), device, eval_size(set), &ok,
                            /*l2_normalise=*/false);
  std::string listing;
  for (int64_t i = 0; i < set.size(); ++i) {
    listing += set.on_disk() ? set.files[i]
                             : set.description + "#" + std::to_string(i);
    listing += '\t';
    listing += std::to_string(set.labelled() ? set.labels[i].item<int64_t>() : -1);
    if (!ok[i].item<bool>()) listing += "\tunreadable";
    listing += '\n';
  }
  io::write_npy(o.output(), f);
  std::string list_path = o.output();
  if (fs::path(list_path).extension() == ".npy") {
    list_path = list_path.substr(0, list_path.size() - 4);
  }
  list_path += ".txt";
  io::atomic_write(list_path, listing);
  log_info("embed: ", f.size(0), " x ", f.size(1), " features of ",
           set.description, " -> ", o.output(), " (+ ", list_path, ")");
  return f.size(0);
}

}  // namespace moco::train
