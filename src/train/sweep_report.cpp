#include "train/sweep_report.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "io/charts.h"
#include "io/checkpoint.h"

namespace moco::train {

namespace fs = std::filesystem;

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

std::string format_percent(double v) { return std::isfinite(v) ? fmt::format("{:.2f}%", v) : "-"; }

std::string format_duration(double s) {
  const auto t = static_cast<int64_t>(std::lround(s));
  return t >= 3600 ? fmt::format("{}:{:02d}:{:02d}", t / 3600, (t / 60) % 60, t % 60)
                   : fmt::format("{}:{:02d}", t / 60, t % 60);
}

namespace {

std::string markdown(const SweepOptions& o, const std::vector<SweepAxis>& axes,
                     const std::vector<SweepRow>& rows) {
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
                      format_percent(row.result.knn_top1), format_percent(row.result.knn_top5), format_percent(row.result.pretext_acc1),
                      std::isfinite(row.result.loss) ? fmt::format("{:.4f}", row.result.loss) : "-",
                      format_duration(row.result.train_seconds), row.status);
  }
  md += "\n## Over seeds (mean ± sample std)\n\n|";
  for (const auto& a : axes) md += " " + a.flag + " |";
  md += " seeds | kNN top-1 | min - max | pretext acc@1 | loss |\n|";
  for (size_t i = 0; i < axes.size() + 5; ++i) md += "---|";
  md += "\n";
  std::map<std::vector<std::string>, std::vector<const SweepRow*>> groups;
  std::vector<std::vector<std::string>> order;
  for (const auto& row : rows) {
    if (!groups.count(row.point->values)) order.push_back(row.point->values);
    if (std::isfinite(row.result.knn_top1)) groups[row.point->values].push_back(&row);
  }
  for (const auto& values : order) {
    std::vector<double> knn, acc, loss;
    for (const SweepRow* r : groups[values]) {
      knn.push_back(r->result.knn_top1);
      acc.push_back(r->result.pretext_acc1);
      loss.push_back(r->result.loss);
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
                                    const std::vector<SweepRow>& rows) {
  io::Chart knn{"final kNN top-1 (%), mean ± std over seeds", axes[0].flag, {}, axes[0].values};
  io::Chart acc{"final pretext top-1 (%), mean over seeds", axes[0].flag, {}, axes[0].values};
  std::map<std::vector<std::string>, std::map<std::string, std::vector<const SweepRow*>>> by;
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
      for (const SweepRow* r : by[order[si]][axes[0].values[vi]]) {
        if (std::isfinite(r->result.knn_top1)) kv.push_back(r->result.knn_top1);
        if (std::isfinite(r->result.pretext_acc1)) av.push_back(r->result.pretext_acc1);
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
    for (const auto& [e, v] : rows[i].result.knn_curve) {
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

}  // namespace

void write_sweep_report(const SweepOptions& o, const std::vector<SweepAxis>& axes,
                        const std::vector<SweepRow>& rows) {
  std::string jsonl;
  for (const auto& row : rows) {
    const auto& p = *row.point;
    nlohmann::json j = {{"name", p.name}, {"seed", p.seed}, {"status", row.status},
                        {"knn_top1", row.result.knn_top1}, {"knn_top5", row.result.knn_top5},
                        {"pixels_top1", row.result.pixels_top1},
                        {"pretext_acc1", row.result.pretext_acc1}, {"loss", row.result.loss},
                        {"train_seconds", row.result.train_seconds},
                        {"epochs", row.result.epochs}, {"knn_curve", row.result.knn_curve}};
    for (size_t a = 0; a < axes.size(); ++a) j["flags"][axes[a].key] = p.values[a];
    jsonl += j.dump() + "\n";
  }
  const std::string md = markdown(o, axes, rows);
  const std::string svg = io::svg_document(sweep_charts(axes, rows), 2);
  const fs::path dir(o.output());
  io::atomic_write((dir / "sweep.md").string(), md);
  io::atomic_write((dir / "sweep.jsonl").string(), jsonl);
  io::atomic_write((dir / "sweep.svg").string(), svg);
  io::atomic_write((dir / "sweep.html").string(), html_page(md, svg));
}

}  // namespace moco::train
