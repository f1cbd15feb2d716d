#include "train/pretrain.h"

#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <thread>

#include <fmt/format.h>

#include "cli/progress.h"
#include "core/log.h"
#include "data/augment.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "dist/dist.h"
#include "io/checkpoint.h"
#include "io/metrics.h"
#include "models/moco.h"
#include "train/knn.h"
#include "train/amp.h"
#include "train/pretrained.h"
#include "train/sgd.h"
#include "train/step.h"

namespace fs = std::filesystem;

namespace moco::train {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

int64_t cores() {
  return std::max<int64_t>(1, std::thread::hardware_concurrency());
}

c10::impl::GenericDict new_dict(const c10::TypePtr& key) {
  return c10::impl::GenericDict(key, c10::AnyType::get());
}

void save_checkpoint(const std::string& path, models::Moco& model, Sgd& sgd,
                     Amp& amp, int64_t next_epoch, int64_t global_step,
                     const PretrainOptions& o) {
  auto sd = prefixed_state_dict(*model, "module.");
  auto ckpt = new_dict(c10::StringType::get());
  ckpt.insert("epoch", next_epoch);
  ckpt.insert("arch", o.arch());
  ckpt.insert("state_dict", sd);
  ckpt.insert("optimizer",
              // encoder_q's parameters 0..n-1, encoder_k's n..2n-1 (never
              // stepped), as the official script's optimizer lists them.
              sgd_state_dict(sgd, model->encoder_k->parameters().size(), o.lr()));
  ckpt.insert("moco_options", to_json(o).dump());
  ckpt.insert("global_step", global_step);
  auto rng = new_dict(c10::StringType::get());
  {
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    rng.insert("torch", gen.get_state());
  }
  ckpt.insert("rng_state", rng);
  if (amp.scaling()) {
    // GradScaler.state_dict()'s names, as the official AMP recipes save it.
    auto scaler = new_dict(c10::StringType::get());
    scaler.insert("scale", amp.scaler().value());
    scaler.insert("_growth_tracker", amp.scaler().growth_tracker());
    ckpt.insert("scaler", scaler);
  }
  io::save_pickle(path, ckpt);
}

struct ResumeState {
  int64_t epoch = 0;
  int64_t global_step = 0;
};

ResumeState load_checkpoint(const std::string& path, models::Moco& model,
                            Sgd& sgd, Amp& amp) {
  const auto ckpt = io::load_pickle(path);
  ResumeState rs;
  rs.epoch = io::dict_get(ckpt, "epoch", path).toInt();
  const auto sd = io::dict_get(ckpt, "state_dict", path).toGenericDict();
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
  for (auto& p : model->named_parameters()) restore(p.key(), p.value());
  for (auto& b : model->named_buffers()) restore(b.key(), b.value());

  sgd_load_state(sgd, io::dict_get(ckpt, "optimizer", path), path);
  const auto top = ckpt.toGenericDict();
  if (top.contains(c10::IValue("global_step"))) {
    rs.global_step = top.at(c10::IValue("global_step")).toInt();
  }
  if (amp.scaling() && top.contains(c10::IValue("scaler"))) {
    const auto sc = top.at(c10::IValue("scaler"));
    amp.scaler().load(io::dict_get(sc, "scale", path).toDouble(),
                      io::dict_get(sc, "_growth_tracker", path).toInt());
  }
  if (top.contains(c10::IValue("rng_state"))) {
    const auto rng = top.at(c10::IValue("rng_state"));
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_state(io::dict_get(rng, "torch", path).toTensor());
  }
  return rs;
}

}  // namespace

