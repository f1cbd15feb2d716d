#include "train/pretrain.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include <csignal>
#include <cmath>
#include <filesystem>
#include <limits>

#include "core/log.h"
#include "core/progress.h"
#include "core/signals.h"
#include "data/eval_transform.h"
#include "data/augment.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "data/preview.h"
#include "data/subsets.h"
#include "distributed/communicator.h"
#include "distributed/gradient_reducer.h"
#include "distributed/launcher.h"
#include "io/checkpoint.h"
#include "io/metrics.h"
#include "train/amp.h"
#include "train/backbone.h"
#include "train/knn.h"
#include "train/pictures.h"
#include "train/runtime.h"
#include "train/step.h"

namespace fs = std::filesystem;

namespace moco::train {

// ---- Options ----------------------------------------------------------------

distributed::DistOptions dist_options(const PretrainOptions& o) {
  return distributed::DistOptions()
      .dist_url(o.dist_url())
      .dist_backend(o.dist_backend())
      .world_size(o.world_size())
      .rank(o.rank())
      .multiprocessing_distributed(o.multiprocessing_distributed())
      .nproc_per_node(o.nproc_per_node())
      .timeout_s(o.dist_timeout());
}

void validate(const PretrainOptions& o) {
  validate_flags(o);
  TORCH_CHECK(o.start_epoch() < o.epochs(),
              "expected 0 <= --start-epoch < --epochs, got ", o.start_epoch());
  TORCH_CHECK(o.batch_size() % o.bn_splits() == 0 &&
                  o.batch_size() / o.bn_splits() >= 2,
              "expected --batch-size a multiple of --bn-splits with at least ",
              "2 images per split, got --batch-size ", o.batch_size(),
              " and --bn-splits ", o.bn_splits());
  TORCH_CHECK(o.device() == "cpu" || o.device().rfind("cuda", 0) == 0,
              "expected --device cpu or cuda[:N], got '", o.device(), "'");
  // Checks --amp against --device (fp16 needs CUDA).
  Amp(resolve_amp(o.amp(), torch::Device(o.device())), torch::Device(o.device()));
  const auto& archs = models::resnet_archs();
  TORCH_CHECK(std::find(archs.begin(), archs.end(), o.arch()) != archs.end(),
              "expected --arch one of resnet18, resnet34, resnet50, resnet101,",
              " got '", o.arch(), "'");
}

void restore_resumed_options(PretrainOptions& o,
                             const std::set<std::string>& given) {
  if (o.resume().empty()) return;
  const auto ckpt = io::load_pickle(o.resume());
  TORCH_CHECK(ckpt.isGenericDict(), "--resume ", o.resume(), ": expected a checkpoint (a dict), got ",
              ckpt.tagKind());
  const auto top = ckpt.toGenericDict();
  const auto id = identify_checkpoint(top);
  TORCH_CHECK(id.kind == CheckpointKind::pretraining, "--resume ", o.resume(), " is ", id.name,
              "; pretrain --resume continues a pretraining run (", id.takes, ")");
  if (!top.contains(c10::IValue("moco_options"))) return;
  nlohmann::json saved;
  try {
    saved = nlohmann::json::parse(top.at(c10::IValue("moco_options")).toStringRef());
  } catch (const std::exception& e) {
    TORCH_CHECK(false, "checkpoint ", o.resume(), ": its moco_options are not ",
                "JSON (", e.what(), ")");
  }
  std::vector<ResumeChange> changed;
  try {
    changed = restore_options(saved, given, o);
  } catch (const c10::Error& e) {
    TORCH_CHECK(false, "checkpoint ", o.resume(), ": its saved options are wrong: ",
                e.what_without_backtrace());
  }
  if (!given.count("output")) {
    o.output(fs::path(o.resume()).parent_path().string());
    if (o.output().empty()) o.output(".");
  }
  std::string refused, all;
  int n_refused = 0;
  for (const auto& c : changed) {
    if (!c.allowed) {
      refused += (refused.empty() ? "" : ", ") + c.text;
      ++n_refused;
    }
    all += (all.empty() ? "" : ", ") + c.text;
    o.resume_changes().push_back(c.text);
  }
  TORCH_CHECK(refused.empty() || o.override_flags(), "--resume ", o.resume(),
              ": ", refused, n_refused == 1 ? " differs" : " differ",
              " from the run's flags. Drop them to continue the run as it was, "
              "or add --override to change them (only --epochs and the kNN "
              "monitor's flags may change without it)");
  if (!all.empty()) {
    log_warn("resuming ", o.resume(), " with flags that differ from the run's: ",
             all);
  }
}

void finish_options(PretrainOptions& o, const std::set<std::string>& given) {
  o.preset(resolve_preset(o.preset(), given.count("data") > 0));
  apply_preset(o.preset(), given, o);
  o.resume(resume_path(o.resume()));
  restore_resumed_options(o, given);
  TORCH_CHECK(o.mechanism() != "end-to-end" || !given.count("moco_k"),
              "--moco-k is the size of MoCo's queue and of the memory bank's draw; "
              "--mechanism end-to-end's negatives are the batch's other keys (K = "
              "--batch-size - 1): drop --moco-k, or set --batch-size");
  TORCH_CHECK(o.mechanism() == "memory-bank" || !given.count("bank_momentum"),
              "--bank-momentum is the memory bank's; add --mechanism memory-bank, or "
              "drop it");
}

// ---- The plan ------------------------------------------------------------------

PretrainPlan resolve_plan(const PretrainOptions& opts, const distributed::DistEnv& env,
                          const data::ImageSet& train) {
  PretrainPlan p;
  p.env = env;
  auto& o = p.options = opts;
  const int64_t ranks = env.world_size;
  o.threads(use_threads(o.threads(), env.local_world_size));
  o.workers(resolve_workers(o.workers(), env.local_world_size));
  p.device = resolve_device(o.device());
  if (p.device.is_cuda() && env.distributed() && !p.device.has_index()) {
    p.device = torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(env.local_rank));
  }
  o.amp(resolve_amp(o.amp(), p.device));
  // -b is the global batch, as the official code on one node.
  TORCH_CHECK(o.batch_size() % ranks == 0,
              "expected --batch-size (the global batch) divisible by the ",
              ranks, " processes, got ", o.batch_size());
  TORCH_CHECK(o.batch_size() <= train.size(), "expected --batch-size <= the ",
              train.size(), " training images of ", o.data(), ", got ",
              o.batch_size());
  p.local_batch = o.batch_size() / ranks;
  // --bn-splits counts BN groups of the global batch: each process takes
  // its share (the official multi-GPU code: one group per GPU).
  p.local_splits =
      o.sync_bn() ? 1 : (o.bn_splits() % ranks == 0 ? o.bn_splits() / ranks : 1);
  TORCH_CHECK(p.local_batch % p.local_splits == 0 &&
                  p.local_batch / p.local_splits >= 2,
              "expected each process's batch (", p.local_batch,
              ") a multiple of its BN splits (", p.local_splits,
              ") with at least 2 images each");
  // Small images (<= 64 px: IDX, CIFAR, or files whose headers say so) are
  // used at their own size with the small-image stem, as the CIFAR demo; a
  // crop of <= 64 px given by hand implies that stem too.
  const int64_t side = data::typical_image_side(train);
  const bool small = data::small_stem_for(data::default_crop(side));
  std::string why;
  if (o.crop_size() <= 0) {
    o.crop_size(data::default_crop(side));
    why = small ? fmt::format("crop {} (the images are {} px{})", side, side,
                              train.on_disk() ? ", median of sampled headers" : "")
                : fmt::format("crop 224 (the images are {} px)", side);
  }
  if (o.stem() == "auto") {
    o.stem(data::small_stem_for(o.crop_size()) ? "small" : "imagenet");
    why += fmt::format("{}{} stem (crop {} px)", why.empty() ? "" : ", ",
                       o.stem() == "small" ? "small-image" : "ImageNet", o.crop_size());
  }
  if (!why.empty() && env.rank == 0) log_info("chosen from the data: ", why);
  p.train_size = train.size();
  TORCH_CHECK(o.mechanism() != "memory-bank" || !train.streamed(),
              "--mechanism memory-bank keeps one feature per training image, by its "
              "index, but ", train.description, " are streamed (tar shards have no "
              "index); give a folder, a list or a binary dataset");
  if (o.mechanism() == "moco" && o.moco_k() > train.size() && env.rank == 0) {
    log_warn("--moco-k ", o.moco_k(), " is larger than the ", train.size(),
             " training images: the queue holds each image's key about ",
             o.moco_k() / std::max<int64_t>(train.size(), 1),
             " times, among the negatives of its own query's view; a queue "
             "smaller than the dataset is the paper's setting");
  }
  p.in_channels = train.channels();
  p.eval = data::eval_transform(train, o.crop_size());
  return p;
}

