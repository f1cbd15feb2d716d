#include "train/sweep.h"

#include <c10/util/Exception.h>

#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <map>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/log.h"
#include "core/text.h"
#include "core/subprocess.h"
#include "io/checkpoint.h"
#include "io/metrics.h"
#include "train/runtime.h"
#include "train/sweep_report.h"

namespace moco::train {

namespace fs = std::filesystem;

namespace {

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string part;
  std::istringstream in(s);
  while (std::getline(in, part, sep)) out.push_back(part);
  if (!s.empty() && s.back() == sep) out.push_back("");
  return out;
}

std::vector<std::string> pretrain_flag_names() {
  std::vector<std::string> names;
  for (const Arg& a : arg_table()) {
    if (a.field<PretrainOptions>()) names.push_back(a.flag());
  }
  return names;
}

// A folder name from a value: no slashes or spaces.
std::string sanitize(std::string s) {
  for (char& c : s) {
    if (c == '/' || c == ' ' || c == '\\') c = '_';
  }
  return s;
}

// ---- Points -----------------------------------------------------------------

// The flags every point shares must leave to the sweep what it sets itself.
void check_base_words(const std::vector<std::string>& words,
                      const std::vector<SweepAxis>& axes,
                      const SweepHooks& hooks) {
  std::set<std::string> given;
  hooks.parse_pretrain(words, &given);
  for (const char* own : {"output", "resume", "seed"}) {
    TORCH_CHECK(!given.count(own), "moco sweep sets --", own, " of each point ",
                "itself; leave it out of the pretrain flags after -- (",
                std::string(own) == "seed" ? "use --seeds" : "use sweep's -o",
                ")");
  }
  for (const auto& axis : axes) {
    TORCH_CHECK(!given.count(axis.key), axis.flag, " is swept by --set; leave it ",
                "out of the pretrain flags after --");
    if (axis.key != "point") continue;
    for (size_t i = 0; i < axis.values.size(); ++i) {
      std::set<std::string> point_given;
      hooks.parse_pretrain(axis.words[i], &point_given);
      for (const auto& other : axes) {
        TORCH_CHECK(other.key == "point" || !point_given.count(other.key), "--point ",
                    axis.values[i], " sets ", other.flag, ", which --set sweeps");
      }
      for (const char* own : {"output", "resume", "seed"}) {
        TORCH_CHECK(!point_given.count(own), "--point ", axis.values[i], " sets --",
                    own, ", which the sweep sets itself");
      }
    }
  }
}

std::vector<SweepPoint> make_points(const SweepOptions& o,
                                    const std::vector<SweepAxis>& axes) {
  std::vector<std::vector<std::string>> combos = {{}};
  for (const auto& axis : axes) {
    std::vector<std::vector<std::string>> next;
    for (const auto& c : combos) {
      for (const auto& v : axis.values) {
        next.push_back(c);
        next.back().push_back(v);
      }
    }
    combos = std::move(next);
  }
  std::vector<SweepPoint> points;
  for (const auto& c : combos) {
    for (int64_t seed : o.seeds()) {
      SweepPoint p;
      p.values = c;
      p.seed = seed;
      for (size_t i = 0; i < axes.size(); ++i) {
        const auto& axis = axes[i];
        p.name += axis.key == "point" ? sanitize(c[i]) + ","
                                      : axis.key + "=" + sanitize(c[i]) + ",";
        const size_t vi = static_cast<size_t>(
            std::find(axis.values.begin(), axis.values.end(), c[i]) - axis.values.begin());
        p.words.insert(p.words.end(), axis.words[vi].begin(), axis.words[vi].end());
      }
      p.name += "seed=" + std::to_string(seed);
      p.dir = (fs::path(o.output()) / p.name).string();
      points.push_back(std::move(p));
    }
  }
  return points;
}

// Cores split between the points that run at once: --threads and -j for
// each, unless the shared flags set them.
std::vector<std::string> machine_words(const SweepOptions& o,
                                       const std::set<std::string>& given) {
  const int64_t total = o.threads() > 0 ? o.threads() : cores();
  const int64_t share = std::max<int64_t>(1, total / o.parallel());
  std::vector<std::string> w = {"--no-progress"};
  if (!given.count("threads")) {
    w.insert(w.end(), {"--threads", std::to_string(share)});
  }
  if (!given.count("workers") && o.parallel() > 1) {
    w.insert(w.end(), {"-j", std::to_string(std::max<int64_t>(1, share - 1))});
  }
  return w;
}

std::vector<std::string> command_of(const SweepPoint& p, const SweepOptions& o,
                                    const std::vector<std::string>& machine) {
  std::vector<std::string> w = o.pretrain_args();
  w.insert(w.end(), p.words.begin(), p.words.end());
  w.insert(w.end(), {"--seed", std::to_string(p.seed), "--output", p.dir});
  w.insert(w.end(), machine.begin(), machine.end());
  const fs::path ckpt = fs::path(p.dir) / "checkpoint.pth.tar";
  if (fs::exists(ckpt)) w.insert(w.end(), {"--resume", ckpt.string()});
  return w;
}

fs::path done_file(const SweepPoint& p) { return fs::path(p.dir) / "point.json"; }

struct Running {
  size_t point;
  Clock::time_point t0;
};

// Runs the points not yet done, `parallel` at a time; returns how many
// failed. A point that exits 0 gets its point.json.
int64_t run_points(const std::vector<SweepPoint>& points, const SweepOptions& o,
                   const SweepHooks& hooks, const std::vector<std::string>& machine,
                   std::vector<std::string>* status) {
  std::map<pid_t, Running> running;
  size_t next = 0;
  int64_t failed = 0;
  auto start_next = [&] {
    while (next < points.size() && fs::exists(done_file(points[next]))) ++next;
    if (next >= points.size()) return false;
    const auto& p = points[next];
    fs::create_directories(p.dir);
    const auto words = command_of(p, o, machine);
    log_info("sweep: starting ", p.name, ": ", "moco pretrain ", shell_line(words));
    // A point dies with the sweep: a killed sweep leaves no orphan writing
    // to a folder the next sweep will resume.
    ChildOptions child;
    child.binary = hooks.binary;
    child.argv = {"moco", "pretrain"};
    child.argv.insert(child.argv.end(), words.begin(), words.end());
    child.log = (fs::path(p.dir) / "log.txt").string();
    child.what = "sweep point " + p.name;
    running[spawn_child(child)] = {next, Clock::now()};
    ++next;
    return true;
  };
  while (true) {
    while (static_cast<int64_t>(running.size()) < o.parallel() && start_next()) {
    }
    if (running.empty()) break;
    int st = 0;
    const pid_t pid = ::waitpid(-1, &st, 0);
    if (pid < 0) {
      if (errno == EINTR) continue;
      break;
    }
    auto it = running.find(pid);
    if (it == running.end()) continue;
    const auto& p = points[it->second.point];
    const double wall = seconds_since(it->second.t0);
    const int code = exit_code(st);
    if (code == 0) {
      io::atomic_write(done_file(p).string(),
                       nlohmann::json{{"name", p.name}, {"wall_seconds", wall}}.dump() + "\n");
      const auto r = read_point_result((fs::path(p.dir) / "metrics.jsonl").string());
      log_info(fmt::format("sweep: {} done in {}: kNN top-1 {}", p.name,
                           format_duration(wall), format_percent(r.knn_top1)));
    } else {
      ++failed;
      (*status)[it->second.point] = fmt::format("failed (exit {})", code);
      log_warn("sweep: ", p.name, " failed with exit status ", code, "; see ",
               (fs::path(p.dir) / "log.txt").string());
    }
    running.erase(it);
  }
  return failed;
}

void write_results(const SweepOptions& o, const std::vector<SweepAxis>& axes,
                   const std::vector<SweepPoint>& points,
                   const std::vector<std::string>& status) {
  std::vector<SweepRow> rows;
  for (size_t i = 0; i < points.size(); ++i) {
    const auto& p = points[i];
    const auto metrics = fs::path(p.dir) / "metrics.jsonl";
    SweepRow row{&p, fs::exists(metrics) ? read_point_result(metrics.string()) : PointResult{},
                 status[i]};
    if (row.status.empty()) row.status = fs::exists(done_file(p)) ? "done" : "not run";
    rows.push_back(std::move(row));
  }
  write_sweep_report(o, axes, rows);
}

}  // namespace

