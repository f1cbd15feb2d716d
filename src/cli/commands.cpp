#include "cli/commands.h"

#include <c10/util/Exception.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <functional>
#include <iostream>
#include <map>
#include <thread>

#include <fmt/format.h>

#include "core/log.h"
#include "data/dataset.h"
#include "dist/dist.h"
#include "data/throughput.h"
#include "io/report.h"
#include "train/evaluate.h"
#include "train/pretrain.h"
#include "train/pretrained.h"

namespace moco::cli {

namespace {

struct PresetValue {
  const char* flag;
  std::function<void(train::PretrainOptions&)> set;
};

// Each preset lists the values it gives to flags left unset by the user.
const std::map<std::string, std::vector<PresetValue>>& presets() {
  using O = train::PretrainOptions;
  static const std::map<std::string, std::vector<PresetValue>> table = {
      // The README's default, sized for ~10 minutes on 2 CPU cores with the
      // build: the CIFAR demo's recipe at a quarter of ResNet-18's width,
      // one epoch at batch 128, kNN on 10k/10k images (README: numbers).
      {"quick",
       {{"--arch", [](O& o) { o.arch("resnet18"); }},
        {"--width", [](O& o) { o.width(16); }},
        {"--epochs", [](O& o) { o.epochs(1); }},
        {"--batch-size", [](O& o) { o.batch_size(128); }},
        {"--lr", [](O& o) { o.lr(0.06); }},
        {"--cos", [](O& o) { o.cos(true); }},
        {"--wd", [](O& o) { o.wd(5e-4); }},
        {"--moco-k", [](O& o) { o.moco_k(4096); }},
        {"--moco-m", [](O& o) { o.moco_m(0.99); }},
        {"--moco-t", [](O& o) { o.moco_t(0.1); }},
        {"--aug-plus", [](O& o) { o.aug_plus(true); }},
        {"--blur", [](O& o) { o.blur(false); }},
        {"--knn-bank", [](O& o) { o.knn_bank(10000); }},
        {"--knn-test", [](O& o) { o.knn_test(10000); }},
        {"--knn-init", [](O& o) { o.knn_init(true); }},
        {"--knn-freq", [](O& o) { o.knn_freq(0); }}}},
      // The official CIFAR-10 demo (moco/colab): ResNet-18, 200 epochs.
      {"cifar",
       {{"--arch", [](O& o) { o.arch("resnet18"); }},
        {"--epochs", [](O& o) { o.epochs(200); }},
        {"--batch-size", [](O& o) { o.batch_size(512); }},
        {"--lr", [](O& o) { o.lr(0.06); }},
        {"--cos", [](O& o) { o.cos(true); }},
        {"--wd", [](O& o) { o.wd(5e-4); }},
        {"--moco-k", [](O& o) { o.moco_k(4096); }},
        {"--moco-m", [](O& o) { o.moco_m(0.99); }},
        {"--moco-t", [](O& o) { o.moco_t(0.1); }},
        {"--aug-plus", [](O& o) { o.aug_plus(true); }},
        {"--blur", [](O& o) { o.blur(false); }}}},
      // main_moco.py as it is: MoCo v1.
      {"v1", {}},
      // MoCo v2: --mlp --moco-t 0.2 --aug-plus --cos.
      {"v2",
       {{"--mlp", [](O& o) { o.mlp(true); }},
        {"--moco-t", [](O& o) { o.moco_t(0.2); }},
        {"--aug-plus", [](O& o) { o.aug_plus(true); }},
        {"--cos", [](O& o) { o.cos(true); }}}},
      {"none", {}},
  };
  return table;
}

bool flag_value(const std::string& s) {
  return s == "1" || s == "true" || s == "on" || s == "yes";
}

int pretrain_main(CLI::App& sub, train::PretrainOptions& o,
                  const std::string& preset, const std::string& blur,
                  const std::string& knn_init, int argc, char** argv) {
  if (o.nproc_per_node() > 0 || o.multiprocessing_distributed()) {
    // This process only starts and watches the ranks.
    int64_t nproc = o.nproc_per_node();
    if (nproc <= 0) {
      nproc = torch::cuda::is_available()
                  ? static_cast<int64_t>(torch::cuda::device_count())
                  : 1;
    }
    const auto node = dist::resolve(train::dist_options(o), dist::environment());
    return dist::spawn_local(argc, argv, nproc, node, o.dist_timeout());
  }
  std::set<std::string> given;
  for (const CLI::Option* opt : sub.get_options()) {
    if (opt->count() > 0) {
      for (const auto& n : opt->get_lnames()) given.insert("--" + n);
    }
  }
  if (!blur.empty()) o.blur(flag_value(blur));
  if (!knn_init.empty()) o.knn_init(flag_value(knn_init));
  std::string name = preset;
  if (name == "auto") name = given.count("--data") ? "none" : "quick";
  apply_preset(name, given, o);
  train::run_pretrain(o);
  return 0;
}

int bench_data_main(const std::string& path, int64_t workers, int64_t batch,
                    int64_t crop, const std::string& aug, int64_t images,
                    int64_t channels, double step_ms) {
  TORCH_CHECK(batch > 0, "expected --batch-size > 0, got ", batch);
  TORCH_CHECK(crop > 0, "expected --crop-size > 0, got ", crop);
  TORCH_CHECK(images >= 0, "expected --images >= 0, got ", images);
  TORCH_CHECK(step_ms >= 0, "expected --step-ms >= 0, got ", step_ms);
  const int64_t cores =
      std::max<int64_t>(1, std::thread::hardware_concurrency());
  if (workers < 0) workers = cores;
  auto splits = data::open_dataset(path, data::OpenOptions().channels(channels));
  auto set = std::make_shared<data::ImageSet>(std::move(splits.train));
  log_info("data: ", set->description, ": ", set->summary);
  auto augment = aug == "v2" ? data::moco_v2_augment(crop)
                             : data::moco_v1_augment(crop);
  if (set->channels() == 1) augment.mean({0.449}).std({0.226});
  auto opts = data::ThroughputOptions().batch_size(batch).max_images(images);
  auto report = [&](const char* what, const data::ThroughputResult& r) {
    std::printf("%-34s %8.1f images/s  (%lld images in %.2f s%s)\n", what,
                r.images_per_second, static_cast<long long>(r.images),
                r.seconds,
                r.skipped_files
                    ? fmt::format(", {} unreadable skipped", r.skipped_files)
                          .c_str()
                    : "");
    std::fflush(stdout);
  };
  // A warm-up pass fills the page cache, so both numbers measure decoding
  // and augmenting, not the disk.
  data::measure_throughput(set, augment,
                           data::ThroughputOptions(opts).workers(workers));
  const auto one = data::measure_throughput(
      set, augment, data::ThroughputOptions(opts).workers(0).epoch(1));
  report("1 core (on the calling thread):", one);
  const auto all = data::measure_throughput(
      set, augment, data::ThroughputOptions(opts).workers(workers).epoch(2));
  report(fmt::format("{} workers:", workers).c_str(), all);
  if (step_ms > 0) {
    const auto stepped = data::measure_throughput(
        set, augment,
        data::ThroughputOptions(opts).workers(workers).epoch(3).step_seconds(
            step_ms / 1000.0));
    std::printf("with a %.0f ms step per batch of %lld: waiting for data "
                "%.1f%% of the time\n",
                step_ms, static_cast<long long>(batch),
                100.0 * stepped.wait_share);
  }
  return 0;
}

}  // namespace

void apply_preset(const std::string& name, const std::set<std::string>& given,
                  train::PretrainOptions& o) {
  const auto& table = presets();
  auto it = table.find(name);
  TORCH_CHECK(it != table.end(), "expected --preset one of auto, quick, ",
              "cifar, v1, v2, none, got '", name, "'");
  for (const auto& v : it->second) {
    if (!given.count(v.flag)) v.set(o);
  }
}

int run(int argc, char** argv) {
  CLI::App app{
      "moco: Momentum Contrast (MoCo v1/v2) self-supervised pretraining on "
      "LibTorch"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "moco 0.1.0");

  train::PretrainOptions o;
  std::string preset = "auto", blur, knn_init;
  CLI::App* sub = nullptr;
  // Every option shows its default in --help.
  auto add = [&](const std::string& names, auto& value,
                 const std::string& help) {
    return sub->add_option(names, value, help)->capture_default_str();
  };
  sub = app.add_subcommand(
      "pretrain",
      "MoCo pretraining (flags and defaults of the official main_moco.py). "
      "Without DATA: Fashion-MNIST from " +
          std::string(data::kDefaultDataset) + " with the 'quick' preset.");
  add("data,--data", o.data(),
      "dataset: a folder of images (DIR/train/<class>/..., DIR/<class>/..., "
      "or unlabelled, searched recursively; .jpg .jpeg .png), a text file "
      "listing image paths (optional label after each), or IDX "
      "(MNIST/Fashion-MNIST), CIFAR-10/100 or STL-10 binaries");
  add("--preset", preset,
      "defaults for the flags you do not give: quick (~10 min "
      "on 2 cores), cifar (official CIFAR demo), v1, v2 (official "
      "MoCo v2: --mlp --moco-t 0.2 --aug-plus --cos), none; auto "
      "= quick without DATA, none with it");
  add("-a,--arch", o.arch(), "resnet18 | resnet34 | resnet50 | resnet101");
  add("-j,--workers", o.workers(),
      "data loading threads (-1: cores - 1, at least 1)");
  add("--epochs", o.epochs(), "number of total epochs to run");
  add("--start-epoch", o.start_epoch(),
      "manual epoch number (useful on restarts)");
  add("-b,--batch-size", o.batch_size(),
      "mini-batch size: the global batch over all processes, as the official "
      "code on one node (each of N processes takes b/N)");
  add("--lr,--learning-rate", o.lr(), "initial learning rate");
  add("--schedule", o.schedule(),
      "epochs at which to drop lr by 10x (without --cos)")
      ->expected(1, 64);
  add("--momentum", o.momentum(), "SGD momentum");
  add("--wd,--weight-decay", o.wd(), "weight decay");
  add("-p,--print-freq", o.print_freq(), "print frequency (steps)");
  add("--resume", o.resume(), "path to a checkpoint to continue from");
  add("--seed", o.seed(), "seed for initialisation and data");
  add("--moco-dim", o.moco_dim(), "feature dimension");
  add("--moco-k", o.moco_k(), "queue size; number of negative keys");
  add("--moco-m", o.moco_m(), "momentum of updating key encoder");
  add("--moco-t", o.moco_t(), "softmax temperature");
  sub->add_flag("--mlp", o.mlp(), "use mlp head (MoCo v2)");
  sub->add_flag("--aug-plus", o.aug_plus(),
                "use moco v2 data augmentation (jitter p=0.8, blur)");
  sub->add_flag("--cos", o.cos(), "use cosine lr schedule");
  add("--threads", o.threads(), "intra-op threads for the step (0: all cores)");
  add("--bn-splits", o.bn_splits(),
      "BatchNorm splits, simulating multi-GPU BN for shuffle-BN");
  sub->add_flag("--symmetric", o.symmetric(),
                "symmetric loss (both views as query), as the CIFAR demo");
  add("--max-steps", o.max_steps(),
      "stop after N optimizer steps (0: no limit)");
  add("--output", o.output(),
      "folder for checkpoint.pth.tar and metrics.jsonl");
  add("--device", o.device(), "cpu | cuda | cuda:N");
  add("--stem", o.stem(),
      "auto (small for images <= 64 px) | small (3x3 conv1, no "
      "max-pool) | imagenet");
  add("--width", o.width(), "ResNet base width (64 = torchvision's shapes)");
  add("--crop-size", o.crop_size(),
      "RandomResizedCrop size (0: image size if <= 64 px, else "
      "224)");
  sub->add_option("--blur", blur,
                  "with --aug-plus, Gaussian blur p=0.5 (on | off; default "
                  "on, off in the quick and cifar presets)");
  add("--knn-k", o.knn_k(), "kNN monitor: neighbours");
  add("--knn-t", o.knn_t(), "kNN monitor: temperature");
  add("--knn-freq", o.knn_freq(),
      "kNN monitor every N epochs (0: at the end only)");
  add("--knn-bank", o.knn_bank(),
      "kNN monitor: training images in the bank (0: all)");
  add("--knn-test", o.knn_test(), "kNN monitor: test images scored (0: all)");
  sub->add_option("--knn-init", knn_init,
                  "also score the untrained encoder before training (on | "
                  "off; on in the quick preset)");
  sub->add_flag("!--no-progress", o.progress(),
                "plain log lines even on a terminal");
  add("--channels", o.channels(),
      "1 (greyscale) or 3 (RGB) input channels; 0: the data's own (image "
      "files: 3)")
      ->check(CLI::IsMember({0, 1, 3}));
  sub->add_flag("--strict-data", o.strict_data(),
                "an unreadable image file stops the run (default: skip it "
                "with a warning)");
  add("--dist-url", o.dist_url(),
      "rendezvous tcp://HOST:PORT (default: MASTER_ADDR/MASTER_PORT from "
      "torchrun or the environment)");
  add("--dist-backend", o.dist_backend(), "gloo (CPU) | nccl (CUDA)")
      ->check(CLI::IsMember({"gloo", "nccl"}));
  add("--world-size", o.world_size(),
      "number of nodes for distributed training (official meaning; torchrun"
      " and SLURM set everything themselves)");
  add("--rank", o.rank(), "node rank for distributed training");
  sub->add_flag("--multiprocessing-distributed", o.multiprocessing_distributed(),
                "start one process per GPU on this node (per --nproc-per-node "
                "on CPU)");
  add("--nproc-per-node", o.nproc_per_node(),
      "start this many processes here, each a rank (0: run in this process)");
  add("--amp", o.amp(),
      "mixed precision: off | bf16 | fp16 (autocast for the encoders; loss, "
      "softmax, queue and momentum update stay fp32; fp16 needs CUDA and "
      "scales the loss dynamically)")
      ->check(CLI::IsMember({"off", "bf16", "fp16"}));
  sub->add_flag("--channels-last", o.channels_last(),
                "channels-last (NHWC) activations and weights: faster "
                "convolutions with --amp bf16 on CPU and on GPUs");
  sub->add_flag("--sync-bn", o.sync_bn(),
                "BatchNorm statistics over all processes (SyncBN) instead of "
                "shuffle-BN");
  add("--dist-timeout", o.dist_timeout(),
      "seconds a collective may wait for the other ranks before failing");
  CLI::App* pretrain_sub = sub;

  // bench-data: loader throughput, one core and all workers.
  std::string bench_data_path;
  int64_t bench_workers = -1, bench_batch = 64, bench_crop = 224,
          bench_images = 0, bench_channels = 0;
  double bench_step_ms = 0;
  std::string bench_aug = "v2";
  sub = app.add_subcommand(
      "bench-data",
      "measure decode + two-view augmentation throughput (images/s) on one "
      "core and with all workers, and the data wait of a simulated step");
  sub->add_option("data", bench_data_path, "dataset, as for pretrain")
      ->required();
  add("-j,--workers", bench_workers, "loader threads (-1: all cores)");
  add("-b,--batch-size", bench_batch, "batch size");
  add("--crop-size", bench_crop, "RandomResizedCrop size");
  add("--aug", bench_aug, "v1 | v2 (official --aug-plus, with blur)")
      ->check(CLI::IsMember({"v1", "v2"}));
  add("--images", bench_images, "images per measurement (0: all)");
  add("--channels", bench_channels, "1 | 3 (0: the data's own)")
      ->check(CLI::IsMember({0, 1, 3}));
  add("--step-ms", bench_step_ms,
      "also run with a simulated training step of this many ms per batch "
      "and report the share of time spent waiting for data (0: skip)");
  CLI::App* bench_sub = sub;

  // lincls: main_lincls.py's flags and defaults.
  train::LinclsOptions lo;
  sub = app.add_subcommand(
      "lincls",
      "linear classification protocol (flags and defaults of the official "
      "main_lincls.py): frozen backbone in eval mode, a new fc trained by SGD");
  add("data,--data", lo.data(), "labelled dataset with a test split, as for "
      "pretrain");
  add("--pretrained", lo.pretrained(),
      "pretraining checkpoint (ours, the official releases', or a "
      "torchvision state dict)");
  add("-a,--arch", lo.arch(), "check the checkpoint holds this architecture "
      "(default: whatever it holds)");
  add("-j,--workers", lo.workers(), "data loading threads (-1: cores - 1)");
  add("--epochs", lo.epochs(), "number of total epochs to run");
  add("--start-epoch", lo.start_epoch(), "manual epoch number");
  add("-b,--batch-size", lo.batch_size(), "mini-batch size");
  add("--lr,--learning-rate", lo.lr(), "initial learning rate");
  add("--schedule", lo.schedule(), "epochs at which to drop lr by 10x")
      ->expected(1, 64);
  add("--momentum", lo.momentum(), "SGD momentum");
  add("--wd,--weight-decay", lo.wd(), "weight decay");
  add("-p,--print-freq", lo.print_freq(), "print frequency (steps)");
  add("--resume", lo.resume(), "a lincls checkpoint to continue (or, with -e, "
      "to evaluate)");
  sub->add_flag("-e,--evaluate", lo.evaluate(),
                "evaluate the model on the test split and stop");
  add("--seed", lo.seed(), "seed");
  sub->add_flag("--cos", lo.cos(), "cosine lr schedule instead of --schedule");
  add("--threads", lo.threads(), "intra-op threads (0: all cores)");
  add("--output", lo.output(), "folder for checkpoint.pth.tar, "
      "model_best.pth.tar and metrics.jsonl");
  add("--device", lo.device(), "cpu | cuda | cuda:N");
  add("--channels", lo.channels(), "1 | 3 (0: the data's own)")
      ->check(CLI::IsMember({0, 1, 3}));
  add("--max-steps", lo.max_steps(), "steps per epoch at most (0: all)");
  sub->add_flag("!--no-progress", lo.progress(), "plain log lines");
  CLI::App* lincls_sub = sub;

  train::KnnOptions ko;
  sub = app.add_subcommand(
      "knn", "weighted kNN classification (cosine, k 200, t 0.1, as the "
             "official CIFAR demo) on backbone features of the train and "
             "test splits");
  add("data,--data", ko.data(), "labelled dataset with a test split");
  add("--pretrained", ko.pretrained(), "checkpoint or state dict")->required();
  add("--knn-k", ko.knn_k(), "neighbours");
  add("--knn-t", ko.knn_t(), "temperature");
  add("-b,--batch-size", ko.batch_size(), "images per forward pass");
  add("--knn-bank", ko.knn_bank(), "training images in the bank (0: all)");
  add("--knn-test", ko.knn_test(), "test images scored (0: all)");
  add("--threads", ko.threads(), "intra-op threads (0: all cores)");
  add("--device", ko.device(), "cpu | cuda | cuda:N");
  add("--channels", ko.channels(), "1 | 3 (0: the data's own)")
      ->check(CLI::IsMember({0, 1, 3}));
  CLI::App* knn_sub = sub;

  train::EmbedOptions eo;
  sub = app.add_subcommand(
      "embed", "write backbone (or head) features of a dataset as a NumPy "
               ".npy file (N x D float32), plus OUT.txt listing each row's "
               "image and label");
  add("data,--data", eo.data(), "dataset")->required();
  add("--pretrained", eo.pretrained(), "checkpoint or state dict")->required();
  add("-o,--output", eo.output(), "the .npy file to write");
  add("--split", eo.split(), "train | test")
      ->check(CLI::IsMember({"train", "test"}));
  sub->add_flag("--head", eo.head(),
                "the projection head's output instead of the backbone's");
  add("-b,--batch-size", eo.batch_size(), "images per forward pass");
  add("--threads", eo.threads(), "intra-op threads (0: all cores)");
  add("--device", eo.device(), "cpu | cuda | cuda:N");
  add("--channels", eo.channels(), "1 | 3 (0: the data's own)")
      ->check(CLI::IsMember({0, 1, 3}));
  CLI::App* embed_sub = sub;

  std::string export_ckpt, export_format = "torchvision", export_out;
  sub = app.add_subcommand(
      "export", "write the query backbone of a checkpoint as a torchvision "
                "state dict (torch.save format; load_state_dict(sd, "
                "strict=False) misses only fc.*) or as safetensors");
  sub->add_option("checkpoint", export_ckpt, "checkpoint or state dict")
      ->required();
  sub->add_option("output", export_out, "file to write")->required();
  add("--format", export_format, "torchvision | safetensors")
      ->check(CLI::IsMember({"torchvision", "safetensors"}));
  CLI::App* export_sub = sub;

  std::string report_dir;
  sub = app.add_subcommand(
      "report", "turn a run's metrics.jsonl into report.html (self-contained,"
                " SVG charts) and report.svg in the run's folder");
  sub->add_option("run", report_dir, "the --output folder of a run")
      ->required();
  CLI::App* report_sub = sub;

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    if (pretrain_sub->parsed()) {
      return pretrain_main(*pretrain_sub, o, preset, blur, knn_init, argc,
                           argv);
    }
    if (lincls_sub->parsed()) {
      train::run_lincls(lo);
      return 0;
    }
    if (knn_sub->parsed()) {
      const auto r = train::run_knn_command(ko);
      std::printf("knn top-1 %.2f%% top-5 %.2f%% (bank %lld, test %lld)\n",
                  r.top1, r.top5, static_cast<long long>(r.bank),
                  static_cast<long long>(r.test));
      return 0;
    }
    if (embed_sub->parsed()) {
      train::run_embed(eo);
      return 0;
    }
    if (export_sub->parsed()) {
      train::export_backbone(export_ckpt, export_format, export_out);
      log_info("wrote ", export_out, " (", export_format, ")");
      return 0;
    }
    if (report_sub->parsed()) {
      const auto r = io::write_report(report_dir);
      std::printf("%s\n%s\n", r.html.c_str(), r.svg.c_str());
      return 0;
    }
    if (bench_sub->parsed()) {
      return bench_data_main(bench_data_path, bench_workers, bench_batch,
                             bench_crop, bench_aug, bench_images,
                             bench_channels, bench_step_ms);
    }
  } catch (const c10::Error& e) {
    std::fprintf(stderr, "moco: error: %s\n", e.what_without_backtrace());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "moco: error: %s\n", e.what());
    return 1;
  }
  return 0;
}

}  // namespace moco::cli