std::string PretrainPlan::describe() const {
  const auto& o = options;
  const int64_t ranks = env.world_size;
  return fmt::format(
      "model: {}{}{}, crop {}, {}, T {}{}{}{}{}{}{}; batch {}{}, {} "
      "step{}/epoch, {} thread{}, {} worker{}",
      o.arch(), o.stem() == "small" ? " (small-image stem)" : "",
      o.width() != 64 ? fmt::format(" width {}", o.width()) : "", o.crop_size(),
      o.mechanism() == "end-to-end"
          ? fmt::format("end-to-end, K {} (the batch's other keys)", o.batch_size() - 1)
      : o.mechanism() == "memory-bank"
          ? fmt::format("memory bank of {} features, K {} drawn, bank momentum {}",
                        train_size, o.moco_k(), o.bank_momentum())
          : fmt::format("K {}, m {}", o.moco_k(), o.moco_m()),
      o.moco_t(), o.mlp() ? ", MLP head" : "",
      o.aug_plus() ? (o.blur() ? ", v2 augmentation" : ", v2 augmentation without blur")
                   : ", v1 augmentation",
      o.symmetric() ? ", symmetric loss" : "",
      o.amp() != "off" ? fmt::format(", {} autocast", o.amp()) : "",
      o.channels_last() ? ", channels-last" : "",
      o.sync_bn() ? ", SyncBN"
                  : fmt::format(", {} over {} BN groups",
                                o.shuffle_bn() ? "shuffle-BN" : "split-BN without shuffle",
                                local_splits * ranks),
      o.batch_size(),
      ranks > 1 ? fmt::format(" ({} per process)", local_batch) : "",
      steps_per_epoch, steps_per_epoch == 1 ? "" : "s", o.threads(),
      o.threads() == 1 ? "" : "s", o.workers(), o.workers() == 1 ? "" : "s");
}