SweepAxis parse_points(const std::vector<std::string>& points) {
  SweepAxis axis{"point", "point", {}, {}};
  for (const auto& p : points) {
    const auto eq = p.find('=');
    TORCH_CHECK(eq != std::string::npos && eq > 0, "expected --point NAME=FLAGS ",
                "(e.g. 'v2=--mlp --aug-plus --cos --moco-t 0.2'; FLAGS may be "
                "empty), got '", p, "'");
    const std::string name = p.substr(0, eq);
    TORCH_CHECK(name.find_first_of("/, ") == std::string::npos, "--point ", p,
                ": the name may not hold '/', ',' or spaces");
    TORCH_CHECK(std::find(axis.values.begin(), axis.values.end(), name) ==
                    axis.values.end(),
                "--point ", name, " given twice");
    std::vector<std::string> words;
    std::istringstream in(p.substr(eq + 1));
    std::string w;
    while (in >> w) words.push_back(w);
    axis.values.push_back(name);
    axis.words.push_back(std::move(words));
  }
  return axis;
}

std::vector<SweepAxis> parse_sets(const std::vector<std::string>& sets) {
  std::vector<SweepAxis> axes;
  for (const auto& s : sets) {
    const auto eq = s.find('=');
    TORCH_CHECK(eq != std::string::npos && eq > 0 && eq + 1 < s.size(),
                "expected --set FLAG=V1,V2,..., got '", s, "'");
    const std::string name = s.substr(0, eq);
    const Arg* a = find_arg("pretrain", name);
    if (a == nullptr) {
      const std::string flag = name.rfind("-", 0) == 0 ? name : "--" + name;
      const std::string best = args::closest(flag, pretrain_flag_names());
      TORCH_CHECK(false, "--set ", s, ": moco pretrain has no flag ", flag,
                  best.empty() ? "" : " (did you mean " + best + "?)");
    }
    TORCH_CHECK(a->key() != "output" && a->key() != "resume" && a->key() != "seed",
                "--set ", s, ": the sweep sets ", a->flag(), " itself",
                a->key() == "seed" ? " (use --seeds)" : "");
    SweepAxis axis{a->key(), a->flag(), split(s.substr(eq + 1), ','), {}};
    for (const auto& v : axis.values) {
      TORCH_CHECK(!v.empty(), "--set ", s, ": an empty value");
      const auto parsed = args::parse(v, a->field<PretrainOptions>()->get({}), a->flag());
      args::check(parsed, a->checks, a->flag());
      auto words = flag_words(*a, parsed);
      // The same value twice (0.9,0.9 or 0.9,0.90) would run once and be
      // reported as two seeds' spread.
      const auto twin = std::find(axis.words.begin(), axis.words.end(), words);
      TORCH_CHECK(twin == axis.words.end(), "--set ", s, ": ",
                  axis.values[static_cast<size_t>(twin - axis.words.begin())],
                  v == axis.values[static_cast<size_t>(twin - axis.words.begin())]
                      ? " is given twice"
                      : " and " + v + " are the same value");
      axis.words.push_back(std::move(words));
    }
    for (const auto& other : axes) {
      TORCH_CHECK(other.key != axis.key, "--set ", a->flag(), " given twice");
    }
    axes.push_back(std::move(axis));
  }
  return axes;
}

