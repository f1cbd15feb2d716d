#include "train/classify.h"

#include <torch/torch.h>

#include <filesystem>

#include <fmt/format.h>

#include "core/log.h"

#include "data/augment.h"
#include "data/dataset.h"
#include "data/subsets.h"
#include "models/moco.h"
#include "train/amp.h"

namespace moco::train {

data::Splits open_labelled(const std::string& path, const data::OpenOptions& open,
                           double val_split, int64_t seed, const std::string& command) {
  auto splits = data::open_dataset(path, open);
  data::require_indexed(splits.train, command);
  if (val_split > 0) {
    data::hold_out_validation(splits, val_split, static_cast<uint64_t>(seed));
  }
  data::require_labels(splits, path, command);
  return splits;
}

Accuracy evaluate_classifier(models::ResNet& net, const data::ImageSet& set,
                             const data::EvalTransform& transform,
                             const FeatureOptions& options, const std::string& amp) {
  const int64_t batch = options.batch(), workers = options.workers();
  const torch::Device device = options.device();
  torch::NoGradGuard no_grad;
  net->eval();
  Amp precision(amp, device);
  double c1 = 0, c5 = 0, n = 0;
  data::EvalBatches batches(set, torch::arange(set.size()), transform, batch, workers);
  while (auto b = batches.next()) {
    torch::Tensor logits;
    {
      auto guard = precision.autocast();
      logits = net->forward(b->images.to(device));
    }
    const auto ok = b->readable;
    const auto labels = set.labels.slice(0, b->first, b->first + ok.size(0)).index({ok});
    const double rows = static_cast<double>(labels.size(0));
    if (rows == 0) continue;
    auto acc = models::topk_accuracy(logits.to(torch::kFloat).cpu().index({ok}), labels, {1, 5});
    c1 += acc[0] * rows / 100.0;
    c5 += acc[1] * rows / 100.0;
    n += rows;
  }
  TORCH_CHECK(n > 0, "no readable image to evaluate in ", set.description);
  return {100.0 * c1 / n, 100.0 * c5 / n};
}

void warn_if_not_learning(const std::string& command, double loss, double acc1,
                          int64_t classes, bool last, double lr, double loss_factor,
                          const std::string& why_lr, bool* warned) {
  if (*warned) return;
  const double uniform = std::log(static_cast<double>(std::max<int64_t>(classes, 2)));
  const double chance = 100.0 / static_cast<double>(std::max<int64_t>(classes, 1));
  std::string what;
  if (!std::isfinite(loss) || loss > loss_factor * uniform) {
    what = fmt::format("the loss ({:.4g}) is above {:.2f}, {}x a uniform guess's", loss,
                       loss_factor * uniform, loss_factor);
  } else if (last && acc1 < chance + 0.5 * (100.0 - chance) * 0.1) {
    what = fmt::format("val Acc@1 {:.2f}% is about chance ({:.2f}% for {} classes)",
                       acc1, chance, classes);
  }
  if (what.empty()) return;
  *warned = true;
  log_warn(fmt::format("{}: {}. --lr {:g}{} is too high for these features; try --lr {:g} "
                       "or {:g}, or check that the checkpoint was trained",
                       command, what, lr, why_lr, lr / 10, lr / 100));
}

ClassifierSteps::ClassifierSteps(std::string name, int64_t epoch, int64_t epochs,
                                 int64_t steps, int64_t print_freq, bool progress)
    : name_(std::move(name)), epoch_(epoch), epochs_(epochs), steps_(steps),
      print_freq_(print_freq), bar_on_(progress && stderr_is_tty()),
      bar_(steps, fmt::format("{} {}/{}", name_, epoch + 1, epochs), bar_on_) {}

void ClassifierSteps::after_step(int64_t n, double loss, double lr,
                                 const std::string& lr_flags) {
  TORCH_CHECK(std::isfinite(loss), "non-finite loss (", loss, ") at epoch ",
              epoch_ + 1, "; try a lower ", lr_flags);
  if (n % print_freq_ != 0 && n != steps_) return;
  bar_.update(n, fmt::format("loss {:.4f} lr {:.4g}", loss, lr));
  if (!bar_on_) {
    log_info(fmt::format("{} epoch {}/{} step {}/{} loss {:.4f} lr {:.4g}", name_,
                         epoch_ + 1, epochs_, n, steps_, loss, lr));
  }
}

ClassifierResult evaluation_only(const Accuracy& acc) {
  log_info(fmt::format(" * Acc@1 {:.3f} Acc@5 {:.3f}", acc.top1, acc.top5));
  ClassifierResult r;
  r.acc1 = r.best_acc1 = acc.top1;
  r.acc5 = acc.top5;
  return r;
}

ClassifierSession::ClassifierSession(const std::string& output, bool resuming)
    : dir_(output),
      checkpoint_(guard_output(output, resuming, false)),
      best_((std::filesystem::path(output) / "model_best.pth.tar").string()),
      lock_(output) {}

io::MetricsWriter& ClassifierSession::open_metrics(bool tensorboard) {
  metrics_ = io::MetricsWriter((std::filesystem::path(dir_) / "metrics.jsonl").string());
  if (tensorboard) metrics_.enable_tensorboard(dir_);
  return metrics_;
}

ClassifierResult ClassifierSession::run(int64_t start_epoch, int64_t epochs,
                                        double best_acc1, const ClassifierEpochs& e) {
  ClassifierResult r;
  r.best_acc1 = best_acc1;
  for (int64_t epoch = start_epoch; epoch < epochs; ++epoch) {
    const auto t0 = Clock::now();
    e.train(epoch);
    const auto acc = e.evaluate();
    const bool is_best = acc.top1 > r.best_acc1;
    r.best_acc1 = std::max(r.best_acc1, acc.top1);
    r.acc1 = acc.top1;
    r.acc5 = acc.top5;
    ++r.epochs_done;
    e.report(epoch, acc, r.best_acc1, seconds_since(t0));
    e.save(checkpoint_, epoch + 1, r.best_acc1);
    if (is_best) e.save(best_, epoch + 1, r.best_acc1);
  }
  r.checkpoint = checkpoint_;
  r.best = best_;
  return r;
}

std::unique_ptr<data::TwoViewLoader> classification_loader(
    const data::ImageSet& train_set, const data::EvalTransform& t,
    int64_t batch, int64_t workers, int64_t seed, const torch::Device& device) {
  auto augment = data::AugmentOptions()
                     .size(t.crop)
                     .scale_min(0.08)
                     .jitter_p(0)
                     .grayscale_p(0)
                     .blur_p(0)
                     .mean(t.mean)
                     .std(t.std);
  return std::make_unique<data::TwoViewLoader>(
      std::make_shared<data::ImageSet>(train_set), augment,
      data::LoaderOptions()
          .batch_size(std::min(batch, train_set.size()))
          .workers(workers)
          .seed(static_cast<uint64_t>(seed))
          .views(1)
          .drop_last(false)
          .pin_memory(device.is_cuda()));
}

}  // namespace moco::train
