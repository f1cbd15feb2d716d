#include "train/sweep.h"

#include <c10/util/Exception.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/log.h"
#include "io/charts.h"
#include "io/checkpoint.h"
#include "io/metrics.h"
#include "train/runtime.h"

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

// The words that give `flag` the value `text` on `moco pretrain`'s command
// line.
std::vector<std::string> flag_words(const Arg& a, const std::string& text) {
  const args::Value v = args::parse(text, a.field<PretrainOptions>()->get({}), a.flag());
  if (a.style == args::Style::flag) {
    return {std::get<bool>(v) ? a.flag() : a.flag() + "=false"};
  }
  if (a.style == args::Style::negated) {
    return {a.flag() + (std::get<bool>(v) ? "=false" : "")};
  }
  std::vector<std::string> words = {a.positional() ? "--" + a.key() : a.flag()};
  std::istringstream in(text);
  std::string w;
  if (std::holds_alternative<std::vector<int64_t>>(v)) {
    while (in >> w) words.push_back(w);
  } else {
    words.push_back(text);
  }
  return words;
}

// A folder name from a value: no slashes or spaces.
std::string sanitize(std::string s) {
  for (char& c : s) {
    if (c == '/' || c == ' ' || c == '\\') c = '_';
  }
  return s;
}

double mean_of(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? NAN : s / static_cast<double>(v.size());
}

double std_of(const std::vector<double>& v) {
  if (v.size() < 2) return 0;
  const double m = mean_of(v);
  double s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / static_cast<double>(v.size() - 1));
}

std::string pct(double v) { return std::isfinite(v) ? fmt::format("{:.2f}%", v) : "-"; }

