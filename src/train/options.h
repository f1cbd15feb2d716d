// Every command's options, and the one table that declares each flag: its
// names, the member it sets in each command's options, help, checks, and
// whether a pretraining checkpoint saves it and --resume restores it. The
// command line (cli/commands.cpp), --help, the presets, the checkpoint's
// `moco_options` and --resume are all built from arg_table(); a flag's
// default is its member's initialiser below, in one place.
//
//   PretrainOptions o;
//   std::set<std::string> given = {"lr"};          // keys the user gave
//   apply_preset("quick", given, o);               // fills the others
//   nlohmann::json saved = options_to_json(o);     // what a checkpoint keeps
//   validate_flags(o);                             // per-flag checks
#pragma once

#include <torch/arg.h>

#include <nlohmann/json.hpp>

#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <typeindex>
#include <vector>

#include "core/args.h"
#include "data/dataset.h"
#include "train/knn.h"

namespace moco::train {

struct PretrainOptions {
  // Official main_moco.py flags, with its defaults.
  TORCH_ARG(std::string, data) = data::kDefaultDataset;
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
  // MoCo's paper's comparison (its Fig. 3): moco | end-to-end | memory-bank.
  TORCH_ARG(std::string, mechanism) = "moco";
  TORCH_ARG(double, bank_momentum) = 0.5;  // memory bank: m_b of its update
  TORCH_ARG(bool, aug_plus) = false;
  TORCH_ARG(bool, cos) = false;
  // Ours.
  TORCH_ARG(std::string, preset) = "auto";
  TORCH_ARG(int64_t, threads) = 0;  // 0: all cores
  TORCH_ARG(int64_t, bn_splits) = 8;
  TORCH_ARG(bool, shuffle_bn) = true;     // permute the key batch before f_k
  TORCH_ARG(bool, symmetric) = false;
  TORCH_ARG(int64_t, max_steps) = 0;  // 0: no limit
  TORCH_ARG(std::string, output) = "runs/pretrain";
  TORCH_ARG(std::string, device) = "cpu";
  TORCH_ARG(std::string, stem) = "auto";  // auto | small | imagenet
  TORCH_ARG(int64_t, width) = 64;
  TORCH_ARG(int64_t, crop_size) = 0;      // 0: 224, or the image size if small
  TORCH_ARG(bool, blur) = true;           // with --aug-plus
  TORCH_ARG(int64_t, knn_k) = kKnnK;
  TORCH_ARG(double, knn_t) = kKnnT;
  TORCH_ARG(int64_t, knn_freq) = 1;       // epochs between monitors; 0: end only
  TORCH_ARG(int64_t, knn_bank) = 0;       // train images in the bank; 0: all
  TORCH_ARG(int64_t, knn_test) = 0;       // test images scored; 0: all
  TORCH_ARG(bool, knn_init) = false;      // also score the untrained encoder
  TORCH_ARG(bool, knn_pixels) = false;    // also score raw pixels, at the end
  TORCH_ARG(double, val_split) = 0;       // held out as the monitor's test split
  TORCH_ARG(bool, progress) = true;       // bar on a terminal
  TORCH_ARG(int64_t, channels) = 0;       // 1 | 3; 0: the data's own
  TORCH_ARG(int64_t, max_image_pixels) = data::kMaxImagePixels;
  TORCH_ARG(bool, strict_data) = false;   // unreadable image: error, not skip
  TORCH_ARG(int64_t, shuffle_buffer) = data::kShuffleBuffer;  // tar shards
  // Distributed (official names; see distributed/environment.h).
  TORCH_ARG(std::string, dist_url) = "";
  TORCH_ARG(std::string, dist_backend) = "gloo";
  TORCH_ARG(int64_t, world_size) = -1;
  TORCH_ARG(int64_t, rank) = -1;
  TORCH_ARG(bool, multiprocessing_distributed) = false;
  TORCH_ARG(int64_t, nproc_per_node) = 0;
  TORCH_ARG(double, dist_timeout) = 1800;  // seconds
  TORCH_ARG(bool, sync_bn) = false;  // SyncBN instead of shuffle-BN
  // off | bf16 | fp16 (CUDA) | auto (bf16 where the CPU computes it natively)
  TORCH_ARG(std::string, amp) = "off";
  TORCH_ARG(bool, channels_last) = false;  // NHWC activations and weights
  TORCH_ARG(int64_t, save_freq) = 0;      // steps between mid-epoch checkpoints
  TORCH_ARG(bool, tensorboard) = false;   // event files in --output
  TORCH_ARG(bool, override_flags) = false;  // --override: resume with other flags
  // Not a flag: the flags --resume took with another value than the run's
  // ("--epochs (6 -> 10)"), for the log and metrics.jsonl.
  TORCH_ARG(std::vector<std::string>, resume_changes) = {};
};

struct LinclsOptions {
  // main_lincls.py's flags and defaults.
  TORCH_ARG(std::string, data) = "";
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
  TORCH_ARG(int64_t, crop_size) = 0;  // 0: the checkpoint's, else the data's
  TORCH_ARG(std::string, output) = "runs/lincls";
  TORCH_ARG(bool, tensorboard) = false;
  TORCH_ARG(double, val_split) = 0;  // hold out this fraction as the test split
  TORCH_ARG(std::string, device) = "cpu";
  TORCH_ARG(int64_t, channels) = 0;
  TORCH_ARG(int64_t, max_image_pixels) = data::kMaxImagePixels;
  TORCH_ARG(int64_t, max_steps) = 0;  // per epoch; 0: all (for tests)
  TORCH_ARG(bool, progress) = true;
};

// `moco finetune`: the whole network trained with a new classifier, on all
// or a stratified few of the labels (the semi-supervised protocol).
struct FinetuneOptions {
  TORCH_ARG(std::string, data) = "";
  TORCH_ARG(std::string, pretrained) = "";  // "none": random initialisation
  TORCH_ARG(std::string, arch) = "";        // "": as the checkpoint holds
  TORCH_ARG(std::string, stem) = "auto";    // with --pretrained none
  TORCH_ARG(int64_t, width) = 64;           // with --pretrained none
  TORCH_ARG(int64_t, workers) = -1;
  TORCH_ARG(int64_t, epochs) = 30;
  TORCH_ARG(int64_t, start_epoch) = 0;
  TORCH_ARG(int64_t, batch_size) = 256;
  TORCH_ARG(double, lr) = 0.01;
  TORCH_ARG(double, lr_head) = 0;  // 0: 10x --lr
  TORCH_ARG(std::vector<int64_t>, schedule) = {};
  TORCH_ARG(double, momentum) = 0.9;
  TORCH_ARG(double, wd) = 1e-4;
  TORCH_ARG(bool, cos) = true;
  TORCH_ARG(bool, freeze_bn) = false;
  TORCH_ARG(double, label_fraction) = 1.0;
  TORCH_ARG(int64_t, labels_per_class) = 0;  // 0: --label-fraction decides
  TORCH_ARG(std::string, label_subset) = "";  // a labels.txt to reuse
  TORCH_ARG(double, val_split) = 0;
  TORCH_ARG(int64_t, crop_size) = 0;  // 0: the checkpoint's, else the data's
  TORCH_ARG(int64_t, print_freq) = 10;
  TORCH_ARG(std::string, resume) = "";
  TORCH_ARG(bool, evaluate) = false;
  TORCH_ARG(int64_t, seed) = 0;
  TORCH_ARG(int64_t, threads) = 0;
  TORCH_ARG(std::string, output) = "runs/finetune";
  TORCH_ARG(std::string, device) = "cpu";
  TORCH_ARG(int64_t, channels) = 0;
  TORCH_ARG(int64_t, max_image_pixels) = data::kMaxImagePixels;
  TORCH_ARG(int64_t, max_steps) = 0;  // per epoch; 0: all (for tests)
  TORCH_ARG(bool, progress) = true;
  TORCH_ARG(std::string, amp) = "off";
  TORCH_ARG(bool, tensorboard) = false;
};

struct KnnCommandOptions {
  TORCH_ARG(std::string, data) = "";
  TORCH_ARG(std::string, pretrained) = "";
  TORCH_ARG(int64_t, knn_k) = kKnnK;
  TORCH_ARG(double, knn_t) = kKnnT;
  TORCH_ARG(int64_t, batch_size) = 256;
  TORCH_ARG(int64_t, knn_bank) = 0;  // training images in the bank; 0: all
  TORCH_ARG(int64_t, knn_test) = 0;  // test images scored; 0: all
  TORCH_ARG(double, val_split) = 0;  // hold out this fraction as the test split
  TORCH_ARG(int64_t, seed) = 0;      // of --val-split
  TORCH_ARG(int64_t, crop_size) = 0; // 0: the checkpoint's, else the data's
  TORCH_ARG(int64_t, workers) = -1;  // decoding threads
  TORCH_ARG(int64_t, threads) = 0;
  TORCH_ARG(std::string, device) = "cpu";
  TORCH_ARG(int64_t, channels) = 0;
  TORCH_ARG(int64_t, max_image_pixels) = data::kMaxImagePixels;
};

struct EmbedOptions {
  TORCH_ARG(std::string, data) = "";
  TORCH_ARG(std::string, pretrained) = "";
  TORCH_ARG(std::string, output) = "features.npy";
  TORCH_ARG(std::string, split) = "train";  // train | test
  TORCH_ARG(bool, head) = false;  // the projection head's output instead
  TORCH_ARG(int64_t, crop_size) = 0;  // 0: the checkpoint's, else the data's
  TORCH_ARG(int64_t, batch_size) = 256;
  TORCH_ARG(int64_t, workers) = -1;  // decoding threads
  TORCH_ARG(int64_t, threads) = 0;
  TORCH_ARG(std::string, device) = "cpu";
  TORCH_ARG(int64_t, channels) = 0;
  TORCH_ARG(int64_t, max_image_pixels) = data::kMaxImagePixels;
};

struct ExportOptions {
  TORCH_ARG(std::string, checkpoint) = "";
  TORCH_ARG(std::string, file) = "";
  // "": from the file's extension (.pth/.pt torchvision, .pkl detectron2,
  // .safetensors)
  TORCH_ARG(std::string, format) = "";
  TORCH_ARG(bool, force) = false;  // replace an existing file
};

struct ReportOptions {
  TORCH_ARG(std::string, run) = "";
};

struct PreviewAugOptions {
  TORCH_ARG(std::string, data) = "";
  TORCH_ARG(std::string, output) = "preview-aug.png";
  TORCH_ARG(bool, aug_plus) = true;   // MoCo v2's augmentation; false: v1's
  TORCH_ARG(int64_t, crop_size) = 0;   // 0: the image size if <= 64 px, else 224
  TORCH_ARG(int64_t, images) = 8;
  TORCH_ARG(int64_t, seed) = 0;
  TORCH_ARG(int64_t, channels) = 0;
  TORCH_ARG(int64_t, max_image_pixels) = data::kMaxImagePixels;
};

// `moco shard SRC OUT`: any dataset moco reads as WebDataset tar shards.
struct ShardOptions {
  TORCH_ARG(std::string, data) = "";
  TORCH_ARG(std::string, output) = "";
  // Samples a shard ("10000"), or bytes with a unit ("256MB", "1GB").
  TORCH_ARG(std::string, shard_size) = "10000";
  TORCH_ARG(std::string, split) = "train";  // train | test
  TORCH_ARG(int64_t, channels) = 0;
  TORCH_ARG(int64_t, max_image_pixels) = data::kMaxImagePixels;
};

struct BenchDataOptions {
  TORCH_ARG(std::string, data) = "";
  TORCH_ARG(int64_t, shuffle_buffer) = data::kShuffleBuffer;
  TORCH_ARG(int64_t, workers) = -1;  // -1: all cores
  TORCH_ARG(int64_t, batch_size) = 64;
  TORCH_ARG(int64_t, crop_size) = 224;
  TORCH_ARG(bool, aug_plus) = true;    // MoCo v2's augmentation; false: v1's
  TORCH_ARG(int64_t, images) = 0;      // 0: all
  TORCH_ARG(int64_t, channels) = 0;
  TORCH_ARG(int64_t, max_image_pixels) = data::kMaxImagePixels;
  TORCH_ARG(double, step_ms) = 0;
};

struct SweepOptions {
  // FLAG=V1,V2,... (one per --set; the points are their product).
  TORCH_ARG(std::vector<std::string>, set) = {};
  // NAME=FLAGS: named points, each with its own pretrain flags (rows of an
  // ablation table such as v1, +mlp, ..., v2).
  TORCH_ARG(std::vector<std::string>, point) = {};
  TORCH_ARG(std::vector<int64_t>, seeds) = {0};
  TORCH_ARG(std::string, output) = "runs/sweep";
  TORCH_ARG(int64_t, parallel) = 1;  // points run at once, cores split
  TORCH_ARG(int64_t, threads) = 0;   // cores to split; 0: all
  // `moco pretrain` flags shared by every point (the words after --).
  TORCH_ARG(std::vector<std::string>, pretrain_args) = {};
};

// The flags of every command, listed in the table for the command name
// kEveryCommand.
struct GlobalOptions {
  TORCH_ARG(std::string, log_format) = "text";  // text | json
};
inline constexpr const char* kEveryCommand = "moco";

// What a command's main is given besides its options.
struct Invocation {
  std::set<std::string> given;  // keys of the flags on the command line
  // `moco pretrain WORDS` parsed as the command line would (presets
  // applied) and checked, without running; the sweep checks its points so.
  std::function<PretrainOptions(const std::vector<std::string>&, std::set<std::string>*)>
      parse_pretrain;
};

// What a pretraining checkpoint does with a flag.
enum class Persist {
  restore,  // saved in moco_options; --resume takes it unless given again
  record,   // saved, not restored (the machine's or this invocation's)
  none,     // not saved
};

struct Arg {
  std::string names;  // CLI11 spelling: "-b,--batch-size", "data,--data"
  std::string help;
  args::Style style = args::Style::value;
  std::vector<args::Check> checks;
  Persist persist = Persist::restore;
  std::vector<std::string> commands;  // the commands that take it ("pretrain")
  std::vector<std::string> required;  // ... and those that need it
  // The member it sets in each of those commands' options, by the options'
  // type (train/commands.h lists the commands and their types).
  std::map<std::type_index, std::shared_ptr<const void>> fields;