nlohmann::json to_json(const PretrainOptions& o) {
  return {{"data", o.data()},         {"arch", o.arch()},
          {"workers", o.workers()},   {"epochs", o.epochs()},
          {"start_epoch", o.start_epoch()},
          {"batch_size", o.batch_size()},
          {"lr", o.lr()},             {"schedule", o.schedule()},
          {"momentum", o.momentum()}, {"wd", o.wd()},
          {"print_freq", o.print_freq()},
          {"resume", o.resume()},     {"seed", o.seed()},
          {"moco_dim", o.moco_dim()}, {"moco_k", o.moco_k()},
          {"moco_m", o.moco_m()},     {"moco_t", o.moco_t()},
          {"mlp", o.mlp()},           {"aug_plus", o.aug_plus()},
          {"cos", o.cos()},           {"threads", o.threads()},
          {"bn_splits", o.bn_splits()},
          {"symmetric", o.symmetric()},
          {"max_steps", o.max_steps()},
          {"output", o.output()},     {"device", o.device()},
          {"stem", o.stem()},         {"width", o.width()},
          {"crop_size", o.crop_size()},
          {"blur", o.blur()},         {"knn_k", o.knn_k()},
          {"knn_t", o.knn_t()},       {"knn_freq", o.knn_freq()},
          {"knn_bank", o.knn_bank()}, {"knn_test", o.knn_test()},
          {"channels", o.channels()}, {"strict_data", o.strict_data()},
          {"dist_backend", o.dist_backend()}, {"sync_bn", o.sync_bn()},
          {"amp", o.amp()},           {"channels_last", o.channels_last()}};
}

dist::DistOptions dist_options(const PretrainOptions& o) {
  return dist::DistOptions()
      .dist_url(o.dist_url())
      .dist_backend(o.dist_backend())
      .world_size(o.world_size())
      .rank(o.rank())
      .multiprocessing_distributed(o.multiprocessing_distributed())
      .nproc_per_node(o.nproc_per_node())
      .timeout_s(o.dist_timeout());
}

void validate(const PretrainOptions& o) {
  TORCH_CHECK(o.epochs() > 0, "expected --epochs > 0, got ", o.epochs());
  TORCH_CHECK(o.start_epoch() >= 0 && o.start_epoch() < o.epochs(),
              "expected 0 <= --start-epoch < --epochs, got ", o.start_epoch());
  TORCH_CHECK(o.batch_size() > 0, "expected --batch-size > 0, got ",
              o.batch_size());
  TORCH_CHECK(o.lr() > 0, "expected --lr > 0, got ", o.lr());
  TORCH_CHECK(o.momentum() >= 0 && o.momentum() < 1,
              "expected --momentum in [0, 1), got ", o.momentum());
  TORCH_CHECK(o.wd() >= 0, "expected --wd >= 0, got ", o.wd());
  TORCH_CHECK(o.print_freq() > 0, "expected --print-freq > 0, got ",
              o.print_freq());
  TORCH_CHECK(o.moco_dim() > 0, "expected --moco-dim > 0, got ", o.moco_dim());
  TORCH_CHECK(o.moco_k() > 0, "expected --moco-k > 0, got ", o.moco_k());
  TORCH_CHECK(o.moco_m() >= 0 && o.moco_m() < 1,
              "expected --moco-m in [0, 1), got ", o.moco_m());
  TORCH_CHECK(o.moco_t() > 0, "expected --moco-t > 0, got ", o.moco_t());
  TORCH_CHECK(o.bn_splits() >= 1, "expected --bn-splits >= 1, got ",
              o.bn_splits());
  TORCH_CHECK(o.batch_size() % o.bn_splits() == 0 &&
                  o.batch_size() / o.bn_splits() >= 2,
              "expected --batch-size a multiple of --bn-splits with at least ",
              "2 images per split, got --batch-size ", o.batch_size(),
              " and --bn-splits ", o.bn_splits());
  TORCH_CHECK(o.threads() >= 0, "expected --threads >= 0, got ", o.threads());
  TORCH_CHECK(o.workers() >= -1, "expected --workers >= 0, got ",
              o.workers());
  TORCH_CHECK(o.max_steps() >= 0, "expected --max-steps >= 0, got ",
              o.max_steps());
  TORCH_CHECK(o.device() == "cpu" || o.device().rfind("cuda", 0) == 0,
              "expected --device cpu or cuda[:N], got '", o.device(), "'");
  Amp(o.amp(), torch::Device(o.device()));  // checks --amp against --device
  TORCH_CHECK(o.stem() == "auto" || o.stem() == "small" ||
                  o.stem() == "imagenet",
              "expected --stem auto, small or imagenet, got '", o.stem(), "'");
  TORCH_CHECK(o.crop_size() >= 0, "expected --crop-size >= 0, got ",
              o.crop_size());
  TORCH_CHECK(o.channels() == 0 || o.channels() == 1 || o.channels() == 3,
              "expected --channels 1 or 3, got ", o.channels());
  TORCH_CHECK(o.knn_k() > 0, "expected --knn-k > 0, got ", o.knn_k());
  TORCH_CHECK(o.knn_t() > 0, "expected --knn-t > 0, got ", o.knn_t());
  TORCH_CHECK(o.knn_freq() >= 0, "expected --knn-freq >= 0, got ",
              o.knn_freq());
  for (auto m : o.schedule()) {
    TORCH_CHECK(m >= 0, "expected --schedule epochs >= 0, got ", m);
  }
  const auto& archs = models::resnet_archs();
  TORCH_CHECK(std::find(archs.begin(), archs.end(), o.arch()) != archs.end(),
              "expected --arch one of resnet18, resnet34, resnet50, resnet101,",
              " got '", o.arch(), "'");
}

