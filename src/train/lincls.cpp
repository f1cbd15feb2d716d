#include "train/lincls.h"

#include <torch/torch.h>


#include <fmt/format.h>

#include "core/log.h"
#include "data/dataset.h"
#include "data/eval_transform.h"
#include "data/loader.h"
#include "io/checkpoint.h"
#include "io/metrics.h"
#include "models/moco.h"
#include "train/backbone.h"
#include "train/classify.h"
#include "train/runtime.h"
#include "train/sgd.h"

namespace moco::train {


namespace {

// main_lincls.py's checkpoint: the whole classifier as module.*, the
// optimizer over fc's two tensors.
void save_lincls(const std::string& path, models::ResNet& net, Sgd& sgd,
                 int64_t next_epoch, double best_acc1, const LinclsOptions& o,
                 int64_t crop) {
  auto ckpt = io::new_dict();
  ckpt.insert("epoch", next_epoch);
  ckpt.insert("arch", net->options().arch());
  ckpt.insert("state_dict", prefixed_state_dict(*net, "module."));
  ckpt.insert("best_acc1", best_acc1);
  ckpt.insert("optimizer", sgd_state_dict(sgd));
  ckpt.insert("pretrained", o.pretrained());
  ckpt.insert("crop_size", crop);  // what it was evaluated at (lincls -e, knn)
  io::save_pickle(path, ckpt);
}

void require_linear_classifier(const Backbone& b, const std::string& path) {
  TORCH_CHECK(b.identity.kind == CheckpointKind::linear_classifier, "--resume ", path, " is ",
              b.identity.name, "; lincls --resume continues a linear classifier (",
              b.identity.takes, ")");
}

// The linear classifier and what lincls needs around it.
struct Classifier {
  Backbone pretrained;
  models::ResNet net{nullptr};
  std::unique_ptr<Sgd> sgd;
  int64_t start_epoch = 0;
  double best_acc1 = 0;
};

Classifier make_linear_classifier(const LinclsOptions& o,
                                  const data::ImageSet& train_set,
                                  int64_t classes) {
  Classifier c;
  // The backbone: from --pretrained, or the classifier being resumed.
  c.pretrained = load_backbone(o.pretrained().empty() ? o.resume() : o.pretrained());
  if (o.pretrained().empty()) require_linear_classifier(c.pretrained, o.resume());
  TORCH_CHECK(o.arch().empty() || o.arch() == c.pretrained.options.arch(),
              "--arch ", o.arch(), " given, but ", c.pretrained.path,
              " holds a ", c.pretrained.options.arch());
  check_channels(c.pretrained, train_set, o.data());
  c.net = make_classifier(c.pretrained, classes);
  std::vector<torch::Tensor> fc_params;
  for (auto& p : c.net->named_parameters()) {
    // Freeze all but fc, as main_lincls.py.
    if (p.key() == "fc.weight" || p.key() == "fc.bias") {
      fc_params.push_back(p.value());
    } else {
      p.value().set_requires_grad(false);
    }
  }
  c.sgd = std::make_unique<Sgd>(
      fc_params,
      SgdOptions().lr(o.lr()).momentum(o.momentum()).weight_decay(o.wd()));
  c.start_epoch = o.start_epoch();
  return c;
}

void resume_classifier(Classifier& c, const LinclsOptions& o) {
  const Backbone resumed =
      o.pretrained().empty() ? c.pretrained : load_backbone(o.resume());
  require_linear_classifier(resumed, o.resume());
  auto params = c.net->named_parameters();
  TORCH_CHECK(resumed.head.count("fc.weight") &&
                  resumed.head.at("fc.weight").sizes() ==
                      params["fc.weight"].sizes(),
              "expected a linear classifier checkpoint with fc.weight of ",
              params["fc.weight"].sizes(), " in ", o.resume());
  {
    torch::NoGradGuard no_grad;
    params["fc.weight"].copy_(resumed.head.at("fc.weight"));
    params["fc.bias"].copy_(resumed.head.at("fc.bias"));
  }
  const auto ckpt = io::load_pickle(o.resume());
  const auto top = ckpt.toGenericDict();
  if (top.contains("epoch")) {
    c.start_epoch = io::dict_int(ckpt, "epoch", o.resume(), 0, o.epochs());
  }
  if (top.contains("best_acc1")) {
    c.best_acc1 = io::dict_double(ckpt, "best_acc1", o.resume());
  }
  if (top.contains("optimizer")) {
    sgd_load_state(*c.sgd, top.at("optimizer"), o.resume());
  }
  log_info("resumed ", o.resume(), " at epoch ", c.start_epoch,
           " (best acc@1 so far ", c.best_acc1, ")");
}

// One epoch of fc training; returns the mean loss.
double train_epoch(Classifier& c, data::TwoViewLoader& loader,
                   const LinclsOptions& o, int64_t epoch, double lr,
                   const torch::Device& device) {
  const int64_t steps = loader.batches_per_epoch();
  // The backbone stays in eval mode: BN statistics are not updated.
  c.net->eval();
  loader.start_epoch(epoch);
  ClassifierSteps progress("lincls", epoch, o.epochs(), steps, o.print_freq(), o.progress());
  double loss_sum = 0;
  int64_t n = 0;
  while (auto batch = loader.next()) {
    auto x = batch->view_q.to(device, true);
    auto y = batch->labels.to(device, true);
    auto loss = torch::nn::functional::cross_entropy(c.net->forward(x), y);
    c.sgd->zero_grad();
    loss.backward();
    c.sgd->step();
    const double l = loss.item<double>();
    loss_sum += l;
    progress.after_step(++n, l, lr, "--lr");
    if (o.max_steps() > 0 && n >= o.max_steps()) break;
  }
  progress.finish();
  return n ? loss_sum / n : 0.0;
}

}  // namespace

LinclsResult run_lincls(const LinclsOptions& options) {
  LinclsOptions o = options;
  o.resume(resume_path(o.resume()));
  validate_flags(o);
  TORCH_CHECK(!o.pretrained().empty() || !o.resume().empty(),
              "expected --pretrained CKPT (a pretraining checkpoint) or ",
              "--resume CKPT (a linear classifier checkpoint)");
  use_threads(o.threads());
  const auto device = resolve_device(o.device());
  const auto eval =
      FeatureOptions().batch(o.batch_size()).workers(resolve_workers(o.workers())).device(device);
  torch::manual_seed(static_cast<uint64_t>(o.seed()));

  const auto splits = open_labelled(o.data(), open_options(o), o.val_split(), o.seed(), "lincls");
  const data::ImageSet& train_set = splits.labelled_train();
  const data::ImageSet& val_set = *splits.test;
  const int64_t classes = std::max(train_set.num_classes, val_set.num_classes);
  Classifier c = make_linear_classifier(o, train_set, classes);
  const int64_t crop = evaluation_crop(&c.pretrained, train_set, o.crop_size(), "lincls");
  const auto transform = data::eval_transform(train_set, crop);
  if (!o.resume().empty()) resume_classifier(c, o);
  c.net->to(device);
  for (auto& b : c.sgd->momentum_buffers()) b = b.to(device);
  log_info("lincls: ", c.pretrained.kind, " ", c.pretrained.path, ": ",
           c.pretrained.options.arch(),
           c.pretrained.options.small_stem() ? " (small-image stem)" : "",
           ", features ", c.net->feature_dim(), ", ", classes, " classes; data ",
           train_set.description, " (", train_set.size(), ") / ",
           val_set.description, " (", val_set.size(), ")");

  if (o.evaluate()) {
    return evaluation_only(evaluate_classifier(c.net, val_set, transform, eval));
  }

  ClassifierSession session(o.output(), !o.resume().empty());
  session.open_metrics(o.tensorboard())
      .write(io::ConfigRecord{options_to_json(o), train_set.size(), train_set.description});
  bool warned = false;
  auto loader = classification_loader(train_set, transform, o.batch_size(),
                                      resolve_workers(o.workers()), o.seed(), device);
  double lr = 0, loss = 0;
  ClassifierEpochs e;
  e.train = [&](int64_t epoch) {
    lr = learning_rate(o.lr(), epoch, o.epochs(), o.cos(), o.schedule());
    c.sgd->set_lr(lr);
    loss = train_epoch(c, *loader, o, epoch, lr, device);
  };
  e.evaluate = [&] {
    return evaluate_classifier(c.net, val_set, transform, eval);
  };
  e.report = [&](int64_t epoch, const Accuracy& acc, double best, double secs) {
    log_info(fmt::format(
        "lincls epoch {}/{}: loss {:.4f}, val Acc@1 {:.3f} Acc@5 {:.3f} (best "
        "{:.3f}), {:.1f}s",
        epoch + 1, o.epochs(), loss, acc.top1, acc.top5, best, secs));
    session.metrics().write(io::LinclsRecord{epoch, lr, loss, acc.top1, acc.top5, secs});
    // main_lincls.py's lr 30 suits ImageNet ResNet-50 features; on others
    // it can blow the loss up to thousands.
    warn_if_not_learning("lincls", loss, acc.top1, classes, epoch + 1 == o.epochs(), o.lr(),
                         10.0, o.lr() == 30.0 ? " (main_lincls.py's, tuned for ImageNet "
                         "ResNet-50 features)" : "", &warned);
  };
  e.save = [&](const std::string& path, int64_t next_epoch, double best) {
    save_lincls(path, c.net, *c.sgd, next_epoch, best, o, crop);
  };
  const LinclsResult result = session.run(c.start_epoch, o.epochs(), c.best_acc1, e);
  if (!o.pretrained().empty()) {
    // main_lincls.py's sanity_check: only fc may have changed.
    c.net->to(torch::kCPU);
    const auto changed = changed_backbone_tensors(c.pretrained, c.net);
    TORCH_CHECK(changed.empty(), "sanity check failed: the backbone changed (",
                changed.front(), ", ", changed.size(), " tensors in all)");
    log_info("sanity check passed: the backbone equals ", o.pretrained());
  }
  log_info(fmt::format("lincls: best val Acc@1 {:.3f}, last Acc@1 {:.3f} "
                       "Acc@5 {:.3f}; checkpoint {}",
                       result.best_acc1, result.acc1, result.acc5, result.checkpoint));
  return result;
}

}  // namespace moco::train
