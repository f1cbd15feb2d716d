#include "cli/commands.h"

#include <c10/util/Exception.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <thread>

#include <fmt/format.h>

#include "core/log.h"
#include "core/signals.h"
#include "data/augment.h"
#include "data/dataset.h"
#include "data/eval_transform.h"
#include "data/image_decode.h"
#include "data/preview.h"
#include "data/shards.h"
#include "data/throughput.h"
#include "io/checkpoint.h"
#include "dist/communicator.h"
#include "dist/launcher.h"
#include "io/report.h"
#include "train/embed.h"
#include "train/export.h"
#include "train/knn.h"
#include "train/finetune.h"
#include "train/lincls.h"
#include "train/pictures.h"
#include "train/pretrain.h"
#include "train/sweep.h"

namespace moco::cli {

namespace {

using train::Arg;
using train::Command;

bool takes(const std::vector<Command>& list, Command c) {
  return std::find(list.begin(), list.end(), c) != list.end();
}

// A subcommand's options and the keys of the flags the user gave.
template <class O>
struct Parsed {
  O options;
  std::set<std::string> given;
  CLI::App* app = nullptr;
};

// Registers every table flag that `c` takes on `sub`, each setting its
// member of `p.options` and recording its key as given.
template <class O>
void add_flags(CLI::App& sub, Command c, Parsed<O>& p) {
  const O defaults;
  for (const Arg& a : train::arg_table()) {
    const auto& f = a.field<O>();
    if (!f || !takes(a.commands, c)) continue;
    const std::string key = a.key(), flag = a.flag();
    auto field = *f;
    CLI::Option* opt = nullptr;
    if (a.style == args::Style::flag || a.style == args::Style::negated) {
      // --mlp sets true and --mlp=false false (CLI11 passes -1); --no-progress
      // sets false.
      const bool negated = a.style == args::Style::negated;
      opt = sub.add_flag_function(
          a.names,
          [&p, field, key, negated](int64_t n) {
            field.set(p.options, negated ? n <= 0 : n > 0);
            p.given.insert(key);
          },
          a.help);
    } else {
      const auto def = field.get(defaults);
      const bool list = std::holds_alternative<std::vector<std::string>>(def) ||
                        std::holds_alternative<std::vector<int64_t>>(def);
      if (list) {
        opt = sub.add_option_function<std::vector<std::string>>(
            a.names,
            [&p, field, key, flag](const std::vector<std::string>& words) {
              field.set(p.options, args::parse_words(words, field.get(p.options), flag));
              p.given.insert(key);
            },
            a.help);
        if (std::holds_alternative<std::vector<std::string>>(def)) {
          // --set A --set B: one element each.
          opt->expected(1)->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
        } else {
          opt->expected(1, 64);  // --schedule 120 160
        }
      } else {
        opt = sub.add_option_function<std::string>(
            a.names,
            [&p, field, key, flag](const std::string& text) {
              field.set(p.options, args::parse(text, field.get(p.options), flag));
              p.given.insert(key);
            },
            a.help);
      }
      opt->type_name(args::type_name(def, a.style));
      const std::string shown = args::to_string(def, a.style);
      if (!shown.empty()) opt->default_str(shown);
    }
    if (takes(a.required, c)) opt->required();
  }
}

template <class O>
CLI::App* add_command(CLI::App& app, Command c, const std::string& help,
                      Parsed<O>& p) {
  p.app = app.add_subcommand(train::command_name(c), help);
  add_flags(*p.app, c, p);
  return p.app;
}

// CLI11 reads `--mlp=maybe` as a count and throws std::invalid_argument
// without naming the flag; check the values of on/off flags first.
void check_flag_values(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string word = argv[i];
    if (word == "--") break;
    const auto eq = word.find('=');
    if (word.rfind("--", 0) != 0 || eq == std::string::npos) continue;
    const std::string flag = word.substr(0, eq);
    for (const Arg& a : train::arg_table()) {
      if (a.style != args::Style::flag && a.style != args::Style::negated) continue;
      if (a.flag() != flag) continue;
      args::parse(word.substr(eq + 1), args::Value(true), flag);  // throws
    }
  }
}

// "did you mean ...?" for a mistyped flag.
std::string suggestion(const CLI::App* sub, const std::string& word) {
  if (sub == nullptr || word.rfind("--", 0) != 0) return "";
  std::vector<std::string> names;
  for (const CLI::Option* opt : sub->get_options()) {
    for (const auto& n : opt->get_lnames()) names.push_back("--" + n);
  }
  const std::string best = args::closest(word.substr(0, word.find('=')), names);
  return best.empty() ? "" : " (did you mean " + best + "?)";
}

int bench_data_main(const train::BenchDataOptions& o) {
  train::validate_flags(o);
  TORCH_CHECK(o.crop_size() > 0, "expected --crop-size > 0, got ", o.crop_size());
  const int64_t workers = o.workers() >= 0
                              ? o.workers()
                              : std::max<int64_t>(1, std::thread::hardware_concurrency());
  auto splits =
      data::open_dataset(o.data(), data::OpenOptions()
                                       .channels(o.channels())
                                       .max_image_pixels(o.max_image_pixels()));
  auto set = std::make_shared<data::ImageSet>(std::move(splits.train));
  log_info("data: ", set->description, ": ", set->summary);
  auto augment = o.aug() == "v2" ? data::moco_v2_augment(o.crop_size())
                                 : data::moco_v1_augment(o.crop_size());
  const auto [mean, std] = data::normalization(*set);
  augment.mean(mean).std(std);
  auto opts = data::ThroughputOptions()
                  .batch_size(o.batch_size())
                  .max_images(o.images())
                  .shuffle_buffer(o.shuffle_buffer());
  auto report = [&](const std::string& what, const data::ThroughputResult& r) {
    std::printf("%-34s %8.1f images/s  (%lld images in %.2f s%s)\n", what.c_str(),
                r.images_per_second, static_cast<long long>(r.images), r.seconds,
                r.skipped_files
                    ? fmt::format(", {} unreadable skipped", r.skipped_files).c_str()
                    : "");
    std::fflush(stdout);
  };
  // A warm-up pass fills the page cache, so both numbers measure decoding
  // and augmenting, not the disk.
  data::measure_throughput(set, augment, data::ThroughputOptions(opts).workers(workers));
  // Shards are read by a worker thread even with -j 0 (the calling thread
  // only hands the batches over).
  report(set->streamed() ? "1 worker (shards):" : "1 core (on the calling thread):",
         data::measure_throughput(set, augment,
                                  data::ThroughputOptions(opts).workers(0).epoch(1)));
  report(fmt::format("{} workers:", workers),
         data::measure_throughput(
             set, augment, data::ThroughputOptions(opts).workers(workers).epoch(2)));
  if (o.step_ms() > 0) {
    const auto stepped = data::measure_throughput(
        set, augment,
        data::ThroughputOptions(opts).workers(workers).epoch(3).step_seconds(
            o.step_ms() / 1000.0));
    std::printf("with a %.0f ms step per batch of %lld: waiting for data %.1f%% of "
                "the time\n",
                o.step_ms(), static_cast<long long>(o.batch_size()),
                100.0 * stepped.wait_share);
  }
  return 0;
}

int preview_aug_main(const train::PreviewAugOptions& o) {
  train::validate_flags(o);
  TORCH_CHECK(o.images() > 0, "expected --images > 0, got ", o.images());
  auto splits =
      data::open_dataset(o.data(), data::OpenOptions()
                                       .channels(o.channels())
                                       .max_image_pixels(o.max_image_pixels()));
  data::require_indexed(splits.train, "preview-aug");
  // The crop pretraining would choose for this data.
  const int64_t side = data::typical_image_side(splits.train);
  const int64_t crop = o.crop_size() > 0 ? o.crop_size()
                                         : (side > 0 && side <= 64 ? side : 224);
  auto augment = o.aug() == "v2" ? data::moco_v2_augment(crop) : data::moco_v1_augment(crop);
  const auto grid = data::augmentation_grid(splits.train, augment, o.images(),
                                            static_cast<uint64_t>(o.seed()));
  train::write_png(o.output(), grid);
  log_info("wrote ", o.output(), ": ", grid.size(1) / (crop + data::kGridGap) + 1,
           " images of ", splits.train.description, ", two ", o.aug(),
           " views each (crop ", crop, ")");
  return 0;
}

int shard_main(const train::ShardOptions& o) {
  train::validate_flags(o);
  const auto limit = data::parse_shard_size(o.shard_size());
  auto splits =
      data::open_dataset(o.data(), data::OpenOptions()
                                       .channels(o.channels())
                                       .max_image_pixels(o.max_image_pixels()));
  const data::ImageSet& set = data::split_named(splits, o.split(), o.data());
  log_info("shard: ", set.description, ": ", set.summary);
  const auto t0 = std::chrono::steady_clock::now();
  const auto r = data::write_dataset_shards(set, o.output(), o.split(), limit);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  log_info(fmt::format("wrote {} sample{} ({} labelled{}) in {} shard{}, {:.1f} MB of images, "
                       "in {:.1f} s",
                       r.samples, r.samples == 1 ? "" : "s", r.labelled,
                       r.skipped ? fmt::format(", {} unreadable skipped", r.skipped) : "",
                       r.shards.size(), r.shards.size() == 1 ? "" : "s", r.bytes / 1e6, seconds));
  std::printf("%s\n", r.pattern.c_str());
  return 0;
}

// Presets, then the resumed checkpoint's flags, for those not given.
void finish_pretrain_options(Parsed<train::PretrainOptions>& p) {
  auto& o = p.options;
  o.preset(train::resolve_preset(o.preset(), p.given.count("data") > 0));
  train::apply_preset(o.preset(), p.given, o);
  train::restore_resumed_options(o, p.given);
}

int pretrain_main(Parsed<train::PretrainOptions>& p, int argc, char** argv) {
  auto& o = p.options;
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
  finish_pretrain_options(p);
  train::run_pretrain(o);
  return 0;
}

// All subcommands, their flags from the table.
struct Commands {
  CLI::App app{"moco: Momentum Contrast (MoCo v1/v2) self-supervised pretraining on LibTorch"};
  Parsed<train::PretrainOptions> pretrain;
  Parsed<train::LinclsOptions> lincls;
  Parsed<train::FinetuneOptions> finetune;
  Parsed<train::KnnCommandOptions> knn;
  Parsed<train::EmbedOptions> embed;
  Parsed<train::ExportOptions> export_;
  Parsed<train::ReportOptions> report;
  Parsed<train::BenchDataOptions> bench_data;
  Parsed<train::SweepOptions> sweep;
  Parsed<train::PreviewAugOptions> preview_aug;
  Parsed<train::ShardOptions> shard;