  std::string flag() const { return args::long_name(names); }  // "--batch-size"
  std::string key() const { return args::key_of(names); }      // "batch_size"
  bool positional() const { return flag().rfind("-", 0) != 0; }
  // The member of O's options it sets; nullptr when O's command does not
  // take it.
  template <class O>
  const args::Field<O>* field() const {
    const auto it = fields.find(typeid(O));
    return it == fields.end() ? nullptr
                              : static_cast<const args::Field<O>*>(it->second.get());
  }

  // Fluent setters for the table.
  Arg&& check(std::vector<args::Check> c) && {
    checks = std::move(c);
    return std::move(*this);
  }
  Arg&& persist_as(Persist p) && {
    persist = p;
    return std::move(*this);
  }
  Arg&& style_as(args::Style s) && {
    style = s;
    return std::move(*this);
  }
  Arg&& required_for(std::vector<std::string> c) && {
    required = std::move(c);
    return std::move(*this);
  }
};

// Every flag of every command, each once.
const std::vector<Arg>& arg_table();

// The table's entry for a key ("moco_k") or flag ("--moco-k", "moco-k")
// of a command ("pretrain"); nullptr when it has none.
const Arg* find_arg(const std::string& command, const std::string& key_or_flag);

// How a command opens DATA: its --channels and --max-image-pixels.
template <class O>
data::OpenOptions open_options(const O& o) {
  return data::OpenOptions().channels(o.channels()).max_image_pixels(o.max_image_pixels());
}

// Runs each flag's checks on the options (errors name the flag).
template <class O>
void validate_flags(const O& o) {
  for (const Arg& a : arg_table()) {
    if (const auto& f = a.field<O>()) args::check(f->get(o), a.checks, a.flag());
  }
}

// The command-line words that give the flag `a` the value `v`:
// {"--lr", "0.1"}, {"--mlp"}, {"--no-progress"}, {"--schedule", "120",
// "160"}; a positional is spelled as its --key ("--data", "DIR").
std::vector<std::string> flag_words(const Arg& a, const args::Value& v);

// The flags of `o` named in `keys`, as words its command takes back (the
// ranks' argv that the launcher starts, from the launcher's parsed flags).
template <class O>
std::vector<std::string> command_words(const O& o, const std::set<std::string>& keys) {
  std::vector<std::string> words;
  for (const Arg& a : arg_table()) {
    const auto& f = a.field<O>();
    if (!f || !keys.count(a.key())) continue;
    const auto w = flag_words(a, f->get(o));
    words.insert(words.end(), w.begin(), w.end());
  }
  return words;
}

// Sets a flag of `o` from its command-line text (errors name the flag).
template <class O>
void set_flag(O& o, const Arg& a, const std::string& text) {
  const auto* f = a.field<O>();
  TORCH_CHECK(f != nullptr, a.flag(), " is not a flag of this command");
  f->set(o, args::parse(text, f->get(o), a.flag()));
}

// --preset NAME: the values it gives to the flags not in `given` (keys).
// A preset lists only what it changes from its base preset.
void apply_preset(const std::string& name, const std::set<std::string>& given,
                  PretrainOptions& o);
// The preset --preset auto stands for: quick without DATA, none with it.
std::string resolve_preset(const std::string& name, bool data_given);

// moco_options in a checkpoint (and the config record of metrics.jsonl):
// every flag saved (restore and record).
template <class O>
nlohmann::json options_to_json(const O& o) {
  nlohmann::json j = nlohmann::json::object();
  for (const Arg& a : arg_table()) {
    const auto& f = a.template field<O>();
    if (f && a.persist != Persist::none) j[a.key()] = args::to_json(f->get(o));
  }
  return j;
}
// A flag given again on --resume with another value than the run's.
struct ResumeChange {
  std::string key;   // "lr"
  std::string text;  // "--lr (0.03 -> 0.1)"
  bool allowed;      // may change on resume without --override
};
// --resume: each restorable flag not in `given` takes the saved value;
// returns the given flags whose value differs.
std::vector<ResumeChange> restore_options(const nlohmann::json& saved,
                                          const std::set<std::string>& given,
                                          PretrainOptions& o);
// The flags a resumed run may change without --override: how long it
// trains and what it monitors.
bool may_change_on_resume(const std::string& key);
// The flags that must be equal on every rank of a distributed run.
nlohmann::json options_shared_by_ranks(const PretrainOptions& o);

}  // namespace moco::train