PointResult read_point_result(const std::string& metrics_path) {
  const auto m = io::read_metrics(metrics_path);
  PointResult r;
  std::map<int64_t, double> curve, epoch_seconds, epoch_loss;
  int64_t final_epoch = -1;
  for (const auto& k : m.knn) {
    if (k.features == "pixels") {
      r.pixels_top1 = k.top1;
      continue;
    }
    curve[k.epoch] = k.top1;
    if (k.epoch >= final_epoch) {  // the last monitor (a resume may repeat one)
      final_epoch = k.epoch;
      r.knn_top1 = k.top1;
      r.knn_top5 = k.top5;
    }
  }
  r.epochs = final_epoch + 1;
  for (const auto& [e, v] : curve) r.knn_curve.emplace_back(e, v);
  int64_t last = -1;
  for (const auto& e : m.epochs) {
    epoch_seconds[e.epoch] = e.seconds;  // a resumed epoch counts once
    epoch_loss[e.epoch] = e.loss;
    last = std::max(last, e.epoch);
  }
  for (const auto& [e, s] : epoch_seconds) r.train_seconds += s;
  if (last >= 0) r.loss = epoch_loss[last];
  std::vector<double> acc;
  for (const auto& t : m.train) {
    if (t.epoch == last) acc.push_back(t.acc1);
  }
  r.pretext_acc1 = mean_of(acc);
  return r;
}