models::Moco build_model(const PretrainPlan& plan) {
  const auto& o = plan.options;
  models::Moco model(models::ResNetOptions(o.arch())
                         .in_channels(plan.in_channels)
                         .small_stem(o.stem() == "small")
                         .width(o.width())
                         .mlp(o.mlp())
                         .bn_splits(plan.local_splits),
                     models::MocoOptions()
                         .mechanism(models::parse_mechanism(o.mechanism()))
                         .bank_size(plan.train_size)
                         .bank_momentum(o.bank_momentum())
                         .dim(o.moco_dim())
                         .K(o.moco_k())
                         .m(o.moco_m())
                         .T(o.moco_t())
                         .symmetric(o.symmetric())
                         .shuffle_bn(o.shuffle_bn() && !o.sync_bn()));
  model->to(plan.device);
  return model;
}

Sgd make_optimizer(models::Moco& model, const PretrainOptions& o) {
  // Only f_q is trained; weight decay on all its tensors (BN included), as
  // main_moco.py's SGD over model.parameters().
  return Sgd(model->encoder_q->parameters(),
             SgdOptions().lr(o.lr()).momentum(o.momentum()).weight_decay(o.wd()));
}

namespace {

// ---- Checkpoints -----------------------------------------------------------------

struct ResumeState {
  int64_t epoch = 0;
  int64_t epoch_step = 0;
  int64_t global_step = 0;
};

void restore_weights(const c10::impl::GenericDict& sd, models::Moco& model,
                     const std::string& path) {
  torch::NoGradGuard no_grad;
  auto restore = [&](const std::string& name, torch::Tensor& dst) {
    auto it = sd.find(c10::IValue("module." + name));
    TORCH_CHECK(it != sd.end(), "checkpoint ", path, " has no 'module.", name,
                "': it was made for another architecture or options");
    const auto src = it->value().toTensor();
    TORCH_CHECK(src.sizes() == dst.sizes(), "checkpoint ", path, ": 'module.",
                name, "' has shape ", src.sizes(), ", the model expects ",
                dst.sizes(), " (another --arch, --moco-dim, --moco-k, --mlp?)");
    dst.copy_(src);
  };
  std::vector<std::pair<std::string, torch::Tensor>> all;
  for (auto& p : model->named_parameters()) {
    restore(p.key(), p.value());
    all.emplace_back("module." + p.key(), p.value());
  }
  for (auto& b : model->named_buffers()) {
    restore(b.key(), b.value());
    all.emplace_back("module." + b.key(), b.value());
  }
  const auto bad = io::non_finite_tensors(all);
  TORCH_CHECK(bad.empty(), "checkpoint ", path, ": ", bad.size(),
              " tensors hold NaN or infinity (first: '",
              bad.empty() ? "" : bad[0],
              "'); the run that wrote it diverged. Resume from an earlier ",
              "checkpoint, with a lower --lr");
  if (!model->queue_ptr.defined()) return;
  const int64_t ptr = model->queue_ptr.item<int64_t>();
  TORCH_CHECK(ptr >= 0 && ptr < model->queue.size(1), "checkpoint ", path,
              ": queue pointer ", ptr, " is outside the queue of ",
              model->queue.size(1), " keys");
}

// Every value is checked before use: a checkpoint may be damaged or made by
// hand, and a wrong epoch would train backwards or not at all.
ResumeState load_checkpoint(const std::string& path, models::Moco& model,
                            Sgd& sgd, Amp& amp, int64_t epochs) {
  const auto ckpt = io::load_pickle(path);
  ResumeState rs;
  rs.epoch =
      io::dict_int(ckpt, "epoch", path, 0, std::numeric_limits<int64_t>::max());
  TORCH_CHECK(rs.epoch <= epochs, "checkpoint ", path, " has trained ",
              rs.epoch, " epochs, more than this run's --epochs ", epochs,
              ": pass --epochs ", rs.epoch, " or more to continue it");
  restore_weights(io::dict_get(ckpt, "state_dict", path).toGenericDict(), model,
                  path);
  sgd_load_state(sgd, io::dict_get(ckpt, "optimizer", path), path);
  const auto top = ckpt.toGenericDict();
  if (top.contains(c10::IValue("epoch_step"))) {
    rs.epoch_step = io::dict_int(ckpt, "epoch_step", path, 0,
                                 std::numeric_limits<int64_t>::max());
  }
  if (top.contains(c10::IValue("global_step"))) {
    rs.global_step = io::dict_int(ckpt, "global_step", path, 0,
                                  std::numeric_limits<int64_t>::max());
  }
  if (amp.scaling() && top.contains(c10::IValue("scaler"))) {
    const auto sc = top.at(c10::IValue("scaler"));
    const double scale = io::dict_double(sc, "scale", path);
    TORCH_CHECK(scale > 0, "checkpoint ", path, ": loss scale ", scale,
                " is not positive");
    amp.scaler().load(scale, io::dict_int(sc, "_growth_tracker", path, 0,
                                          std::numeric_limits<int64_t>::max()));
  }
  if (top.contains(c10::IValue("rng_state"))) {
    const auto state =
        io::dict_get(top.at(c10::IValue("rng_state")), "torch", path);
    TORCH_CHECK(state.isTensor(), "checkpoint ", path,
                ": expected rng_state['torch'] to be a tensor");
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    try {
      gen.set_state(state.toTensor());
    } catch (const c10::Error& e) {
      TORCH_CHECK(false, "checkpoint ", path, ": its random number state is ",
                  "damaged (", e.what_without_backtrace(), ")");
    }
  }
  return rs;
}

// ---- One run ---------------------------------------------------------------------

// Everything one pretraining run holds.
struct Session {
  PretrainPlan plan;
  data::Splits splits;
  std::shared_ptr<data::ImageSet> train_set;
  std::shared_ptr<distributed::Communicator> comm;
  models::Moco model{nullptr};
  std::unique_ptr<Sgd> sgd;
  std::unique_ptr<Amp> amp;
  std::unique_ptr<distributed::GradientReducer> reducer;
  std::unique_ptr<data::BatchSource> loader;
  std::unique_ptr<OutputLock> lock;  // rank 0's hold on --output
  io::MetricsWriter metrics;
  std::string ckpt_path;
  int64_t start_epoch = 0, start_step = 0, global_step = 0;