  Commands() {
    app.require_subcommand(1);
    app.set_version_flag("--version", "moco 0.1.0");
    app.footer("Every command also takes --log-format text|json: json writes each "
               "log line as one JSON object (time, level, rank, message) and no "
               "progress bar.");
    add_command(app, Command::pretrain,
                "MoCo pretraining (flags and defaults of the official "
                "main_moco.py). Without DATA: Fashion-MNIST from " +
                    std::string(data::kDefaultDataset) + " with the 'quick' preset.",
                pretrain);
    add_command(app, Command::sweep,
                "one pretraining per value of one or more flags (ablations): "
                "moco sweep --set moco-m=0,0.9,0.99 --seeds 0,1 -o DIR -- "
                "[moco pretrain flags]; a finished point is not run again",
                sweep);
    add_command(app, Command::lincls,
                "linear classification protocol (flags and defaults of the "
                "official main_lincls.py): frozen backbone in eval mode, a new "
                "fc trained by SGD",
                lincls);
    add_command(app, Command::finetune,
                "fine-tune the whole network with a new classifier on all or a "
                "few of the labels (--label-fraction 0.01, --labels-per-class "
                "N); --pretrained none trains from scratch",
                finetune);
    add_command(app, Command::knn,
                "weighted kNN classification (cosine, k 200, t 0.1, as the "
                "official CIFAR demo) on backbone features of the train and "
                "test splits",
                knn);
    add_command(app, Command::embed,
                "write backbone (or head) features of a dataset as a NumPy .npy "
                "file (N x D float32), plus OUT.txt listing each row's image "
                "and label",
                embed);
    add_command(app, Command::export_,
                "write a checkpoint's backbone for downstream tools: a "
                "torchvision state dict (.pth; a classifier keeps its fc), "
                "a detectron2 pickle (.pkl) or safetensors",
                export_);
    add_command(app, Command::report,
                "turn a run's metrics.jsonl into report.html (self-contained, "
                "SVG charts) and report.svg in the run's folder",
                report);
    add_command(app, Command::bench_data,
                "measure decode + two-view augmentation throughput (images/s) on "
                "one core and with all workers, and the data wait of a "
                "simulated step",
                bench_data);
    add_command(app, Command::preview_aug,
                "a PNG grid of the two augmented views the recipe makes of a "
                "few images (--aug v1 | v2), to see what pretraining sees",
                preview_aug);
    add_command(app, Command::shard,
                "write any dataset moco reads as WebDataset tar shards "
                "(KEY.jpg/.png + KEY.cls): image files keep their bytes, "
                "in-memory images become PNG; then DATA = OUT/train-{000000..N}.tar",
                shard);
  }