std::string duration(double s) {
  const auto t = static_cast<int64_t>(std::lround(s));
  return t >= 3600 ? fmt::format("{}:{:02d}:{:02d}", t / 3600, (t / 60) % 60, t % 60)
                   : fmt::format("{}:{:02d}", t / 60, t % 60);
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

std::string shell_line(const std::vector<std::string>& words) {
  std::string s = "moco pretrain";
  for (const auto& w : words) {
    const bool plain = w.find_first_of(" '\"$`\\*?&;|<>()") == std::string::npos && !w.empty();
    s += " " + (plain ? w : "'" + w + "'");
  }
  return s;
}

// ---- Processes ----------------------------------------------------------------

pid_t spawn(const std::string& binary, const std::vector<std::string>& words,
            const std::string& log_path) {
  std::vector<std::string> argv = {"moco", "pretrain"};
  argv.insert(argv.end(), words.begin(), words.end());
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  TORCH_CHECK(pid >= 0, "fork failed: ", std::strerror(errno));
  if (pid == 0) {
    // A point dies with the sweep: a killed sweep leaves no orphan writing
    // to a folder the next sweep will resume.
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) ::_exit(1);
    const int fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      ::close(fd);
    }
    std::vector<char*> cargv;
    for (auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
    cargv.push_back(nullptr);
    ::execv(binary.c_str(), cargv.data());
    std::fprintf(stderr, "moco sweep: cannot start %s: %s\n", binary.c_str(),
                 std::strerror(errno));
    ::_exit(127);
  }
  return pid;
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
    log_info("sweep: starting ", p.name, ": ", shell_line(words));
    running[spawn(hooks.binary, words, (fs::path(p.dir) / "log.txt").string())] = {
        next, Clock::now()};
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
    const int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    if (code == 0) {
      io::atomic_write(done_file(p).string(),
                       nlohmann::json{{"name", p.name}, {"wall_seconds", wall}}.dump() + "\n");
      const auto r = read_point_result((fs::path(p.dir) / "metrics.jsonl").string());
      log_info(fmt::format("sweep: {} done in {}: kNN top-1 {}", p.name,
                           duration(wall), pct(r.knn_top1)));
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

// ---- Results -------------------------------------------------------------------

struct Row {
  const SweepPoint* point;
  PointResult r;
  std::string status;
};

std::string markdown(const SweepOptions& o, const std::vector<SweepAxis>& axes,
                     const std::vector<Row>& rows) {
  std::string md = "# moco sweep\n\n";
  std::string cmd = "moco sweep";
  for (const auto& s : o.set()) cmd += " --set " + s;
  for (const auto& p : o.point()) cmd += " --point '" + p + "'";
  cmd += " --seeds ";
  for (size_t i = 0; i < o.seeds().size(); ++i) {
    cmd += (i ? "," : "") + std::to_string(o.seeds()[i]);
  }
  cmd += " -o " + o.output();
  if (!o.pretrain_args().empty()) {
    cmd += " --";
    for (const auto& w : o.pretrain_args()) cmd += " " + w;
  }
  md += "Command: `" + cmd + "`\n\nEach point is `moco pretrain` with the shared "
        "flags, the point's values, `--seed S` and `--output " + o.output() +
        "/<point>`; its log is `<point>/log.txt`.\n\n";
  md += "## Points\n\n|";
  for (const auto& a : axes) md += " " + a.flag + " |";
  md += " seed | kNN top-1 | kNN top-5 | pretext acc@1 | loss | training time | status |\n|";
  for (size_t i = 0; i < axes.size() + 7; ++i) md += "---|";
  md += "\n";
  for (const auto& row : rows) {
    md += "|";
    for (const auto& v : row.point->values) md += " " + v + " |";
    md += fmt::format(" {} | {} | {} | {} | {} | {} | {} |\n", row.point->seed,
                      pct(row.r.knn_top1), pct(row.r.knn_top5), pct(row.r.pretext_acc1),
                      std::isfinite(row.r.loss) ? fmt::format("{:.4f}", row.r.loss) : "-",
                      duration(row.r.train_seconds), row.status);
  }
  md += "\n## Over seeds (mean ± sample std)\n\n|";
  for (const auto& a : axes) md += " " + a.flag + " |";
  md += " seeds | kNN top-1 | min - max | pretext acc@1 | loss |\n|";
  for (size_t i = 0; i < axes.size() + 5; ++i) md += "---|";
  md += "\n";
  std::map<std::vector<std::string>, std::vector<const Row*>> groups;
  std::vector<std::vector<std::string>> order;
  for (const auto& row : rows) {
    if (!groups.count(row.point->values)) order.push_back(row.point->values);
    if (std::isfinite(row.r.knn_top1)) groups[row.point->values].push_back(&row);
  }
  for (const auto& values : order) {
    std::vector<double> knn, acc, loss;
    for (const Row* r : groups[values]) {
      knn.push_back(r->r.knn_top1);
      acc.push_back(r->r.pretext_acc1);
      loss.push_back(r->r.loss);
    }
    md += "|";
    for (const auto& v : values) md += " " + v + " |";
    if (knn.empty()) {
      md += " 0 | - | - | - | - |\n";
      continue;
    }
    md += fmt::format(" {} | {:.2f} ± {:.2f}% | {:.2f} - {:.2f}% | {:.2f}% | {:.4f} |\n",
                      knn.size(), mean_of(knn), std_of(knn),
                      *std::min_element(knn.begin(), knn.end()),
                      *std::max_element(knn.begin(), knn.end()), mean_of(acc),
                      mean_of(loss));
  }
  return md;
}

// Final kNN (and pretext accuracy) against the first swept flag's values,
// one line per combination of the others, mean and spread over seeds; the
// kNN curves of every point.
std::vector<io::Chart> sweep_charts(const std::vector<SweepAxis>& axes,
                                    const std::vector<Row>& rows) {
  io::Chart knn{"final kNN top-1 (%), mean ± std over seeds", axes[0].flag, {}, axes[0].values};
  io::Chart acc{"final pretext top-1 (%), mean over seeds", axes[0].flag, {}, axes[0].values};
  std::map<std::vector<std::string>, std::map<std::string, std::vector<const Row*>>> by;
  std::vector<std::vector<std::string>> order;
  for (const auto& row : rows) {
    std::vector<std::string> rest(row.point->values.begin() + 1, row.point->values.end());
    if (!by.count(rest)) order.push_back(rest);
    by[rest][row.point->values[0]].push_back(&row);
  }
  for (size_t si = 0; si < order.size(); ++si) {
    std::string name;
    for (size_t i = 0; i < order[si].size(); ++i) {
      name += (i ? ", " : "") + axes[i + 1].key + " " + order[si][i];
    }
    io::Series k{name.empty() ? "kNN" : name, io::palette(si), {}};
    io::Series a{name.empty() ? "pretext" : name, io::palette(si), {}};
    for (size_t vi = 0; vi < axes[0].values.size(); ++vi) {
      std::vector<double> kv, av;
      for (const Row* r : by[order[si]][axes[0].values[vi]]) {
        if (std::isfinite(r->r.knn_top1)) kv.push_back(r->r.knn_top1);
        if (std::isfinite(r->r.pretext_acc1)) av.push_back(r->r.pretext_acc1);
      }
      if (!kv.empty()) k.points.push_back({double(vi), mean_of(kv), std_of(kv)});
      if (!av.empty()) a.points.push_back({double(vi), mean_of(av), 0});
    }
    knn.series.push_back(std::move(k));
    acc.series.push_back(std::move(a));
  }
  io::Chart curves{"kNN top-1 (%) per epoch", "epoch", {}, {}, true};
  for (size_t i = 0; i < rows.size(); ++i) {
    io::Series s{rows[i].point->name, io::palette(i), {}};
    for (const auto& [e, v] : rows[i].r.knn_curve) {
      if (e >= 0) s.points.push_back({static_cast<double>(e + 1), v, 0});
    }
    if (!s.points.empty()) curves.series.push_back(std::move(s));
  }
  std::vector<io::Chart> charts = {knn, acc};
  if (!curves.series.empty()) charts.push_back(curves);
  return charts;
}

std::string html_page(const std::string& md, const std::string& svg) {
  // The tables as preformatted markdown: readable as they are, no renderer.
  return "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>moco "
         "sweep</title><style>body{font-family:sans-serif;margin:20px;"
         "background:#fafafa}pre{background:#fff;border:1px solid #ccc;"
         "padding:8px;font-size:12px;overflow:auto}</style></head><body>"
         "<h1>moco sweep</h1>\n<div id=\"charts\">" +
         svg + "</div>\n<pre>" + io::escape_xml(md) + "</pre></body></html>\n";
}

void write_results(const SweepOptions& o, const std::vector<SweepAxis>& axes,
                   const std::vector<SweepPoint>& points,
                   const std::vector<std::string>& status) {
  std::vector<Row> rows;
  std::string jsonl;
  for (size_t i = 0; i < points.size(); ++i) {
    const auto& p = points[i];
    const auto metrics = fs::path(p.dir) / "metrics.jsonl";
    Row row{&p, fs::exists(metrics) ? read_point_result(metrics.string()) : PointResult{},
            status[i]};
    if (row.status.empty()) row.status = fs::exists(done_file(p)) ? "done" : "not run";
    nlohmann::json j = {{"name", p.name}, {"seed", p.seed}, {"status", row.status},
                        {"knn_top1", row.r.knn_top1}, {"knn_top5", row.r.knn_top5},
                        {"pixels_top1", row.r.pixels_top1},
                        {"pretext_acc1", row.r.pretext_acc1}, {"loss", row.r.loss},
                        {"train_seconds", row.r.train_seconds},
                        {"epochs", row.r.epochs}, {"knn_curve", row.r.knn_curve}};
    for (size_t a = 0; a < axes.size(); ++a) j["flags"][axes[a].key] = p.values[a];
    jsonl += j.dump() + "\n";
    rows.push_back(std::move(row));
  }
  const std::string md = markdown(o, axes, rows);
  const std::string svg = io::svg_document(sweep_charts(axes, rows), 2);
  const fs::path dir(o.output());
  io::atomic_write((dir / "sweep.md").string(), md);
  io::atomic_write((dir / "sweep.jsonl").string(), jsonl);
  io::atomic_write((dir / "sweep.svg").string(), svg);
  io::atomic_write((dir / "sweep.html").string(), html_page(md, svg));
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
    const Arg* a = find_arg(Command::pretrain, name);
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
      axis.words.push_back(flag_words(*a, v));
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
  fs::create_directories(o.output());
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

}  // namespace moco::train