  const PretrainOptions& o() const { return plan.options; }
  // The kNN bank needs labels: STL-10's labelled train split, else train.
  const data::ImageSet& bank_set() const {
    return splits.train_labelled ? *splits.train_labelled : *train_set;
  }
  bool can_monitor() const {
    return splits.test && splits.test->labelled() && bank_set().labelled();
  }
};

// `epoch` is the epoch to start from, as in the official layout; a
// checkpoint written within an epoch (--save-freq, a signal, --max-steps)
// holds that epoch and `epoch_step`, the batches of it already trained.
void save_checkpoint(Session& s, int64_t epoch, int64_t epoch_step) {
  const auto& o = s.o();
  auto& model = s.model;
  auto& amp = *s.amp;
  auto ckpt = io::new_dict();
  ckpt.insert("epoch", epoch);
  ckpt.insert("epoch_step", epoch_step);
  ckpt.insert("arch", o.arch());
  ckpt.insert("state_dict", prefixed_state_dict(*model, "module."));
  // encoder_q's parameters 0..n-1, encoder_k's n..2n-1 (never stepped), as
  // the official script's optimizer lists them.
  ckpt.insert("optimizer",
              sgd_state_dict(*s.sgd,
                             model->encoder_k ? model->encoder_k->parameters().size() : 0,
                             o.lr()));
  ckpt.insert("moco_options", options_to_json(o).dump());
  ckpt.insert("global_step", s.global_step);
  auto rng = io::new_dict();
  {
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    rng.insert("torch", gen.get_state());
  }
  ckpt.insert("rng_state", rng);
  if (amp.scaling()) {
    // GradScaler.state_dict()'s names, as the official AMP recipes save it.
    auto scaler = io::new_dict();
    scaler.insert("scale", amp.scaler().value());
    scaler.insert("_growth_tracker", amp.scaler().growth_tracker());
    ckpt.insert("scaler", scaler);
  }
  io::save_pickle(s.ckpt_path, ckpt);
}

std::shared_ptr<distributed::Communicator> connect(const PretrainOptions& o,
                                            const distributed::DistEnv& env) {
  if (!env.distributed()) return nullptr;
  set_log_rank(env.rank, env.rank != 0);
  auto comm = distributed::Communicator::connect(
      env, o.dist_backend(),
      std::chrono::milliseconds(static_cast<int64_t>(o.dist_timeout() * 1000)));
  log_info("distributed: ", env.world_size, " processes (", env.source, ", ",
           o.dist_backend(), ", rendezvous ", env.master_addr, ":",
           env.master_port, ")");
  comm->check_same("options", options_shared_by_ranks(o).dump());
  return comm;
}

// Rank 0's weights and queue everywhere; shuffle-BN, enqueue and SyncBN
// across the ranks; gradients averaged with buckets starting in backward.
void wire_ranks(Session& s) {
  if (!s.comm) return;
  auto comm = s.comm;
  std::vector<torch::Tensor> state;
  for (auto& p : s.model->parameters()) state.push_back(p.data());
  for (auto& b : s.model->buffers()) state.push_back(b);
  comm->broadcast(state, 0);
  models::KeyExchange ex;
  ex.rank = s.plan.env.rank;
  ex.world_size = s.plan.env.world_size;
  ex.all_gather = [comm](const torch::Tensor& t) { return comm->all_gather(t); };
  ex.broadcast = [comm](torch::Tensor& t, int64_t r) {
    std::vector<torch::Tensor> v = {t};
    comm->broadcast(v, r);
  };
  ex.all_reduce_sum = [comm](const torch::Tensor& t) { return comm->all_reduce_sum(t); };
  s.model->set_key_exchange(ex);
  if (s.o().sync_bn()) {
    auto sum = [comm](const torch::Tensor& t) { return comm->all_reduce_sum(t); };
    s.model->encoder_q->set_bn_sync(sum);
    if (s.model->encoder_k) s.model->encoder_k->set_bn_sync(sum);
    log_info("SyncBN: BatchNorm statistics over all ", ex.world_size,
             " processes (no shuffle-BN)");
  }
  s.reducer = std::make_unique<distributed::GradientReducer>(
      comm, s.model->encoder_q->parameters());
}

data::AugmentOptions run_augment(const Session& s) {
  const auto& o = s.o();
  auto augment = o.aug_plus() ? data::moco_v2_augment(o.crop_size())
                              : data::moco_v1_augment(o.crop_size());
  if (!o.blur()) augment.blur_p(0.0);
  return augment.mean(s.plan.eval.mean).std(s.plan.eval.std);
}

std::unique_ptr<data::BatchSource> make_loader(const Session& s) {
  const auto& o = s.o();
  const auto augment = run_augment(s);
  return data::make_batch_source(
      s.train_set, augment,
      data::LoaderOptions()
          .batch_size(s.plan.local_batch)
          .workers(o.workers())
          .seed(static_cast<uint64_t>(o.seed()))
          .pin_memory(s.plan.device.is_cuda())
          .strict(o.strict_data())
          .shuffle_buffer(o.shuffle_buffer())
          .rank(s.plan.env.rank)
          .world_size(s.plan.env.world_size));
}

Session start_session(const PretrainOptions& opts) {
  validate(opts);
  const auto env = distributed::resolve(dist_options(opts), distributed::environment());
  Session s;
  s.comm = connect(opts, env);
  // Never write over a run's results by accident (rank 0 creates the folder).
  s.ckpt_path = guard_output(opts.output(), !opts.resume().empty(), false);
  if (env.rank == 0) s.lock = std::make_unique<OutputLock>(opts.output());
  s.splits = data::open_dataset(opts.data(), open_options(opts).strict(opts.strict_data()));
  if (opts.val_split() > 0) {
    TORCH_CHECK(!s.splits.train.streamed(), "--val-split needs indexed images, but ",
                s.splits.train.description, " are streamed (shards have no index to hold images out by)");
    // Seeded apart from --seed, so every seed of a sweep trains without, and
    // is scored on, the same images (and `moco knn --val-split` finds them).
    data::hold_out_validation(s.splits, opts.val_split(), 0);
  }
  s.train_set = std::make_shared<data::ImageSet>(std::move(s.splits.train));
  s.plan = resolve_plan(opts, env, *s.train_set);
  torch::manual_seed(static_cast<uint64_t>(s.o().seed()));
  if (s.plan.device.is_cuda()) enable_cudnn_autotune();
  s.amp = std::make_unique<Amp>(s.o().amp(), s.plan.device);
  s.model = build_model(s.plan);
  s.sgd = std::make_unique<Sgd>(make_optimizer(s.model, s.o()));
  s.start_epoch = s.o().start_epoch();
  if (!s.o().resume().empty()) {
    const auto rs = load_checkpoint(s.o().resume(), s.model, *s.sgd, *s.amp,
                                    s.o().epochs());
    s.start_epoch = rs.epoch;
    s.start_step = rs.epoch_step;
    s.global_step = rs.global_step;
  }
  wire_ranks(s);
  // After the broadcast: collectives want dense (NCHW-contiguous) tensors.
  if (s.o().channels_last()) models::to_channels_last(*s.model);
  s.loader = make_loader(s);
  s.plan.steps_per_epoch = s.loader->batches_per_epoch();
  if (s.plan.root() && s.plan.steps_per_epoch * s.o().epochs() < 100 &&
      s.o().max_steps() == 0) {
    log_warn(s.plan.steps_per_epoch * s.o().epochs(), " optimizer steps in all (",
             s.o().epochs(), " epoch", s.o().epochs() == 1 ? "" : "s", " of ",
             s.plan.steps_per_epoch, "): too few for the features to learn much; "
             "raise --epochs or lower --batch-size");
  }
  if (!s.o().resume().empty()) {
    TORCH_CHECK(s.start_step == 0 || (s.start_step < s.plan.steps_per_epoch &&
                                      s.start_epoch < s.o().epochs()),
                "checkpoint ", s.o().resume(), ": epoch_step ", s.start_step,
                " is outside an epoch of ", s.plan.steps_per_epoch, " steps");
    log_info("resumed from ", s.o().resume(), " at epoch ", s.start_epoch + 1,
             s.start_step > 0 ? fmt::format(", step {} of {}", s.start_step + 1,
                                            s.plan.steps_per_epoch)
                              : std::string());
  }
  // Rank 0 writes; the others' writer writes nothing.
  if (s.plan.root()) {
    s.metrics = io::MetricsWriter((fs::path(s.o().output()) / "metrics.jsonl").string());
    if (s.o().tensorboard()) s.metrics.enable_tensorboard(s.o().output());
  }
  s.metrics.write(io::ConfigRecord{options_to_json(s.o()), s.train_set->size(),
                                   s.train_set->description,
                                   s.o().resume_changes()});
  log_info("data: ", s.train_set->description, ": ", s.train_set->summary,
           s.splits.test ? "; test split: " + s.splits.test->summary : "");
  log_info(s.plan.describe());
  return s;
}

// ---- Monitoring -------------------------------------------------------------------

KnnOptions monitor_knn_options(const PretrainOptions& o) {
  return KnnOptions()
      .k(o.knn_k())
      .t(o.knn_t())
      .bank(o.knn_bank())
      .test(o.knn_test())
      .workers(o.workers());
}

void log_knn(Session& s, const std::string& what, int64_t epoch,
             const KnnResult& r, const std::string& features) {
  log_info(fmt::format(
      "knn {}: top-1 {:.2f}% top-5 {:.2f}% (k={}, t={}, bank {}, test {}, "
      "{:.1f}s)",
      what, r.top1, r.top5, s.o().knn_k(), s.o().knn_t(), r.bank_size,
      r.test_size, r.seconds));
  s.metrics.write(io::KnnRecord{epoch, r.top1, r.top5, r.bank_size, r.test_size,
                                r.seconds, features});
}

// Pictures are for looking at: one that fails is a warning, never the
// run's end.
template <typename F>
void try_picture(const std::string& what, F&& make) {
  try {
    make();
  } catch (const std::exception& e) {
    log_warn("could not write ", what, ": ", e.what());
  }
}

// OUTPUT/preview-aug.png: the run's own augmentation of a few images, for
// the report (kept from the first start of a resumed run).
void write_augmentation_preview(const Session& s) {
  const auto path = (fs::path(s.o().output()) / "preview-aug.png").string();
  // Shards are streamed: the picture would cost a pass over a shard.
  if (!s.plan.root() || fs::exists(path) || s.train_set->streamed()) return;
  try_picture(path, [&] {
    data::write_png(path, data::augmentation_grid(*s.train_set, run_augment(s), 8,
                                            static_cast<uint64_t>(s.o().seed())));
  });
}

// The weighted kNN monitor on f_q's backbone features (rank 0 scores; the
// others wait for it at their next collective). Returns top-1, or -1. The
// last one also draws the nearest neighbours and the 2-D embedding.
std::pair<double, double> monitor(Session& s, int64_t epoch, bool pictures = false) {
  if (!s.can_monitor() || !s.plan.root()) return {-1, -1};
  auto enc = s.model->encoder_q;
  const bool was_training = enc->is_training();
  enc->eval();
  const auto t0 = Clock::now();
  KnnFeatures kept;
  auto r = knn_score([&](const torch::Tensor& x) { return enc->forward_features(x); },
                     s.bank_set(), *s.splits.test, s.plan.eval,
                     monitor_knn_options(s.o()), s.plan.device, &kept);
  r.seconds = seconds_since(t0);
  enc->train(was_training);
  if (pictures) {
    try_picture("the neighbour grid and embedding", [&] {
      write_run_pictures(s.o().output(), s.bank_set(), *s.splits.test, s.plan.eval, kept);
    });
  }
  // Logged as epochs are (1-based: the kNN after epoch 1 is "epoch 1");
  // the record keeps the 0-based index of metrics.jsonl.
  log_knn(s, epoch < 0 ? "before training" : "after epoch " + std::to_string(epoch + 1),
          epoch, r, "encoder");
  return {r.top1, r.top5};
}

// The same classifier on the raw pixels: what training has to beat.
double monitor_pixels(Session& s, int64_t epoch) {
  if (!s.can_monitor() || !s.plan.root()) return -1;
  const auto t0 = Clock::now();
  auto r = knn_score(pixel_features, s.bank_set(), *s.splits.test, s.plan.eval,
                     monitor_knn_options(s.o()), torch::kCPU);
  r.seconds = seconds_since(t0);
  log_knn(s, "raw pixels", epoch, r, "pixels");
  return r.top1;
}

// ---- One epoch ----------------------------------------------------------------------

struct EpochStats {
  int64_t first_step = 0;  // batches of the epoch trained before (a resume)
  int64_t steps = 0;       // steps this process trained
  double loss = 0;  // mean over the epoch's steps
  double seconds = 0;
  bool complete = false;
  int stop_signal = 0;     // SIGINT/SIGTERM stopped the epoch
};

// The print steps: a log line or the progress bar, and a train record. On
// a GPU the host reads the loss only at print steps (the losses between are
// summed on the device), so it never waits for the step it just queued; on
// the CPU reading is free, and a non-finite loss stops at once.
class StepLog {
 public:
  StepLog(Session& s, int64_t epoch, double lr, int64_t first_step)
      : s_(s), epoch_(epoch), lr_(lr), first_step_(first_step), steps_(first_step),
        bar_on_(s.plan.root() && s.o().progress() && stderr_is_tty()),
        bar_(s.plan.steps_per_epoch,
             fmt::format("epoch {}/{}", epoch + 1, s.o().epochs()), bar_on_),
        t0_(Clock::now()), window_t0_(t0_) {}