  const CLI::App* parsed_sub() const {
    for (const CLI::App* a : app.get_subcommands()) return a;
    return nullptr;
  }
};

// The last words a run says: a log line of its own in JSON mode, so that a
// collector reading JSON lines sees the error too.
void print_error(const std::string& msg) {
  if (log_format() == LogFormat::json) {
    log_line("error", msg);
  } else {
    std::fprintf(stderr, "moco: error: %s\n", msg.c_str());
  }
}

// --log-format text|json is every command's (anywhere before a sweep's
// "--"), so it is taken out of argv before the command's own flags are
// parsed. Returns false after printing an error.
bool take_log_format(int& argc, char** argv) {
  // The ranks a launcher starts and a sweep's runs inherit the choice.
  const char* inherited = std::getenv("MOCO_LOG_FORMAT");
  if (inherited != nullptr && std::string(inherited) == "json") {
    set_log_format(LogFormat::json);
  }
  for (int i = 1; i < argc; ++i) {
    const std::string w = argv[i];
    if (w == "--") break;
    std::string value;
    int used = 0;
    if (w == "--log-format") {
      if (i + 1 >= argc) {
        print_error("--log-format needs a value: text or json");
        return false;
      }
      value = argv[i + 1];
      used = 2;
    } else if (w.rfind("--log-format=", 0) == 0) {
      value = w.substr(13);
      used = 1;
    } else {
      continue;
    }
    if (value != "text" && value != "json") {
      print_error("--log-format: expected text or json, got '" + value + "'");
      return false;
    }
    set_log_format(value == "json" ? LogFormat::json : LogFormat::text);
    setenv("MOCO_LOG_FORMAT", value.c_str(), 1);
    for (int j = i; j + used < argc; ++j) argv[j] = argv[j + used];
    argc -= used;
    --i;
  }
  return true;
}

// Parses argv; returns a CLI11 exit code, or -1 to go on.
int parse(Commands& c, int argc, char** argv) {
  if (argc > 1 && argv[1][0] != '-') {
    // CLI11 answers a mistyped command with "A subcommand is required".
    std::vector<std::string> names;
    for (const CLI::App* sub : c.app.get_subcommands({})) names.push_back(sub->get_name());
    const std::string word = argv[1];
    if (std::find(names.begin(), names.end(), word) == names.end()) {
      const std::string best = args::closest(word, names);
      std::string list;
      for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
      print_error("unknown command '" + word + "'" +
                  (best.empty() ? "" : " (did you mean " + best + "?)") +
                  "; the commands: " + list);
      return 109;  // CLI11's ExtrasError status
    }
  }
  try {
    check_flag_values(argc, argv);
    c.app.parse(argc, argv);
  } catch (const CLI::ExtrasError& e) {
    const auto* sub = c.parsed_sub();
    const auto extras = sub ? sub->remaining() : c.app.remaining();
    print_error(std::string(e.what()) +
                (extras.empty() ? "" : suggestion(sub, extras.front())));
    return e.get_exit_code();
  } catch (const CLI::ParseError& e) {
    return c.app.exit(e);
  }
  return -1;
}

int dispatch(Commands& c, int argc, char** argv) {
  if (c.pretrain.app->parsed()) return pretrain_main(c.pretrain, argc, argv);
  if (c.sweep.app->parsed()) {
    auto& o = c.sweep.options;
    train::SweepHooks hooks;
    hooks.parse_pretrain = [](const std::vector<std::string>& words,
                              std::set<std::string>* given) {
      return parse_pretrain(words, given);
    };
    return train::run_sweep(o, hooks).failed > 0 ? 1 : 0;
  }
  if (c.lincls.app->parsed()) {
    train::run_lincls(c.lincls.options);
  } else if (c.finetune.app->parsed()) {
    train::run_finetune(c.finetune.options);
  } else if (c.knn.app->parsed()) {
    const auto r = train::run_knn(c.knn.options);
    std::printf("knn top-1 %.2f%% top-5 %.2f%% (bank %lld, test %lld)\n", r.top1,
                r.top5, static_cast<long long>(r.bank_size),
                static_cast<long long>(r.test_size));
  } else if (c.embed.app->parsed()) {
    train::run_embed(c.embed.options);
  } else if (c.export_.app->parsed()) {
    train::export_backbone(c.export_.options);
  } else if (c.report.app->parsed()) {
    const auto r = io::write_report(c.report.options.run());
    std::printf("%s\n%s\n", r.html.c_str(), r.svg.c_str());
  } else if (c.bench_data.app->parsed()) {
    return bench_data_main(c.bench_data.options);
  } else if (c.preview_aug.app->parsed()) {
    return preview_aug_main(c.preview_aug.options);
  } else if (c.shard.app->parsed()) {
    return shard_main(c.shard.options);
  }
  return 0;
}

}  // namespace

