#include "cli/commands.h"

#include <c10/util/Exception.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <memory>
#include <tuple>

#include "core/log.h"
#include "core/signals.h"
#include "distributed/communicator.h"
#include "train/commands.h"

namespace moco::cli {

namespace {

using train::Arg;

bool takes(const std::vector<std::string>& list, const std::string& command) {
  return std::find(list.begin(), list.end(), command) != list.end();
}

// A subcommand's options and the keys of the flags the user gave.
template <class O>
struct Parsed {
  O options;
  std::set<std::string> given;
  CLI::App* app = nullptr;
  std::deque<std::string> flag_text;  // CLI11's own copy of each on/off flag's text
};

// Registers every table flag that `c` takes on `sub`, each setting its
// member of `p.options` and recording its key as given.
template <class O>
void add_flags(CLI::App& sub, const std::string& command, Parsed<O>& p) {
  const O defaults;
  for (const Arg& a : train::arg_table()) {
    const auto* f = a.field<O>();
    if (f == nullptr) continue;
    const std::string key = a.key(), flag = a.flag();
    auto field = *f;
    CLI::Option* opt = nullptr;
    if (a.style == args::Style::flag || a.style == args::Style::negated) {
      // As text ("true" when bare, else what follows '='), parsed here so
      // that `--mlp=maybe` is an error naming the flag (CLI11's own flag
      // parsing reads it as a count). --no-progress sets false.
      const bool negated = a.style == args::Style::negated;
      opt = sub.add_flag(a.names, p.flag_text.emplace_back(), a.help)
                ->each([&p, field, key, flag, negated](const std::string& text) {
                  const bool on = std::get<bool>(args::parse(text, args::Value(true), flag));
                  field.set(p.options, negated ? !on : on);
                  p.given.insert(key);
                });
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
    if (takes(a.required, command)) opt->required();
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

// A command of the registry, its options type erased: the subcommand,
// the options its flags set, and its main.
struct Registered {
  virtual ~Registered() = default;
  virtual CLI::App* app() const = 0;
  virtual int main(const train::Invocation& call) = 0;
};

template <class O>
struct RegisteredCommand : Registered {
  Parsed<O> parsed;
  int (*run)(const O&, const train::Invocation&) = nullptr;

  CLI::App* app() const override { return parsed.app; }
  int main(const train::Invocation& call) override {
    train::Invocation with_flags = call;
    with_flags.given = parsed.given;
    return run(parsed.options, with_flags);
  }
};

// Every command of the registry (train/commands.h), its flags from the table.
struct Commands {
  CLI::App app{"moco: Momentum Contrast (MoCo v1/v2) self-supervised pretraining on LibTorch"};
  std::vector<std::unique_ptr<Registered>> all;

  Commands() {
    app.require_subcommand(1);
    app.set_version_flag("--version", "moco 0.1.0");
    const Arg* log_format = train::find_arg(train::kEveryCommand, "--log-format");
    app.footer("Every command also takes " + log_format->flag() + " text|json: " +
               log_format->help + ".");
    std::apply([this](const auto&... row) { (add(row), ...); }, train::commands());
  }

  template <class Row>
  void add(const Row& row) {
    using O = typename Row::Options;
    auto r = std::make_unique<RegisteredCommand<O>>();
    r->run = row.main;
    r->parsed.app = app.add_subcommand(row.name, row.help);
    add_flags(*r->parsed.app, row.name, r->parsed);
    all.push_back(std::move(r));
  }

  // The command's parsed options, by its options type.
  template <class O>
  Parsed<O>& get() {
    for (auto& r : all) {
      if (auto* c = dynamic_cast<RegisteredCommand<O>*>(r.get())) return c->parsed;
    }
    TORCH_INTERNAL_ASSERT(false, "no command has these options");
  }

  Registered* parsed_command() const {
    for (const auto& r : all) {
      if (r->app()->parsed()) return r.get();
    }
    return nullptr;
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

// --log-format is every command's (the table's kEveryCommand flags), so it
// is taken out of argv before anything else is parsed: an unknown command
// is reported in the format asked for too. Returns false after printing
// an error.
bool take_log_format(int& argc, char** argv) {
  const Arg& a = *train::find_arg(train::kEveryCommand, "--log-format");
  const std::string flag = a.flag();
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
    if (w == flag) {
      if (i + 1 >= argc) {
        print_error(flag + " needs a value: text or json");
        return false;
      }
      value = argv[i + 1];
      used = 2;
    } else if (w.rfind(flag + "=", 0) == 0) {
      value = w.substr(flag.size() + 1);
      used = 1;
    } else {
      continue;
    }
    train::GlobalOptions global;
    try {
      train::set_flag(global, a, value);
      train::validate_flags(global);
    } catch (const c10::Error& e) {
      print_error(e.what_without_backtrace());
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

int dispatch(Commands& c) {
  train::Invocation call;
  call.parse_pretrain = [](const std::vector<std::string>& words,
                           std::set<std::string>* given) {
    return parse_pretrain(words, given);
  };
  Registered* command = c.parsed_command();
  return command == nullptr ? 0 : command->main(call);
}

}  // namespace

train::PretrainOptions parse_pretrain(const std::vector<std::string>& words,
                                      std::set<std::string>* given) {
  Commands c;
  auto& pretrain = c.get<train::PretrainOptions>();
  std::vector<std::string> all = {"moco", "pretrain"};
  all.insert(all.end(), words.begin(), words.end());
  std::vector<char*> argv;
  for (auto& w : all) argv.push_back(w.data());
  try {
    c.app.parse(static_cast<int>(argv.size()), argv.data());
  } catch (const CLI::ExtrasError& e) {
    const auto extras = pretrain.app->remaining();
    TORCH_CHECK(false, "moco pretrain does not take ",
                extras.empty() ? std::string(e.what()) : extras.front(),
                extras.empty() ? "" : suggestion(pretrain.app, extras.front()));
  } catch (const CLI::ParseError& e) {
    TORCH_CHECK(false, e.what());
  }
  train::finish_options(pretrain.options, pretrain.given);
  train::validate(pretrain.options);
  if (given) *given = pretrain.given;
  return pretrain.options;
}

int run(int argc, char** argv) {
  Commands c;
  try {
    // moco sweep [flags] -- [pretrain flags]: the words after -- are the
    // points' shared pretrain flags, not the sweep's.
    if (argc > 1 && std::string(argv[1]) == "sweep") {
      for (int i = 2; i < argc; ++i) {
        if (std::string(argv[i]) != "--") continue;
        c.get<train::SweepOptions>().options.pretrain_args(
            std::vector<std::string>(argv + i + 1, argv + argc));
        argc = i;
        break;
      }
    }
    if (!take_log_format(argc, argv)) return 105;  // CLI11's ValidationError
    const int rc = parse(c, argc, argv);
    if (rc >= 0) return rc;
    return dispatch(c);
  } catch (const StopRequested& e) {
    // Work saved after SIGINT/SIGTERM: the status a signal would give.
    if (log_format() == LogFormat::json) {
      log_line("warn", e.what());
    } else {
      std::fprintf(stderr, "moco: %s\n", e.what());
    }
    return 128 + e.signal;
  } catch (const distributed::PeerLost& e) {
    // Its own status: the launcher names the rank that failed first, not
    // the ones that only lost it.
    print_error(e.what_without_backtrace());
    return distributed::kPeerLostStatus;
  } catch (const c10::Error& e) {
    print_error(e.what_without_backtrace());
    return 1;
  } catch (const std::exception& e) {
    print_error(e.what());
    return 1;
  }
}

}  // namespace moco::cli