  void after_step(const models::MocoOutput& out, int64_t images) {
    ++steps_;
    window_images_ += images;
    epoch_images_ += images;
    pending_ = pending_.defined() ? pending_ + out.loss.detach() : out.loss.detach();
    ++n_pending_;
    const bool cuda = s_.plan.device.is_cuda();
    const bool print = steps_ % s_.o().print_freq() == 0 ||
                       steps_ == s_.plan.steps_per_epoch;
    if (!cuda || print) read_pending();
    if (print) {
      log_print_step(out);
    } else if (bar_on_) {
      // Throughput from the first step, before the first print step.
      bar_.update(steps_, bar_text_.empty()
                              ? fmt::format("{:.0f} img/s", epoch_images_ /
                                                                std::max(seconds_since(t0_), 1e-9))
                              : bar_text_);
    }
  }

  // Reads what the device still holds; throws on a non-finite loss.
  void read_pending() {
    if (n_pending_ == 0) return;
    const double sum = pending_.item<double>();
    TORCH_CHECK(std::isfinite(sum), "non-finite loss (", sum, ") at epoch ",
                epoch_, n_pending_ == 1 ? " step " : " within steps ",
                n_pending_ == 1 ? std::to_string(steps_)
                                : fmt::format("{}-{}", steps_ - n_pending_ + 1, steps_),
                "; stopping. The last good checkpoint is kept",
                fs::exists(s_.ckpt_path) ? " at " + s_.ckpt_path : "",
                ". Try a lower --lr.");
    loss_sum_ += sum;
    pending_ = torch::Tensor();
    n_pending_ = 0;
  }