train::PretrainOptions parse_pretrain(const std::vector<std::string>& words,
                                      std::set<std::string>* given) {
  Commands c;
  std::vector<std::string> all = {"moco", "pretrain"};
  all.insert(all.end(), words.begin(), words.end());
  std::vector<char*> argv;
  for (auto& w : all) argv.push_back(w.data());
  try {
    check_flag_values(static_cast<int>(argv.size()), argv.data());
    c.app.parse(static_cast<int>(argv.size()), argv.data());
  } catch (const CLI::ExtrasError& e) {
    const auto extras = c.pretrain.app->remaining();
    TORCH_CHECK(false, "moco pretrain does not take ",
                extras.empty() ? std::string(e.what()) : extras.front(),
                extras.empty() ? "" : suggestion(c.pretrain.app, extras.front()));
  } catch (const CLI::ParseError& e) {
    TORCH_CHECK(false, e.what());
  }
  finish_pretrain_options(c.pretrain);
  train::validate(c.pretrain.options);
  if (given) *given = c.pretrain.given;
  return c.pretrain.options;
}

int run(int argc, char** argv) {
  Commands c;
  try {
    // moco sweep [flags] -- [pretrain flags]: the words after -- are the
    // points' shared pretrain flags, not the sweep's.
    if (argc > 1 && std::string(argv[1]) == "sweep") {
      for (int i = 2; i < argc; ++i) {
        if (std::string(argv[i]) != "--") continue;
        c.sweep.options.pretrain_args(std::vector<std::string>(argv + i + 1, argv + argc));
        argc = i;
        break;
      }
    }
    if (!take_log_format(argc, argv)) return 105;  // CLI11's ValidationError
    const int rc = parse(c, argc, argv);
    if (rc >= 0) return rc;
    return dispatch(c, argc, argv);
  } catch (const StopRequested& e) {
    // Work saved after SIGINT/SIGTERM: the status a signal would give.
    if (log_format() == LogFormat::json) {
      log_line("warn", e.what());
    } else {
      std::fprintf(stderr, "moco: %s\n", e.what());
    }
    return 128 + e.signal;
  } catch (const dist::PeerLost& e) {
    // Its own status: the launcher names the rank that failed first, not
    // the ones that only lost it.
    print_error(e.what_without_backtrace());
    return dist::kPeerLostStatus;
  } catch (const c10::Error& e) {
    print_error(e.what_without_backtrace());
    return 1;
  } catch (const std::exception& e) {
    print_error(e.what());
    return 1;
  }
}

}  // namespace moco::cli
