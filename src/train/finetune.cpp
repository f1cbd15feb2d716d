#include "train/finetune.h"

#include <torch/torch.h>

#include <filesystem>

#include <fmt/format.h>

#include "core/log.h"
#include "data/dataset.h"
#include "data/eval_transform.h"
#include "data/loader.h"
#include "data/subsets.h"
#include "io/checkpoint.h"
#include "io/metrics.h"
#include "models/moco.h"
#include "models/split_batchnorm.h"
#include "train/amp.h"
#include "train/backbone.h"
#include "train/classify.h"
#include "train/runtime.h"
#include "train/sgd.h"

namespace moco::train {

namespace fs = std::filesystem;

namespace {

bool is_head(const std::string& name) { return name.rfind("fc.", 0) == 0; }

// The network, its source, and the two optimizers (backbone, new head).
struct Model {
  models::ResNet net{nullptr};
  std::string source;  // for the start-up line
  int64_t crop = 0;    // the evaluation crop of image files
  std::unique_ptr<Sgd> backbone, head;
  int64_t start_epoch = 0;
  double best_acc1 = 0;
};

models::ResNet from_scratch(const FinetuneOptions& o, const data::ImageSet& train,
                            int64_t classes, int64_t crop) {
  TORCH_CHECK(!o.arch().empty(), "--pretrained none needs -a/--arch (resnet18 | ",
              "resnet34 | resnet50 | resnet101)");
  // As pretraining chooses: the small-image stem for crops of <= 64 px.
  const bool small = o.stem() == "small" || (o.stem() == "auto" && data::small_stem_for(crop));
  models::ResNet net(models::ResNetOptions(o.arch())
                         .in_channels(train.channels())
                         .small_stem(small)
                         .width(o.width())
                         .num_classes(classes));
  // The same new classifier as on a pretrained backbone (main_lincls.py's).
  torch::NoGradGuard no_grad;
  for (auto& p : net->named_parameters()) {
    if (p.key() == "fc.weight") p.value().normal_(0, 0.01);
    if (p.key() == "fc.bias") p.value().zero_();
  }
  return net;
}

Model build_model(const FinetuneOptions& o, const data::ImageSet& train,
                  int64_t classes) {
  Model m;
  if (!o.resume().empty()) {
    const Backbone b = load_backbone(o.resume());
    TORCH_CHECK(b.identity.kind == CheckpointKind::finetuned, "--resume ", o.resume(), " is ",
                b.identity.name, "; finetune --resume continues a fine-tuned classifier (",
                b.identity.takes, ")");
    TORCH_CHECK(b.head.count("fc.weight") && b.head.size() == 2 &&
                    b.head.at("fc.weight").size(0) == classes,
                "expected a fine-tuned classifier with fc.weight of ", classes,
                " classes in ", o.resume());
    check_channels(b, train, o.data());
    m.crop = evaluation_crop(&b, train, o.crop_size(), "finetune");
    m.net = make_encoder(b);  // backbone and fc as saved
    m.source = "resumed " + o.resume();
  } else if (o.pretrained() == "none") {
    m.crop = evaluation_crop(nullptr, train, o.crop_size(), "finetune");
    m.net = from_scratch(o, train, classes, m.crop);
    m.source = "random initialisation";
  } else {
    const Backbone b = load_backbone(o.pretrained());
    TORCH_CHECK(o.arch().empty() || o.arch() == b.options.arch(), "--arch ",
                o.arch(), " given, but ", b.path, " holds a ", b.options.arch());
    check_channels(b, train, o.data());
    m.crop = evaluation_crop(&b, train, o.crop_size(), "finetune");
    m.net = make_classifier(b, classes);
    m.source = b.kind + " " + b.path;
  }
  std::vector<torch::Tensor> backbone, head;
  for (auto& p : m.net->named_parameters()) {
    (is_head(p.key()) ? head : backbone).push_back(p.value());
  }
  const double lr_head = o.lr_head() > 0 ? o.lr_head() : 10 * o.lr();
  m.backbone = std::make_unique<Sgd>(
      backbone, SgdOptions().lr(o.lr()).momentum(o.momentum()).weight_decay(o.wd()));
  m.head = std::make_unique<Sgd>(
      head, SgdOptions().lr(lr_head).momentum(o.momentum()).weight_decay(o.wd()));
  m.start_epoch = o.start_epoch();
  return m;
}

void resume_state(Model& m, const FinetuneOptions& o) {
  const auto ckpt = io::load_pickle(o.resume());
  const auto top = ckpt.toGenericDict();
  if (top.contains("epoch")) {
    m.start_epoch = io::dict_int(ckpt, "epoch", o.resume(), 0, o.epochs());
  }
  if (top.contains("best_acc1")) {
    m.best_acc1 = io::dict_double(ckpt, "best_acc1", o.resume());
  }
  if (top.contains("optimizer")) sgd_load_state(*m.backbone, top.at("optimizer"), o.resume());
  if (top.contains("optimizer_head")) {
    sgd_load_state(*m.head, top.at("optimizer_head"), o.resume());
  }
  log_info("resumed ", o.resume(), " at epoch ", m.start_epoch,
           " (best Acc@1 so far ", m.best_acc1, ")");
}

// main_lincls.py's layout (module.* state dict, epoch, arch, best_acc1,
// optimizer) so that lincls -e, export and the loaders read it; the head's
// optimizer, at its own learning rate, as optimizer_head.
void save_finetune(const std::string& path, Model& m, int64_t next_epoch,
                   const FinetuneOptions& o) {
  auto ckpt = io::new_dict();
  ckpt.insert("epoch", next_epoch);
  ckpt.insert("arch", m.net->options().arch());
  ckpt.insert("state_dict", prefixed_state_dict(*m.net, "module."));
  ckpt.insert("best_acc1", m.best_acc1);
  ckpt.insert("optimizer", sgd_state_dict(*m.backbone));
  ckpt.insert("optimizer_head", sgd_state_dict(*m.head));
  ckpt.insert("pretrained", o.pretrained());
  ckpt.insert("finetune_options", options_to_json(o).dump());
  ckpt.insert("crop_size", m.crop);  // what it was evaluated at
  io::save_pickle(path, ckpt);
}

// The labelled images to train on: another run's list, this run's own list
// when resuming, or a stratified subset drawn from the flags.
std::vector<int64_t> choose_labels(const FinetuneOptions& o,
                                   const data::ImageSet& train,
                                   const std::string& saved, std::string* how) {
  if (!o.label_subset().empty()) {
    *how = "the list in " + o.label_subset();
    return data::read_subset(o.label_subset(), train);
  }
  if (!o.resume().empty() && fs::exists(saved)) {
    *how = "the list in " + saved;
    return data::read_subset(saved, train);
  }
  data::SubsetSize size{o.label_fraction(), o.labels_per_class()};
  *how = o.labels_per_class() > 0
             ? fmt::format("{} per class", o.labels_per_class())
             : fmt::format("{:g}% of each class", 100 * o.label_fraction());
  *how += fmt::format(", seed {}", o.seed());
  return data::stratified_subset(train.labels, size, static_cast<uint64_t>(o.seed()));
}

struct EpochStats {
  double loss = 0, acc1 = 0;
};

EpochStats train_epoch(Model& m, data::TwoViewLoader& loader, Amp& amp,
                       const FinetuneOptions& o, int64_t epoch, double lr,
                       const torch::Device& device) {
  const int64_t steps = loader.batches_per_epoch();
  m.net->train();
  if (o.freeze_bn()) {
    for (auto& module : m.net->modules(false)) {
      if (module->as<models::SplitBatchNorm2d>()) module->eval();
    }
  }
  std::vector<torch::Tensor> params = m.backbone->params();
  params.insert(params.end(), m.head->params().begin(), m.head->params().end());
  loader.start_epoch(epoch);
  ClassifierSteps progress("finetune", epoch, o.epochs(), steps, o.print_freq(), o.progress());
  EpochStats s;
  int64_t n = 0, seen = 0;
  double correct = 0;
  while (auto batch = loader.next()) {
    auto x = batch->view_q.to(device, true);
    auto y = batch->labels.to(device, true);
    torch::Tensor logits;
    {
      auto guard = amp.autocast();
      logits = m.net->forward(x);
    }
    logits = logits.to(torch::kFloat);
    auto loss = torch::nn::functional::cross_entropy(logits, y);
    m.backbone->zero_grad();
    m.head->zero_grad();
    amp.scale(loss).backward();
    if (amp.unscale_and_check(params)) {
      m.backbone->step();
      m.head->step();
    }
    const double l = loss.item<double>();
    s.loss += l;
    correct += logits.argmax(1).eq(y).sum().item<double>();
    seen += y.size(0);
    progress.after_step(++n, l, lr, "--lr or --lr-head");
    if (o.max_steps() > 0 && n >= o.max_steps()) break;
  }
  progress.finish();
  if (n) s.loss /= static_cast<double>(n);
  if (seen) s.acc1 = 100.0 * correct / static_cast<double>(seen);
  return s;
}


void check_flags(const FinetuneOptions& o) {
  validate_flags(o);
  TORCH_CHECK(!o.pretrained().empty() || !o.resume().empty(),
              "expected --pretrained CKPT (a pretraining checkpoint, or none "
              "for random initialisation) or --resume CKPT (a fine-tuned "
              "classifier)");
  TORCH_CHECK(o.labels_per_class() == 0 || o.label_fraction() == 1.0,
              "give --label-fraction or --labels-per-class, not both");
  TORCH_CHECK(o.label_subset().empty() ||
                  (o.labels_per_class() == 0 && o.label_fraction() == 1.0),
              "--label-subset names the images to use; drop --label-fraction ",
              "and --labels-per-class");
}

}  // namespace

FinetuneResult run_finetune(const FinetuneOptions& options) {
  FinetuneOptions o = options;
  o.resume(resume_path(o.resume()));
  check_flags(o);
  use_threads(o.threads());
  const auto device = resolve_device(o.device());
  const auto eval =
      FeatureOptions().batch(o.batch_size()).workers(resolve_workers(o.workers())).device(device);
  Amp amp(resolve_amp(o.amp(), device), device);
  torch::manual_seed(static_cast<uint64_t>(o.seed()));

  const auto splits = open_labelled(o.data(), open_options(o), o.val_split(), o.seed(), "finetune");
  const data::ImageSet& labelled = splits.labelled_train();
  const data::ImageSet& val_set = *splits.test;
  const int64_t classes = std::max(labelled.num_classes, val_set.num_classes);
  Model m = build_model(o, labelled, classes);
  const auto transform = data::eval_transform(labelled, m.crop);
  if (!o.resume().empty()) resume_state(m, o);
  m.net->to(device);
  for (Sgd* sgd : {m.backbone.get(), m.head.get()}) {
    for (auto& b : sgd->momentum_buffers()) b = b.to(device);
  }

  if (o.evaluate()) {
    TORCH_CHECK(!o.resume().empty(), "-e evaluates a fine-tuned classifier: ",
                "give it as --resume CKPT");
    FinetuneResult result;
    static_cast<ClassifierResult&>(result) =
        evaluation_only(evaluate_classifier(m.net, val_set, transform, eval, amp.mode()));
    return result;
  }

  ClassifierSession session(o.output(), !o.resume().empty());
  const fs::path dir(o.output());
  const std::string labels = (dir / "labels.txt").string();
  std::string how;
  const auto chosen = choose_labels(o, labelled, labels, &how);
  data::write_subset(labels, labelled, chosen);
  const data::ImageSet train_set = data::select(labelled, chosen);

  const double lr_head = m.head->options().lr();
  log_info(fmt::format(
      "finetune: {}: {}{}, {} classes; {} of {} labelled images ({}; list in "
      "{}), val {} ({}); lr {:g} (head {:g}), {}, wd {:g}, batch {}, {} epochs, "
      "BN {}{}",
      m.source, m.net->options().arch(),
      m.net->options().small_stem() ? " (small-image stem)" : "", classes,
      train_set.size(), labelled.size(), how, labels, val_set.size(),
      val_set.description, o.lr(), lr_head,
      o.cos() ? "cosine" : "steps at --schedule", o.wd(), o.batch_size(),
      o.epochs(), o.freeze_bn() ? "frozen (pretrained statistics)" : "in train mode",
      amp.mode() != "off" ? ", " + amp.mode() + " autocast" : ""));

  session.open_metrics(o.tensorboard())
      .write(io::ConfigRecord{options_to_json(o), train_set.size(), train_set.description});
  auto loader = classification_loader(train_set, transform, o.batch_size(),
                                      resolve_workers(o.workers()), o.seed(), device);
  double scale = 1;
  EpochStats stats;
  ClassifierEpochs e;
  e.train = [&](int64_t epoch) {
    scale = learning_rate(1.0, epoch, o.epochs(), o.cos(), o.schedule());
    m.backbone->set_lr(o.lr() * scale);
    m.head->set_lr(lr_head * scale);
    stats = train_epoch(m, *loader, amp, o, epoch, o.lr() * scale, device);
  };
  e.evaluate = [&] {
    return evaluate_classifier(m.net, val_set, transform, eval, amp.mode());
  };
  bool warned = false;
  e.report = [&](int64_t epoch, const Accuracy& acc, double best, double secs) {
    log_info(fmt::format(
        "finetune epoch {}/{}: loss {:.4f}, train Acc@1 {:.2f}, val Acc@1 {:.3f} "
        "Acc@5 {:.3f} (best {:.3f}), {:.1f}s",
        epoch + 1, o.epochs(), stats.loss, stats.acc1, acc.top1, acc.top5, best, secs));
    session.metrics().write(io::FinetuneRecord{epoch, o.lr() * scale, lr_head * scale,
                                               stats.loss, stats.acc1, acc.top1,
                                               acc.top5, secs, train_set.size()});
    // A fine-tune starts about a uniform guess's loss and falls; twice that
    // is the new head's rate throwing the pretrained features away.
    warn_if_not_learning("finetune", stats.loss, acc.top1, classes, epoch + 1 == o.epochs(),
                         o.lr(), 2.0, fmt::format(" (head {:g})", lr_head), &warned);
  };
  e.save = [&](const std::string& path, int64_t next_epoch, double best) {
    m.best_acc1 = best;
    save_finetune(path, m, next_epoch, o);
  };
  FinetuneResult result;
  static_cast<ClassifierResult&>(result) =
      session.run(m.start_epoch, o.epochs(), m.best_acc1, e);
  result.labels = labels;
  result.train_images = train_set.size();
  log_info(fmt::format("finetune: best val Acc@1 {:.3f}, last Acc@1 {:.3f} "
                       "Acc@5 {:.3f}; checkpoint {}",
                       result.best_acc1, result.acc1, result.acc5, result.checkpoint));
  return result;
}

}  // namespace moco::train