  EpochStats finish() {
    read_pending();
    bar_.finish();
    EpochStats e;
    e.first_step = first_step_;
    e.steps = steps_ - first_step_;
    e.loss = e.steps ? loss_sum_ / static_cast<double>(e.steps) : 0;
    e.seconds = seconds_since(t0_);
    e.complete = steps_ == s_.plan.steps_per_epoch;
    return e;
  }

 private:
  void log_print_step(const models::MocoOutput& out) {
    double loss = out.loss.item<double>();
    // Every rank reaches the same print steps: the logged loss is the mean.
    if (s_.comm) loss = s_.comm->mean(loss);
    const auto acc = models::topk_accuracy(
        out.logits.detach(),
        torch::zeros({out.logits.size(0)},
                     torch::TensorOptions().dtype(torch::kInt64).device(s_.plan.device)),
        {1, 5});
    const double img_per_s = window_images_ / std::max(seconds_since(window_t0_), 1e-9);
    window_t0_ = Clock::now();
    window_images_ = 0;
    s_.metrics.write(io::TrainRecord{epoch_, s_.global_step, loss, acc[0], acc[1],
                                     lr_, img_per_s});
    bar_text_ = fmt::format("loss {:.4f} acc@1 {:.1f} lr {:.4g} {:.0f} img/s",
                            loss, acc[0], lr_, img_per_s);
    if (bar_on_) {
      bar_.update(steps_, bar_text_);
      return;
    }
    const int64_t spe = s_.plan.steps_per_epoch;
    const double eta = ProgressBar::eta_seconds(seconds_since(t0_), steps_ - first_step_,
                                                spe - first_step_);
    // The whole run at this epoch's pace (kNN monitors not counted).
    const double per_step = seconds_since(t0_) / std::max<int64_t>(steps_ - first_step_, 1);
    const double run_eta =
        per_step * static_cast<double>((spe - steps_) + (s_.o().epochs() - epoch_ - 1) * spe);
    log_info(fmt::format(
        "epoch {}/{} step {}/{} loss {:.4f} acc@1 {:.2f} acc@5 {:.2f} lr {:.4g} "
        "{:.1f} img/s eta {} (run {})",
        epoch_ + 1, s_.o().epochs(), steps_, spe, loss, acc[0], acc[1], lr_,
        img_per_s, ProgressBar::format_duration(eta),
        ProgressBar::format_duration(run_eta)));
  }

