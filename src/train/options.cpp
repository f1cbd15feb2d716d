#include "train/options.h"

#include <c10/util/Exception.h>

#include <algorithm>
#include <map>
#include <string>
#include <thread>

#include "train/commands.h"

namespace moco::train {

namespace {

using args::Style;

// More threads than this only adds switching (and each costs a stack):
// --threads 100000 once made thousands of them and tens of GB of address
// space. Four per core leaves room for I/O-bound loading.
double thread_cap() {
  return 4.0 * std::max(1u, std::thread::hardware_concurrency());
}
std::string thread_cap_why() {
  return "4 per core; this machine has " +
         std::to_string(std::max(1u, std::thread::hardware_concurrency())) +
         " cores";
}

// The member `member` of O's options, or an internal error naming the flag
// when a command listed for it has no such member.
template <class O, class Member>
void bind_one(Arg& a, Member member) {
  if constexpr (std::is_invocable_v<Member, O&>) {
    a.fields[typeid(O)] = std::make_shared<const args::Field<O>>(args::field<O>(member));
  } else {
    TORCH_INTERNAL_ASSERT(false, a.names, " is listed for a command whose ",
                          "options have no such member");
  }
}

// One table entry: names, the member it sets, the commands that take it
// (each a row of commands()).
template <class Member>
Arg arg(std::string names, Member member, std::vector<std::string> takers,
        std::string help) {
  Arg a;
  a.names = std::move(names);
  a.help = std::move(help);
  a.commands = std::move(takers);
  size_t bound = 0;
  std::apply(
      [&](const auto&... row) {
        auto one = [&](const auto& r) {
          using O = typename std::decay_t<decltype(r)>::Options;
          if (std::find(a.commands.begin(), a.commands.end(), r.name) == a.commands.end()) {
            return;
          }
          bind_one<O>(a, member);
          ++bound;
        };
        (one(row), ...);
      },
      commands());
  if (std::find(a.commands.begin(), a.commands.end(), kEveryCommand) != a.commands.end()) {
    bind_one<GlobalOptions>(a, member);
    ++bound;
  }
  TORCH_INTERNAL_ASSERT(bound == a.commands.size(), a.names,
                        " lists a command that is not in commands()");
  return a;
}

// Common command groups.
const std::vector<std::string> kEvalCommands = {"pretrain", "lincls", "finetune", "knn",
                                                "embed"};
const std::vector<std::string> kTrainCommands = {"pretrain", "lincls", "finetune"};
const std::vector<std::string> kClassifierCommands = {"lincls", "finetune"};

// Long by design: the table is one declaration per flag, read top to
// bottom; splitting it would scatter what it exists to keep in one place.
std::vector<Arg> make_table() {
  using namespace args;
  std::vector<Arg> t;
  auto add = [&t](Arg a) { t.push_back(std::move(a)); };

  // ---- Data and the machine (several commands) ----------------------------
  add(arg("data,--data", MOCO_MEMBER(data),
          {"pretrain", "lincls", "finetune", "knn", "embed", "bench-data",
           "preview-aug", "shard"},
          "dataset: a folder of images (DIR/train/<class>/..., DIR/<class>/..., "
          "or unlabelled, searched recursively; .jpg .jpeg .png), a text file "
          "listing image paths (optional label after each), IDX "
          "(MNIST/Fashion-MNIST), CIFAR-10/100 or STL-10 binaries, or tar "
          "shards (pretrain, bench-data: 'train-{000000..000146}.tar', a "
          "folder of .tar files, or a text file listing them)")
          .required_for({"lincls", "finetune", "knn", "embed", "bench-data",
                         "preview-aug", "shard"}));
  add(arg("out", MOCO_MEMBER(output), {"shard"},
          "folder for the shards (created; shards already there are not "
          "overwritten)")
          .required_for({"shard"}));
  add(arg("--shard-size", MOCO_MEMBER(shard_size), {"shard"},
          "samples a shard (10000), or bytes with a unit (256MB, 1GB)"));
  add(arg("-j,--workers", MOCO_MEMBER(workers),
          {"pretrain", "lincls", "finetune", "knn", "embed", "bench-data"},
          "data loading threads (-1: one per core beyond the first, at least "
          "1; bench-data: all cores; knn, embed: decoding ahead of the network)")
          .check({at_least(-1), at_most(thread_cap(), thread_cap_why())})
          .persist_as(Persist::record));
  add(arg("--threads", MOCO_MEMBER(threads),
          {"pretrain", "lincls", "finetune", "knn", "embed", "sweep"},
          "intra-op threads for the network (0: all cores, or this process's "
          "share of them; sweep: the cores its points share)")
          .check({non_negative(), at_most(thread_cap(), thread_cap_why())})
          .persist_as(Persist::record));
  add(arg("--device", MOCO_MEMBER(device), kEvalCommands, "cpu | cuda | cuda:N")
          .persist_as(Persist::record));
  add(arg("--channels", MOCO_MEMBER(channels),
          {"pretrain", "lincls", "finetune", "knn", "embed", "bench-data",
           "preview-aug", "shard"},
          "1 (greyscale) or 3 (RGB) input channels; 0: the data's own (image "
          "files: 3)")
          .check({one_of({"0", "1", "3"})}));
  add(arg("--max-image-pixels", MOCO_MEMBER(max_image_pixels),
          {"pretrain", "lincls", "finetune", "knn", "embed", "bench-data",
           "preview-aug", "shard"},
          "image files with more pixels are skipped as unreadable (PIL's "
          "decompression-bomb limit; 0: no limit)")
          .check({non_negative()}));
  add(arg("-b,--batch-size", MOCO_MEMBER(batch_size),
          {"pretrain", "lincls", "finetune", "knn", "embed", "bench-data"},
          "mini-batch size (pretrain: the global batch over all processes, as "
          "the official code on one node, each of N processes taking b/N; "
          "knn, embed: images per forward pass)")
          .check({positive()}));
  add(arg("-o,--output", MOCO_MEMBER(output),
          {"pretrain", "lincls", "finetune", "embed", "sweep", "preview-aug"},
          "where results go: the run's folder (pretrain, lincls, finetune: checkpoints "
          "and metrics.jsonl; sweep: a sub-folder per point and the sweep's "
          "tables and charts), or the .npy file (embed), the .png (preview-aug)")
          .persist_as(Persist::record));
  add(arg("--seed", MOCO_MEMBER(seed),
          {"pretrain", "lincls", "finetune", "knn", "preview-aug"},
          "seed for initialisation and data (knn: for --val-split)"));
  add(arg("--no-progress", MOCO_MEMBER(progress), kTrainCommands,
          "plain log lines even on a terminal (default: a progress bar there)")
          .style_as(Style::negated)
          .persist_as(Persist::record));
  add(arg("--pretrained", MOCO_MEMBER(pretrained),
          {"lincls", "finetune", "knn", "embed"},
          "pretraining checkpoint (ours, the official releases', a "
          "main_lincls.py checkpoint or a torchvision state dict; finetune: "
          "'none' for random initialisation, supervised from scratch)")
          .required_for({"knn", "embed"}));

  // ---- Optimisation (main_moco.py / main_lincls.py) -------------------------
  add(arg("-a,--arch", MOCO_MEMBER(arch), kTrainCommands,
          "resnet18 | resnet34 | resnet50 | resnet101 (lincls, finetune: check "
          "the checkpoint holds it; default: whatever it holds; needed with "
          "--pretrained none)"));
  add(arg("--epochs", MOCO_MEMBER(epochs), kTrainCommands,
          "number of total epochs to run")
          .check({positive()}));
  add(arg("--start-epoch", MOCO_MEMBER(start_epoch), kTrainCommands,
          "manual epoch number (useful on restarts)")
          .check({non_negative()})
          .persist_as(Persist::record));
  add(arg("--lr,--learning-rate", MOCO_MEMBER(lr), kTrainCommands,
          "initial learning rate")
          .check({positive()}));
  add(arg("--schedule", MOCO_MEMBER(schedule), kTrainCommands,
          "epochs at which to drop lr by 10x (without --cos; finetune: "
          "--cos=false)")
          .check({each_non_negative("epochs")}));
  add(arg("--momentum", MOCO_MEMBER(momentum), kTrainCommands, "SGD momentum")
          .check({in_range(0, 1, true)}));
  add(arg("--wd,--weight-decay", MOCO_MEMBER(wd), kTrainCommands,
          "weight decay")
          .check({non_negative()}));
  add(arg("-p,--print-freq", MOCO_MEMBER(print_freq), kTrainCommands,
          "print frequency (steps)")
          .check({positive()})
          .persist_as(Persist::record));
  add(arg("--resume", MOCO_MEMBER(resume), kTrainCommands,
          "checkpoint to continue from (pretrain: the run's saved flags and "
          "folder; a flag given again with another value is refused unless "
          "it may change (--epochs, the kNN monitor's) or with --override; "
          "lincls, finetune: the "
          "run's checkpoint, with -o its folder; with -e, the classifier to "
          "evaluate)")
          .persist_as(Persist::record));
  add(arg("--cos", MOCO_MEMBER(cos), kTrainCommands,
          "use cosine lr schedule (finetune: on unless --cos=false)")
          .style_as(Style::flag));
  add(arg("--max-steps", MOCO_MEMBER(max_steps), kTrainCommands,
          "stop after N optimizer steps (lincls, finetune: per epoch; 0: no "
          "limit)")
          .check({non_negative()})
          .persist_as(Persist::record));

  // ---- MoCo (main_moco.py) ----------------------------------------------------
  add(arg("--preset", MOCO_MEMBER(preset), {"pretrain"},
          "defaults for the flags you do not give: quick (the README's run), "
          "cifar (official CIFAR demo), v1, v2 (official MoCo v2: --mlp "
          "--moco-t 0.2 --aug-plus --cos), none; auto = quick without DATA, "
          "none with it")
          .check({one_of({"auto", "quick", "cifar", "v1", "v2", "none"})})
          .persist_as(Persist::record));
  add(arg("--moco-dim", MOCO_MEMBER(moco_dim), {"pretrain"}, "feature dimension")
          .check({positive()}));
  add(arg("--moco-k", MOCO_MEMBER(moco_k), {"pretrain"},
          "queue size; number of negative keys")
          .check({positive()}));
  add(arg("--moco-m", MOCO_MEMBER(moco_m), {"pretrain"},
          "momentum of updating key encoder")
          .check({in_range(0, 1, true)}));
  add(arg("--moco-t", MOCO_MEMBER(moco_t), {"pretrain"}, "softmax temperature")
          .check({positive()}));
  add(arg("--mechanism", MOCO_MEMBER(mechanism), {"pretrain"},
          "where the negatives come from (MoCo's Fig. 3): moco (a momentum "
          "encoder's queue of --moco-k keys) | end-to-end (one encoder, the "
          "gradient through both views, the batch's other keys as negatives) | "
          "memory-bank (Wu et al.: a stored feature per training image, "
          "--moco-k drawn as negatives, entries updated by --bank-momentum)")
          .check({one_of({"moco", "end-to-end", "memory-bank"})}));
  add(arg("--bank-momentum", MOCO_MEMBER(bank_momentum), {"pretrain"},
          "memory bank: each entry becomes m_b old + (1 - m_b) q, re-normalised")
          .check({in_range(0, 1, true)}));
  add(arg("--mlp", MOCO_MEMBER(mlp), {"pretrain"}, "use mlp head (MoCo v2)")
          .style_as(Style::flag));
  add(arg("--log-format", MOCO_MEMBER(log_format), {kEveryCommand},
          "json writes each log line as one JSON object (time, level, rank, "
          "message) and no progress bar; anywhere before a sweep's --, and "
          "inherited by the ranks and the sweep's runs")
          .check({one_of({"text", "json"})})
          .persist_as(Persist::none));
  add(arg("--aug-plus", MOCO_MEMBER(aug_plus), {"pretrain", "bench-data", "preview-aug"},
          "use moco v2 data augmentation (jitter p=0.8, blur; bench-data and "
          "preview-aug: on unless --aug-plus=false)")
          .style_as(Style::flag));
  add(arg("--blur", MOCO_MEMBER(blur), {"pretrain"},
          "with --aug-plus, Gaussian blur p=0.5 (on | off; off in the quick "
          "and cifar presets)")
          .style_as(Style::on_off));
  add(arg("--bn-splits", MOCO_MEMBER(bn_splits), {"pretrain"},
          "BatchNorm splits, simulating multi-GPU BN for shuffle-BN")
          .check({positive()}));
  add(arg("--shuffle-bn", MOCO_MEMBER(shuffle_bn), {"pretrain"},
          "shuffle the key batch across the BN splits before f_k (on | off; "
          "off keeps split-BN without the shuffle, to ablate it)")
          .style_as(Style::on_off));
  add(arg("--symmetric", MOCO_MEMBER(symmetric), {"pretrain"},
          "symmetric loss (both views as query), as the CIFAR demo")
          .style_as(Style::flag));
  add(arg("--stem", MOCO_MEMBER(stem), {"pretrain", "finetune"},
          "auto (small when the crop is <= 64 px: images that small, or a "
          "--crop-size that small) | small (3x3 conv1, no max-pool) | imagenet")
          .check({one_of({"auto", "small", "imagenet"})}));
  add(arg("--width", MOCO_MEMBER(width), {"pretrain", "finetune"},
          "ResNet base width (64 = torchvision's shapes; finetune: with "
          "--pretrained none)")
          .check({positive()}));
  add(arg("--crop-size", MOCO_MEMBER(crop_size),
          {"pretrain", "finetune", "bench-data", "preview-aug", "knn", "lincls", "embed"},
          "RandomResizedCrop size (pretrain: 0 = the image size if <= 64 px, "
          "else 224); knn, lincls, embed, finetune: the evaluation crop of "
          "image files, after a resize to 256/224 of it (0 = the crop the "
          "checkpoint was trained at, else as pretrain chooses)")
          .check({non_negative()}));
  add(arg("--strict-data", MOCO_MEMBER(strict_data), {"pretrain"},
          "an unreadable image file (or tar member, or truncated shard) stops "
          "the run (default: skip it with a warning)")
          .style_as(Style::flag));
  add(arg("--shuffle-buffer", MOCO_MEMBER(shuffle_buffer), {"pretrain", "bench-data"},
          "tar shards: samples each loader worker holds and draws from at "
          "random (1: shard order only)")
          .check({positive()}));
  add(arg("--amp", MOCO_MEMBER(amp), {"pretrain", "finetune"},
          "mixed precision: off | bf16 | fp16 | auto (autocast for the "
          "encoders; loss, softmax, queue and momentum update stay fp32; fp16 "
          "needs CUDA and scales the loss; auto: bf16 on a CPU that computes "
          "bf16 natively (AVX512-BF16 or AMX), else off)")
          .check({one_of({"off", "bf16", "fp16", "auto"})}));
  add(arg("--save-freq", MOCO_MEMBER(save_freq), {"pretrain"},
          "also write the checkpoint every N steps, mid-epoch (0: at epoch "
          "ends only); --resume continues from the step it holds")
          .check({non_negative()})
          .persist_as(Persist::record));
  add(arg("--tensorboard", MOCO_MEMBER(tensorboard), kTrainCommands,
          "also write the metrics as TensorBoard event files in --output "
          "(tensorboard --logdir OUTPUT)")
          .style_as(Style::flag)
          .persist_as(Persist::record));
  add(arg("--override", MOCO_MEMBER(override_flags), {"pretrain"},
          "with --resume: accept flags whose value differs from the run's "
          "(besides --epochs and the kNN monitor's, which may always change)")
          .style_as(Style::flag)
          .persist_as(Persist::none));
  add(arg("--channels-last", MOCO_MEMBER(channels_last), {"pretrain"},
          "channels-last (NHWC) activations and weights (for GPUs; measure "
          "before using it on a CPU)")
          .style_as(Style::flag)
          .persist_as(Persist::record));

  // ---- kNN monitor / command --------------------------------------------------
  add(arg("--knn-k", MOCO_MEMBER(knn_k), {"pretrain", "knn"}, "kNN: neighbours")
          .check({positive()}));
  add(arg("--knn-t", MOCO_MEMBER(knn_t), {"pretrain", "knn"}, "kNN: temperature")
          .check({positive()}));
  add(arg("--knn-freq", MOCO_MEMBER(knn_freq), {"pretrain"},
          "kNN monitor every N epochs (0: at the end only)")
          .check({non_negative()}));
  add(arg("--knn-bank", MOCO_MEMBER(knn_bank), {"pretrain", "knn"},
          "kNN: training images in the bank, evenly spaced (0: all)")
          .check({non_negative()}));
  add(arg("--knn-test", MOCO_MEMBER(knn_test), {"pretrain", "knn"},
          "kNN: test images scored, evenly spaced (0: all)")
          .check({non_negative()}));
  add(arg("--knn-init", MOCO_MEMBER(knn_init), {"pretrain"},
          "also score the untrained encoder before training (on | off)")
          .style_as(Style::on_off));
  add(arg("--knn-pixels", MOCO_MEMBER(knn_pixels), {"pretrain"},
          "also score raw pixels with the same bank and test images, for "
          "reference on the last line (on | off)")
          .style_as(Style::on_off));

  // ---- Distributed (official names) ---------------------------------------------
  add(arg("--dist-url", MOCO_MEMBER(dist_url), {"pretrain"},
          "rendezvous tcp://HOST:PORT (default: MASTER_ADDR/MASTER_PORT from "
          "torchrun or the environment)")
          .persist_as(Persist::record));
  add(arg("--dist-backend", MOCO_MEMBER(dist_backend), {"pretrain"},
          "gloo (CPU) | nccl (CUDA)")
          .check({one_of({"gloo", "nccl"})})
          .persist_as(Persist::record));
  add(arg("--world-size", MOCO_MEMBER(world_size), {"pretrain"},
          "number of nodes for distributed training (official meaning; "
          "torchrun and SLURM set everything themselves)")
          .check({at_least(-1)})
          .persist_as(Persist::record));
  add(arg("--rank", MOCO_MEMBER(rank), {"pretrain"},
          "node rank for distributed training")
          .check({at_least(-1)})
          .persist_as(Persist::record));
  add(arg("--multiprocessing-distributed",
          MOCO_MEMBER(multiprocessing_distributed), {"pretrain"},
          "start one process per GPU on this node (per --nproc-per-node on "
          "CPU)")
          .style_as(Style::flag)
          .persist_as(Persist::record));
  add(arg("--nproc-per-node", MOCO_MEMBER(nproc_per_node), {"pretrain"},
          "start this many processes here, each a rank (0: run in this "
          "process)")
          .check({non_negative()})
          .persist_as(Persist::record));
  add(arg("--dist-timeout", MOCO_MEMBER(dist_timeout), {"pretrain"},
          "seconds a collective may wait for the other ranks before failing")
          .check({positive()})
          .persist_as(Persist::record));
  add(arg("--sync-bn", MOCO_MEMBER(sync_bn), {"pretrain"},
          "BatchNorm statistics over all processes (SyncBN) instead of "
          "shuffle-BN")
          .style_as(Style::flag));

  // ---- lincls ---------------------------------------------------------------------
  add(arg("-e,--evaluate", MOCO_MEMBER(evaluate), kClassifierCommands,
          "evaluate the model on the test split and stop")
          .style_as(Style::flag));
  add(arg("--val-split", MOCO_MEMBER(val_split), {"pretrain", "lincls", "finetune", "knn"},
          "hold out this fraction of the labelled training images (stratified, "
          "seeded by --seed) as the test split, for data without one (pretrain: "
          "never trained on, the kNN monitor's test; held out as knn's default "
          "--seed 0 holds it out, whatever --seed)")
          .check({in_range(0, 1, true)}));

  // ---- finetune ---------------------------------------------------------------------
  add(arg("--lr-head", MOCO_MEMBER(lr_head), {"finetune"},
          "learning rate of the new classifier (0: 10x --lr)")
          .check({non_negative()}));
  add(arg("--freeze-bn", MOCO_MEMBER(freeze_bn), {"finetune"},
          "keep the pretrained BatchNorm statistics (BN layers in eval mode; "
          "their scale and shift are still trained)")
          .style_as(Style::flag));
  add(arg("--label-fraction", MOCO_MEMBER(label_fraction), {"finetune"},
          "train on this fraction of each class's labelled images (stratified, "
          "seeded by --seed; the list is written to OUTPUT/labels.txt)")
          .check({positive(), in_range(0, 1, false)}));
  add(arg("--labels-per-class", MOCO_MEMBER(labels_per_class), {"finetune"},
          "train on this many labelled images of each class instead (0: "
          "--label-fraction decides)")
          .check({non_negative()}));
  add(arg("--label-subset", MOCO_MEMBER(label_subset), {"finetune"},
          "the labelled images to train on, as another run's labels.txt"));

  // ---- embed ----------------------------------------------------------------------
  add(arg("--split", MOCO_MEMBER(split), {"embed", "shard"}, "train | test")
          .check({one_of({"train", "test"})}));
  add(arg("--head", MOCO_MEMBER(head), {"embed"},
          "the projection head's output instead of the backbone's")
          .style_as(Style::flag));

  // ---- export, report ---------------------------------------------------------------
  add(arg("checkpoint", MOCO_MEMBER(checkpoint), {"export", "inspect"},
          "checkpoint or state dict")
          .required_for({"export", "inspect"}));
  add(arg("output", MOCO_MEMBER(file), {"export"}, "file to write")
          .required_for({"export"}));
  add(arg("--format", MOCO_MEMBER(format), {"export"},
          "torchvision | detectron2 | safetensors (default: from OUTPUT's "
          "extension: .pth/.pt, .pkl, .safetensors)")
          .check({one_of({"", "torchvision", "detectron2", "safetensors"})}));
  add(arg("--force", MOCO_MEMBER(force), {"export"}, "replace an existing OUTPUT")
          .style_as(Style::flag));
  add(arg("run", MOCO_MEMBER(run), {"report"}, "the --output folder of a run")
          .required_for({"report"}));

  // ---- bench-data -------------------------------------------------------------------
  add(arg("--images", MOCO_MEMBER(images), {"bench-data", "preview-aug"},
          "images per measurement (0: all; preview-aug: images in the grid)")
          .check({non_negative()}));
  add(arg("--step-ms", MOCO_MEMBER(step_ms), {"bench-data"},
          "also run with a simulated training step of this many ms per batch "
          "and report the share of time spent waiting for data (0: skip)")
          .check({non_negative()}));

  // ---- sweep --------------------------------------------------------------------------
  add(arg("--set", MOCO_MEMBER(set), {"sweep"},
          "FLAG=V1,V2,...: one pretraining per value (repeat --set for the "
          "product of several flags), e.g. --set moco-m=0,0.9,0.99"));
  add(arg("--point", MOCO_MEMBER(point), {"sweep"},
          "NAME=FLAGS: a named point with its own pretrain flags, e.g. "
          "--point v1= --point 'v2=--mlp --aug-plus --cos --moco-t 0.2' "
          "(repeat; with --set, every point runs every value)"));
  add(arg("--seeds", MOCO_MEMBER(seeds), {"sweep"},
          "seeds, each point run once per seed (comma- or space-separated)")
          .check({each_non_negative("seeds")}));
  add(arg("--parallel", MOCO_MEMBER(parallel), {"sweep"},
          "points run at once, splitting the cores between them")
          .check({positive()}));
  return t;
}

struct Preset {
  const char* name;
  const char* base;  // applied first; "" for none
  std::vector<std::pair<const char*, const char*>> values;  // key, text
};

// Each preset lists only what it changes from its base.
const std::vector<Preset>& presets() {
  static const std::vector<Preset> table = {
      // The official CIFAR-10 demo (moco/colab): ResNet-18, 200 epochs.
      {"cifar", "",
       {{"arch", "resnet18"}, {"epochs", "200"}, {"batch_size", "512"},
        {"lr", "0.06"}, {"cos", "true"}, {"wd", "5e-4"}, {"moco_k", "4096"},
        {"moco_m", "0.99"}, {"moco_t", "0.1"}, {"aug_plus", "true"},
        {"blur", "off"}}},
      // The README's default (moco pretrain without DATA): the CIFAR demo's
      // recipe at a quarter of ResNet-18's width, with MoCo v2's MLP head,
      // for 6 epochs in bf16 where the CPU has it: minutes on 2 cores, and
      // above kNN on raw pixels (docs/results.md: how it was chosen).
      {"quick", "cifar",
       {{"width", "16"}, {"epochs", "6"}, {"batch_size", "128"}, {"mlp", "true"},
        {"amp", "auto"}, {"knn_bank", "10000"}, {"knn_test", "10000"},
        {"knn_init", "on"}, {"knn_pixels", "on"}, {"knn_freq", "0"}}},
      // main_moco.py as it is: MoCo v1.
      {"v1", "", {}},
      // MoCo v2: --mlp --moco-t 0.2 --aug-plus --cos.
      {"v2", "",
       {{"mlp", "true"}, {"moco_t", "0.2"}, {"aug_plus", "true"}, {"cos", "true"}}},
      {"none", "", {}},
  };
  return table;
}

}  // namespace

const std::vector<Arg>& arg_table() {
  static const std::vector<Arg> table = make_table();
  return table;
}

std::vector<std::string> flag_words(const Arg& a, const args::Value& v) {
  if (a.style == args::Style::flag) {
    return {std::get<bool>(v) ? a.flag() : a.flag() + "=false"};
  }
  if (a.style == args::Style::negated) {
    return {a.flag() + (std::get<bool>(v) ? "=false" : "")};
  }
  const std::string flag = a.positional() ? "--" + a.key() : a.flag();
  if (const auto* list = std::get_if<std::vector<std::string>>(&v)) {
    // --set A --set B: one word after each.
    std::vector<std::string> words;
    for (const auto& x : *list) words.insert(words.end(), {flag, x});
    return words;
  }
  std::vector<std::string> words = {flag};
  if (const auto* list = std::get_if<std::vector<int64_t>>(&v)) {
    for (int64_t x : *list) words.push_back(std::to_string(x));
  } else {
    words.push_back(args::to_string(v, a.style));
  }
  return words;
}

const Arg* find_arg(const std::string& command, const std::string& key_or_flag) {
  const std::string key = args::key_of(
      key_or_flag.rfind("-", 0) == 0 ? key_or_flag : "--" + key_or_flag);
  for (const Arg& a : arg_table()) {
    if (a.key() != key) continue;
    if (std::find(a.commands.begin(), a.commands.end(), command) != a.commands.end()) {
      return &a;
    }
  }
  return nullptr;
}

std::string resolve_preset(const std::string& name, bool data_given) {
  if (name == "auto") return data_given ? "none" : "quick";
  return name;
}

void apply_preset(const std::string& name, const std::set<std::string>& given,
                  PretrainOptions& o) {
  const Preset* p = nullptr;
  for (const auto& q : presets()) {
    if (name == q.name) p = &q;
  }
  TORCH_CHECK(p != nullptr, "expected --preset one of auto, quick, cifar, v1, ",
              "v2, none, got '", name, "'");
  if (*p->base) apply_preset(p->base, given, o);
  for (const auto& [key, text] : p->values) {
    if (given.count(key)) continue;
    const Arg* a = find_arg("pretrain", key);
    TORCH_INTERNAL_ASSERT(a, "preset ", name, " sets unknown flag ", key);
    set_flag(o, *a, text);
  }
}

bool may_change_on_resume(const std::string& key) {
  static const std::set<std::string> keys = {
      "epochs",   "knn_k",    "knn_t",      "knn_freq",         "knn_bank",
      "knn_test", "knn_init", "knn_pixels", "max_image_pixels", "strict_data"};
  return keys.count(key) > 0;
}

std::vector<ResumeChange> restore_options(const nlohmann::json& saved,
                                          const std::set<std::string>& given,
                                          PretrainOptions& o) {
  std::vector<ResumeChange> changed;
  for (const Arg& a : arg_table()) {
    const auto& f = a.field<PretrainOptions>();
    if (!f || a.persist != Persist::restore || !saved.contains(a.key())) continue;
    const args::Value was = args::from_json(saved[a.key()], f->get(o), a.flag());
    // Saved values pass the same checks as typed ones: a checkpoint may be
    // damaged or edited.
    args::check(was, a.checks, a.flag());
    if (!given.count(a.key())) {
      f->set(o, was);
    } else if (was != f->get(o)) {
      changed.push_back({a.key(),
                         a.flag() + " (" + args::to_string(was, a.style) +
                             " -> " + args::to_string(f->get(o), a.style) + ")",
                         may_change_on_resume(a.key())});
    }
  }
  return changed;
}

nlohmann::json options_shared_by_ranks(const PretrainOptions& o) {
  nlohmann::json j = nlohmann::json::object();
  for (const Arg& a : arg_table()) {
    const auto& f = a.field<PretrainOptions>();
    if (f && a.persist == Persist::restore) j[a.key()] = args::to_json(f->get(o));
  }
  return j;
}

}  // namespace moco::train