SweepResult run_sweep(const SweepOptions& o, const SweepHooks& hooks) {
  validate_flags(o);
  TORCH_CHECK(!o.set().empty() || !o.point().empty(),
              "expected --set FLAG=V1,V2,... or --point NAME=FLAGS (or both)");
  auto axes = parse_sets(o.set());
  if (!o.point().empty()) axes.insert(axes.begin(), parse_points(o.point()));
  TORCH_CHECK(!o.seeds().empty(), "expected --seeds with at least one seed");
  check_base_words(o.pretrain_args(), axes, hooks);
  auto points = make_points(o, axes);
  // Values that differ only where folder names cannot ('/' and ' ' become
  // '_') would share a folder: the second would be reported with the
  // first's numbers.
  std::map<std::string, const SweepPoint*> folders;
  for (const auto& p : points) {
    const auto [it, fresh] = folders.emplace(p.name, &p);
    TORCH_CHECK(fresh, "sweep points ", shell_line(it->second->values), " and ",
                shell_line(p.values), " would share the folder ", p.dir,
                "; give values that differ in more than '/', ' ' or '\\'");
  }
  std::set<std::string> given;
  hooks.parse_pretrain(o.pretrain_args(), &given);
  const auto machine = machine_words(o, given);
  // Every point checked before any runs: a bad combination fails now.
  for (const auto& p : points) {
    std::vector<std::string> words = o.pretrain_args();
    words.insert(words.end(), p.words.begin(), p.words.end());
    try {
      hooks.parse_pretrain(words, nullptr);
    } catch (const c10::Error& e) {
      TORCH_CHECK(false, "sweep point ", p.name, ": ", e.what_without_backtrace());
    }
  }
  // One sweep a folder: two would run the same points at once and mark
  // each other's finished points failed.
  const OutputLock lock(o.output());
  SweepResult result;
  result.points = static_cast<int64_t>(points.size());
  for (const auto& p : points) result.skipped += fs::exists(done_file(p)) ? 1 : 0;
  log_info("sweep: ", points.size(), " points (", result.skipped,
           " already done) in ", o.output(), ", ", o.parallel(), " at a time");
  std::vector<std::string> status(points.size());
  result.failed = run_points(points, o, hooks, machine, &status);
  result.ran = result.points - result.skipped;
  write_results(o, axes, points, status);
  log_info("sweep: results in ", (fs::path(o.output()) / "sweep.md").string(),
           " (+ sweep.jsonl, sweep.svg, sweep.html)");
  return result;
}

int sweep_command(const SweepOptions& options, const Invocation& call) {
  SweepHooks hooks;
  hooks.parse_pretrain = call.parse_pretrain;
  return run_sweep(options, hooks).failed > 0 ? 1 : 0;
}

}  // namespace moco::train