  Session& s_;
  int64_t epoch_;
  double lr_;
  int64_t first_step_, steps_;
  bool bar_on_;
  ProgressBar bar_;
  Clock::time_point t0_, window_t0_;
  int64_t window_images_ = 0, epoch_images_ = 0, n_pending_ = 0;
  double loss_sum_ = 0;
  torch::Tensor pending_;
  std::string bar_text_;
};

// The signal that stops the run at this step, agreed by every rank (a
// signal reaches the ranks at different steps; all must stop at the same).
int stop_signal(Session& s) {
  int sig = GracefulStop::signal();
  if (!s.comm) return sig;
  const double any = s.comm->all_reduce_sum(torch::tensor({sig != 0 ? 1.0 : 0.0}))
                         .item<double>();
  return any > 0 ? (sig != 0 ? sig : SIGTERM) : 0;
}

EpochStats run_epoch(Session& s, int64_t epoch, int64_t first_step) {
  const auto& o = s.o();
  const double lr = learning_rate(o.lr(), epoch, o.epochs(), o.cos(), o.schedule());
  s.sgd->set_lr(lr);
  s.loader->start_epoch(epoch, first_step);
  const auto format = o.channels_last() ? torch::MemoryFormat::ChannelsLast
                                        : torch::MemoryFormat::Contiguous;
  StepLog log(s, epoch, lr, first_step);
  int64_t step = first_step;
  int sig = 0;
  while (auto batch = s.loader->next()) {
    auto im_q = batch->view_q.to(s.plan.device, /*non_blocking=*/true).contiguous(format);
    auto im_k = batch->view_k.to(s.plan.device, /*non_blocking=*/true).contiguous(format);
    const auto out = training_step(
        s.model, *s.sgd, *s.amp, im_q, im_k, [&] { if (s.reducer) s.reducer->finish(); },
        batch->indices);
    ++s.global_step;
    ++step;
    log.after_step(out, im_q.size(0) * s.plan.env.world_size);
    if (o.max_steps() > 0 && s.global_step >= o.max_steps()) break;
    if ((sig = stop_signal(s)) != 0) break;
    if (o.save_freq() > 0 && s.global_step % o.save_freq() == 0 &&
        step < s.plan.steps_per_epoch && s.plan.root()) {
      save_checkpoint(s, epoch, step);
    }
  }
  auto e = log.finish();
  e.stop_signal = sig;
  return e;
}

// The epoch's log line and record; the checkpoint (a stopped epoch is saved
// as not done, so --resume repeats it).
void end_epoch(Session& s, int64_t epoch, const EpochStats& e) {
  const auto& o = s.o();
  const double wait_share = s.loader->wait_seconds() / std::max(e.seconds, 1e-9);
  const double img_per_s = e.steps * o.batch_size() / std::max(e.seconds, 1e-9);
  const int64_t skipped = s.loader->skipped_files();
  // An epoch cut short (a signal, --max-steps) says where it stopped, not
  // "done": --resume repeats the rest of it.
  const std::string end =
      e.complete ? "done"
                 : fmt::format("stopped at step {} of {}", e.first_step + e.steps,
                               s.plan.steps_per_epoch);
  log_info(fmt::format(
      "epoch {}/{} {}: loss {:.4f}, {} steps in {:.1f}s, {:.1f} img/s, "
      "waiting for data {:.1f}% of the time{}",
      epoch + 1, o.epochs(), end, e.loss, e.steps, e.seconds, img_per_s,
      100.0 * wait_share,
      skipped > 0 ? fmt::format(", {} unreadable images skipped so far", skipped)
                  : ""));
  s.metrics.write(io::EpochRecord{epoch, e.loss, e.steps, e.seconds, img_per_s,
                                  wait_share, skipped, e.complete});
  if (s.plan.root()) {
    save_checkpoint(s, e.complete ? epoch + 1 : epoch,
                    e.complete ? 0 : e.first_step + e.steps);
  }
}

// --knn-init: the untrained encoder is scored once, on a fresh start; a
// resumed run (even one stopped within its first epoch) takes the score
// its start recorded, as its weights are no longer untrained.
double untrained_knn(Session& s) {
  if (s.global_step == 0) return monitor(s, -1).first;
  if (!s.plan.root()) return -1;
  const auto path = (fs::path(s.o().output()) / "metrics.jsonl").string();
  if (!fs::exists(path)) return -1;
  double top1 = -1;
  for (const auto& k : io::read_metrics(path).knn) {
    if (k.epoch < 0 && k.features == "encoder") top1 = k.top1;
  }
  if (top1 < 0) {
    log_info("--knn-init: the run started without it, so there is no untrained "
             "encoder's score to compare with (the resumed weights are trained)");
  }
  return top1;
}

void log_final(const PretrainResult& r) {
  if (r.knn_top1 >= 0) {
    std::string refs;
    if (r.knn_pixels_top1 >= 0) refs += fmt::format("raw pixels {:.2f}%", r.knn_pixels_top1);
    if (r.knn_init_top1 >= 0) {
      refs += fmt::format("{}untrained encoder {:.2f}%", refs.empty() ? "" : ", ",
                          r.knn_init_top1);
    }
    log_info(fmt::format("final kNN top-1 {:.2f}% (top-5 {:.2f}%{}{})", r.knn_top1,
                         r.knn_top5, refs.empty() ? "" : "; ", refs));
  }
  log_info("checkpoint: ", r.checkpoint);
}

}  // namespace