PretrainResult run_pretrain(const PretrainOptions& opts) {
  validate(opts);
  PretrainOptions o = opts;
  TORCH_CHECK(o.dist_timeout() > 0, "expected --dist-timeout > 0, got ",
              o.dist_timeout());
  const auto env = dist::resolve(dist_options(o), dist::environment());
  const int64_t ranks = env.world_size;
  const bool root = env.rank == 0;
  std::shared_ptr<dist::Communicator> comm;
  if (env.distributed()) {
    set_log_rank(env.rank, !root);
    comm = dist::Communicator::connect(
        env, o.dist_backend(),
        std::chrono::milliseconds(static_cast<int64_t>(o.dist_timeout() * 1000)));
    log_info("distributed: ", ranks, " processes (", env.source, ", ",
             o.dist_backend(), ", rendezvous ", env.master_addr, ":",
             env.master_port, ")");
    // -b is the global batch, as the official code on one node.
    TORCH_CHECK(o.batch_size() % ranks == 0,
                "expected --batch-size (the global batch) divisible by the ",
                ranks, " processes, got ", o.batch_size());
    comm->check_same("options", to_json(o).dump());
  }
  // Each process runs its share of the cores unless told otherwise.
  const int64_t cores_here =
      std::max<int64_t>(1, cores() / std::max<int64_t>(1, env.local_world_size));
  const int64_t threads = o.threads() > 0 ? o.threads() : cores_here;
  at::set_num_threads(static_cast<int>(threads));
  const int64_t workers =
      o.workers() >= 0 ? o.workers() : std::max<int64_t>(1, cores_here - 1);
  torch::manual_seed(static_cast<uint64_t>(o.seed()));

  torch::Device device(o.device());
  TORCH_CHECK(!device.is_cuda() || torch::cuda::is_available(),
              "--device ", o.device(), " asked for, but this build of LibTorch ",
              "has no CUDA or no GPU is visible");
  if (device.is_cuda() && env.distributed() && !device.has_index()) {
    device = torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(env.local_rank));
  }
  Amp amp(o.amp(), device);
  if (device.is_cuda()) enable_cudnn_autotune();
  const int64_t local_batch = o.batch_size() / ranks;
  // --bn-splits counts BN groups of the global batch: each process takes
  // its share (the official multi-GPU code: one group per GPU).
  const int64_t local_splits =
      o.sync_bn() ? 1 : (o.bn_splits() % ranks == 0 ? o.bn_splits() / ranks : 1);
  TORCH_CHECK(local_batch % local_splits == 0 && local_batch / local_splits >= 2,
              "expected each process's batch (", local_batch, ") a multiple of ",
              "its BN splits (", local_splits, ") with at least 2 images each");

  // Never write over a run's results by accident.
  const fs::path out_dir(o.output());
  const std::string ckpt_path = (out_dir / "checkpoint.pth.tar").string();
  TORCH_CHECK(!o.resume().empty() || !fs::exists(ckpt_path),
              "--output ", o.output(), " already holds a checkpoint; pass ",
              "--resume ", ckpt_path, " to continue it, or choose another ",
              "--output");
  if (root) fs::create_directories(out_dir);

  auto splits = data::open_dataset(
      o.data(),
      data::OpenOptions().channels(o.channels()).strict(o.strict_data()));
  auto train_set = std::make_shared<data::ImageSet>(std::move(splits.train));
  // The kNN bank needs labels: STL-10's labelled train split, else train.
  const data::ImageSet& bank_set =
      splits.train_labelled ? *splits.train_labelled : *train_set;
  TORCH_CHECK(o.batch_size() <= train_set->size(),
              "expected --batch-size <= the ", train_set->size(),
              " training images of ", o.data(), ", got ", o.batch_size());
  const bool small = !train_set->on_disk() && train_set->height() <= 64 &&
                     train_set->width() <= 64;
  const bool small_stem = o.stem() == "small" || (o.stem() == "auto" && small);
  const int64_t crop =
      o.crop_size() > 0 ? o.crop_size() : (small ? train_set->height() : 224);
  o.stem(small_stem ? "small" : "imagenet").crop_size(crop).threads(threads)
      .workers(workers);

  auto augment = o.aug_plus() ? data::moco_v2_augment(crop)
                              : data::moco_v1_augment(crop);
  if (!o.blur()) augment.blur_p(0.0);
  auto [mean, std] = data_normalization(*train_set);
  augment.mean(mean).std(std);

  models::Moco model(
      models::ResNetOptions(o.arch())
          .in_channels(train_set->channels())
          .small_stem(small_stem)
          .width(o.width())
          .mlp(o.mlp())
          .bn_splits(local_splits),
      models::MocoOptions()
          .dim(o.moco_dim())
          .K(o.moco_k())
          .m(o.moco_m())
          .T(o.moco_t())
          .symmetric(o.symmetric())
          .shuffle_bn(!o.sync_bn()));
  model->to(device);
  Sgd sgd(model->encoder_q->parameters(),
          SgdOptions().lr(o.lr()).momentum(o.momentum()).weight_decay(o.wd()));

  int64_t start_epoch = o.start_epoch();
  int64_t global_step = 0;
  if (!o.resume().empty()) {
    const auto rs = load_checkpoint(o.resume(), model, sgd, amp);
    start_epoch = rs.epoch;
    global_step = rs.global_step;
    log_info("resumed from ", o.resume(), " at epoch ", start_epoch);
  }
  if (comm) {
    // Identical weights and queue everywhere: rank 0's.
    std::vector<torch::Tensor> state;
    for (auto& p : model->parameters()) state.push_back(p.data());
    for (auto& b : model->buffers()) state.push_back(b);
    comm->broadcast(state, 0);
    models::KeyExchange ex;
    ex.rank = env.rank;
    ex.world_size = ranks;
    ex.all_gather = [comm](const torch::Tensor& t) { return comm->all_gather(t); };
    ex.broadcast = [comm](torch::Tensor& t, int64_t r) {
      std::vector<torch::Tensor> v = {t};
      comm->broadcast(v, r);
    };
    model->set_key_exchange(ex);
    if (o.sync_bn()) {
      auto sum = [comm](const torch::Tensor& t) { return comm->all_reduce_sum(t); };
      model->encoder_q->set_bn_sync(sum);
      model->encoder_k->set_bn_sync(sum);
    }
  }

  // After the broadcast: collectives want dense (NCHW-contiguous) tensors.
  if (o.channels_last()) models::to_channels_last(*model);

  // Gradients averaged over ranks, buckets starting during backward.
  std::unique_ptr<dist::GradientReducer> reducer;
  if (comm) {
    reducer = std::make_unique<dist::GradientReducer>(
        comm, model->encoder_q->parameters());
  }

  data::TwoViewLoader loader(train_set, augment,
                             data::LoaderOptions()
                                 .batch_size(local_batch)
                                 .workers(workers)
                                 .seed(static_cast<uint64_t>(o.seed()))
                                 .pin_memory(device.is_cuda())
                                 .strict(o.strict_data())
                                 .rank(env.rank)
                                 .world_size(ranks));
  const int64_t steps_per_epoch = loader.batches_per_epoch();

  // Rank 0 writes; the others' writer writes nothing.
  io::MetricsWriter metrics = root ? io::MetricsWriter((out_dir / "metrics.jsonl").string())
                                   : io::MetricsWriter();
  metrics.write({{"kind", "config"}, {"options", to_json(o)},
                 {"train_images", train_set->size()},
                 {"dataset", train_set->description}});
  log_info("data: ", train_set->description, ": ", train_set->summary,
           splits.test ? "; test split: " + splits.test->summary : "");
  log_info("model: ", o.arch(), small_stem ? " (small-image stem)" : "",
           o.width() != 64 ? fmt::format(" width {}", o.width()) : "",
           ", crop ", crop, ", K ", o.moco_k(), ", m ", o.moco_m(), ", T ",
           o.moco_t(), o.mlp() ? ", MLP head" : "",
           o.aug_plus() ? ", v2 augmentation" : ", v1 augmentation",
           o.amp() != "off" ? fmt::format(", {} autocast", o.amp()) : "",
           o.channels_last() ? ", channels-last" : "",
           o.sync_bn() ? ", SyncBN" : fmt::format(", shuffle-BN over {} BN groups",
                                                  local_splits * ranks),
           "; batch ", o.batch_size(),
           ranks > 1 ? fmt::format(" ({} per process)", local_batch) : "",
           ", ", steps_per_epoch,
           " steps/epoch, ", threads, " threads, ", workers, " workers");

  PretrainResult result;
  auto run_knn = [&](int64_t epoch) {
    if (!splits.test || !splits.test->labelled() || !bank_set.labelled()) {
      return;
    }
    // Rank 0 scores; the others wait for it at the next collective.
    if (!root) return;
    const auto t0 = Clock::now();
    auto enc = model->encoder_q;
    const bool was_training = enc->is_training();
    enc->eval();
    auto encode = [&](const torch::Tensor& x) {
      return enc->forward_features(x);
    };
    auto r = knn_score(encode, bank_set, *splits.test, o.knn_bank(),
                       o.knn_test(), mean, std, 512, device, crop, o.knn_k(),
                       o.knn_t());
    enc->train(was_training);
    const double secs = seconds_since(t0);
    log_info(fmt::format(
        "knn epoch {}: top-1 {:.2f}% top-5 {:.2f}% (k={}, t={}, bank {}, "
        "test {}, {:.1f}s)",
        epoch, r.top1, r.top5, o.knn_k(), o.knn_t(), r.bank_size, r.test_size,
        secs));
    metrics.write({{"kind", "knn"}, {"epoch", epoch}, {"top1", r.top1},
                   {"top5", r.top5}, {"bank", r.bank_size},
                   {"test", r.test_size}, {"seconds", secs}});
    if (epoch < 0) {
      result.knn_init_top1 = r.top1;
    } else {
      result.knn_top1 = r.top1;
      result.knn_top5 = r.top5;
    }
  };
  if (o.knn_init() && start_epoch == 0) run_knn(-1);

  const auto input_format = o.channels_last() ? torch::MemoryFormat::ChannelsLast
                                              : torch::MemoryFormat::Contiguous;
  model->train();
  double total_images = 0, total_step_seconds = 0, total_wait = 0;
  bool stopped = false;
  for (int64_t epoch = start_epoch; epoch < o.epochs() && !stopped; ++epoch) {
    const double lr =
        learning_rate(o.lr(), epoch, o.epochs(), o.cos(), o.schedule());
    sgd.set_lr(lr);
    loader.start_epoch(epoch);
    cli::ProgressBar bar(steps_per_epoch,
                         fmt::format("epoch {}/{}", epoch + 1, o.epochs()),
                         o.progress() && stderr_is_tty());
    const auto epoch_t0 = Clock::now();
    double loss_sum = 0, acc1_sum = 0, acc5_sum = 0;
    int64_t n_steps = 0;
    auto window_t0 = Clock::now();
    int64_t window_images = 0;
    double img_per_s = 0;
    // On a GPU the host reads the loss only every -p steps, so it never waits
    // for the step it just queued; on the CPU reading is free. The losses
    // in between are summed on the device.
    torch::Tensor loss_pending;
    int64_t n_pending = 0;
    auto read_pending_loss = [&] {
      if (n_pending == 0) return;
      const double sum = loss_pending.item<double>();
      TORCH_CHECK(std::isfinite(sum), "non-finite loss (", sum, ") at epoch ",
                  epoch, n_pending == 1 ? " step " : " within steps ",
                  n_pending == 1 ? std::to_string(n_steps)
                                 : fmt::format("{}-{}", n_steps - n_pending + 1,
                                               n_steps),
                  "; stopping. The last good checkpoint is kept",
                  fs::exists(ckpt_path) ? " at " + ckpt_path : "",
                  ". Try a lower --lr.");
      loss_sum += sum;
      loss_pending = torch::Tensor();
      n_pending = 0;
    };
    std::string bar_text;
    while (true) {
      const auto wait_t0 = Clock::now();
      auto batch = loader.next();
      total_wait += seconds_since(wait_t0);
      if (!batch) break;
      auto im_q = batch->view_q.to(device, /*non_blocking=*/true)
                      .contiguous(input_format);
      auto im_k = batch->view_k.to(device, /*non_blocking=*/true)
                      .contiguous(input_format);
      const auto out = training_step(model, sgd, amp, im_q, im_k, [&] {
        if (reducer) reducer->finish();
      });
      ++global_step;
      ++n_steps;
      window_images += im_q.size(0) * ranks;

      const bool print = n_steps % o.print_freq() == 0 ||
                         n_steps == steps_per_epoch;
      const bool bar_on = root && o.progress() && stderr_is_tty();
      loss_pending = loss_pending.defined() ? loss_pending + out.loss.detach()
                                            : out.loss.detach();
      ++n_pending;
      if (!device.is_cuda() || print) read_pending_loss();
      if (bar_on && !print && device.is_cuda()) bar.update(n_steps, bar_text);
      if (print || (bar_on && !device.is_cuda())) {
        double loss = out.loss.item<double>();
        // Every rank reaches the same print steps: the logged loss is the
        // mean over ranks.
        if (comm && print) loss = comm->mean(loss);
        const auto acc = models::topk_accuracy(
            out.logits.detach(),
            torch::zeros({out.logits.size(0)},
                         torch::TensorOptions().dtype(torch::kInt64)
                             .device(device)),
            {1, 5});
        acc1_sum += acc[0];
        acc5_sum += acc[1];
        const double window_s = seconds_since(window_t0);
        if (print) {
          img_per_s = window_images / std::max(window_s, 1e-9);
          window_t0 = Clock::now();
          window_images = 0;
          const double eta = cli::ProgressBar::eta_seconds(
              seconds_since(epoch_t0), n_steps, steps_per_epoch);
          metrics.write({{"kind", "train"}, {"epoch", epoch},
                         {"step", global_step}, {"loss", loss},
                         {"acc1", acc[0]}, {"acc5", acc[1]}, {"lr", lr},
                         {"images_per_s", img_per_s}});
          if (!bar_on) {
            log_info(fmt::format(
                "epoch {}/{} step {}/{} loss {:.4f} acc@1 {:.2f} acc@5 {:.2f} "
                "lr {:.4g} {:.1f} img/s eta {}",
                epoch + 1, o.epochs(), n_steps, steps_per_epoch, loss, acc[0],
                acc[1], lr, img_per_s,
                cli::ProgressBar::format_duration(eta)));
          }
        }
        bar_text = fmt::format("loss {:.4f} acc@1 {:.1f} lr {:.4g} {:.0f} img/s",
                               loss, acc[0], lr, img_per_s);
        bar.update(n_steps, bar_text);
      }
      if (o.max_steps() > 0 && global_step >= o.max_steps()) {
        stopped = true;
        break;
      }
    }
    read_pending_loss();  // stopped by --max-steps between host reads
    bar.finish();
    const double epoch_s = seconds_since(epoch_t0);
    const double wait_share = loader.wait_seconds() / std::max(epoch_s, 1e-9);
    total_images += static_cast<double>(n_steps * o.batch_size());
    total_step_seconds += epoch_s;
    result.steps += n_steps;
    result.final_loss = n_steps ? loss_sum / n_steps : 0;
    const bool epoch_complete = n_steps == steps_per_epoch;
    if (epoch_complete) ++result.epochs_done;
    const int64_t skipped = loader.skipped_files();
    log_info(fmt::format(
        "epoch {}/{} done: loss {:.4f}, {} steps in {:.1f}s, {:.1f} img/s, "
        "waiting for data {:.1f}% of the time{}",
        epoch + 1, o.epochs(), result.final_loss, n_steps, epoch_s,
        n_steps * o.batch_size() / std::max(epoch_s, 1e-9),
        100.0 * wait_share,
        skipped > 0 ? fmt::format(", {} unreadable images skipped so far",
                                  skipped)
                    : ""));
    metrics.write({{"kind", "epoch"}, {"epoch", epoch},
                   {"loss", result.final_loss}, {"steps", n_steps},
                   {"seconds", epoch_s},
                   {"images_per_s", n_steps * o.batch_size() /
                                        std::max(epoch_s, 1e-9)},
                   {"data_wait_share", wait_share},
                   {"skipped_files", skipped},
                   {"complete", epoch_complete}});
    // A stopped epoch is saved as not done, so --resume repeats it.
    if (root) {
      save_checkpoint(ckpt_path, model, sgd, amp,
                      epoch_complete ? epoch + 1 : epoch, global_step, o);
    }
    result.checkpoint = ckpt_path;
    const bool last = epoch + 1 == o.epochs() || stopped;
    if (last || (o.knn_freq() > 0 && (epoch + 1) % o.knn_freq() == 0)) {
      run_knn(epoch);
    }
  }
  result.images_per_second = total_images / std::max(total_step_seconds, 1e-9);
  result.data_wait_share = total_wait / std::max(total_step_seconds, 1e-9);
  result.skipped_files = loader.skipped_files();
  if (result.knn_top1 >= 0) {
    log_info(fmt::format("final kNN top-1 {:.2f}% (top-5 {:.2f}%){}",
                         result.knn_top1, result.knn_top5,
                         result.knn_init_top1 >= 0
                             ? fmt::format("; untrained encoder {:.2f}%",
                                           result.knn_init_top1)
                             : ""));
  }
  log_info("checkpoint: ", result.checkpoint);
  return result;
}

}  // namespace moco::train