PretrainResult run_pretrain(const PretrainOptions& options) {
  Session s = start_session(options);
  const auto& o = s.o();
  write_augmentation_preview(s);
  PretrainResult result;
  if (o.knn_init()) result.knn_init_top1 = untrained_knn(s);
  s.model->train();
  double images = 0, step_seconds = 0, wait = 0;
  bool stopped = false;
  if (s.start_epoch == o.epochs()) {
    // A finished run resumed (e.g. by a sweep that stopped before noting
    // it): nothing to train; its final numbers are computed again.
    log_info("the checkpoint has trained all ", o.epochs(),
             " epochs: nothing to train (raise --epochs to train longer)");
    result.checkpoint = o.resume();
    std::tie(result.knn_top1, result.knn_top5) = monitor(s, o.epochs() - 1, true);
    if (o.knn_pixels())
      result.knn_pixels_top1 = monitor_pixels(s, o.epochs() - 1);
  }
  GracefulStop graceful;  // Ctrl-C: finish the step, save, then stop
  for (int64_t epoch = s.start_epoch; epoch < o.epochs() && !stopped; ++epoch) {
    const EpochStats e = run_epoch(s, epoch, epoch == s.start_epoch ? s.start_step : 0);
    stopped = o.max_steps() > 0 && s.global_step >= o.max_steps();
    end_epoch(s, epoch, e);
    if (e.stop_signal != 0) {
      throw StopRequested(
          e.stop_signal,
          fmt::format("stopped by {} at epoch {}, step {} of {}; the checkpoint "
                      "{} holds it. Continue with: moco pretrain --resume {}",
                      e.stop_signal == SIGINT ? "SIGINT" : "SIGTERM", epoch + 1,
                      e.first_step + e.steps, s.plan.steps_per_epoch,
                      s.ckpt_path, s.ckpt_path));
    }
    images += static_cast<double>(e.steps * o.batch_size());
    step_seconds += e.seconds;
    wait += s.loader->wait_seconds();
    result.steps += e.steps;
    result.final_loss = e.loss;
    result.epochs_done += e.complete ? 1 : 0;
    result.checkpoint = s.ckpt_path;
    const bool last = epoch + 1 == o.epochs() || stopped;
    if (last || (o.knn_freq() > 0 && (epoch + 1) % o.knn_freq() == 0)) {
      std::tie(result.knn_top1, result.knn_top5) = monitor(s, epoch, last);
    }
    if (last && o.knn_pixels()) result.knn_pixels_top1 = monitor_pixels(s, epoch);
  }
  result.images_per_second = images / std::max(step_seconds, 1e-9);
  result.data_wait_share = wait / std::max(step_seconds, 1e-9);
  result.skipped_files = s.loader->skipped_files();
  log_final(result);
  return result;
}

int pretrain_command(const PretrainOptions& options, const Invocation& call) {
  if (options.nproc_per_node() > 0 || options.multiprocessing_distributed()) {
    int64_t nproc = options.nproc_per_node();
    if (nproc <= 0) {
      nproc = torch::cuda::is_available()
                  ? static_cast<int64_t>(torch::cuda::device_count())
                  : 1;
    }
    // The ranks take the launcher's flags as given, less its own two.
    auto rank_flags = call.given;
    rank_flags.erase("nproc_per_node");
    rank_flags.erase("multiprocessing_distributed");
    std::vector<std::string> rank_argv = {"moco", "pretrain"};
    for (auto& w : command_words(options, rank_flags)) rank_argv.push_back(std::move(w));
    const auto node = distributed::resolve(dist_options(options), distributed::environment());
    // A process that already has a rank (its launcher, torchrun or SLURM
    // set one) starting ranks of its own would multiply without end.
    TORCH_CHECK(node.source != "torchrun" && node.source != "SLURM",
                options.nproc_per_node() > 0 ? "--nproc-per-node" : "--multiprocessing-distributed",
                " starts this node's processes, but this process is already rank ", node.rank,
                " of ", node.world_size, " (", node.source == "SLURM" ? "SLURM_PROCID" : "RANK",
                " is set, by torchrun, SLURM or moco's own launcher): give one or the other");
    return distributed::spawn_local(rank_argv, nproc, node, options.dist_timeout());
  }
  PretrainOptions o = options;
  finish_options(o, call.given);
  run_pretrain(o);
  return 0;
}

}  // namespace moco::train
