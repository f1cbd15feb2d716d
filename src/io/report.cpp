#include "io/report.h"

#include <c10/util/Exception.h>

#include <filesystem>

#include <fmt/format.h>
#include <map>

#include "io/charts.h"
#include "io/checkpoint.h"
#include "io/metrics.h"

namespace moco::io {

namespace fs = std::filesystem;

namespace {

// The charts of a run, in reading order; each with one series.
std::vector<Chart> run_charts(const Metrics& m) {
  std::map<std::string, Chart> charts;  // keys order the page
  auto add = [&](const std::string& key, const std::string& title,
                 const std::string& x_label, const std::string& color, double x,
                 double y) {
    auto& c = charts[key];
    c.title = title;
    c.x_label = x_label;
    c.integer_x = true;  // steps and epochs
    if (c.series.empty()) c.series.push_back({title, color, {}});
    if (std::isfinite(x) && std::isfinite(y)) c.series[0].points.push_back({x, y});
  };
  for (const auto& r : m.train) {
    const double step = static_cast<double>(r.step);
    add("1loss", "InfoNCE loss", "step", "#1f77b4", step, r.loss);
    add("2acc", "pretext top-1 accuracy (%)", "step", "#2ca02c", step, r.acc1);
    add("3lr", "learning rate", "step", "#9467bd", step, r.lr);
    add("5ips", "throughput (images/s)", "step", "#ff7f0e", step, r.images_per_s);
  }
  for (const auto& r : m.knn) {
    if (r.features != "encoder") continue;
    add("4knn", "kNN top-1 accuracy (%)", "epoch (-1: before training)",
        "#d62728", static_cast<double>(r.epoch), r.top1);
  }
  for (const auto& r : m.epochs) {
    add("6wait", "share of time waiting for data (%)", "epoch", "#8c564b",
        static_cast<double>(r.epoch), 100 * r.data_wait_share);
  }
  for (const auto& r : m.lincls) {
    add("7lloss", "linear classifier loss", "epoch", "#1f77b4",
        static_cast<double>(r.epoch), r.loss);
    add("8lacc", "linear classifier val top-1 (%)", "epoch", "#d62728",
        static_cast<double>(r.epoch), r.acc1);
  }
  for (const auto& r : m.finetune) {
    const double epoch = static_cast<double>(r.epoch);
    add("90floss", "fine-tuning loss", "epoch", "#1f77b4", epoch, r.loss);
    add("91facc", "fine-tuning val top-1 (%)", "epoch", "#d62728", epoch, r.acc1);
    add("92ftrain", "fine-tuning train top-1 (%)", "epoch", "#2ca02c", epoch,
        r.train_acc1);
    add("93flr", "fine-tuning learning rate (backbone)", "epoch", "#9467bd",
        epoch, r.lr);
  }
  std::vector<Chart> out;
  for (auto& [k, c] : charts) {
    if (!c.series[0].points.empty()) out.push_back(std::move(c));
  }
  return out;
}

std::string duration(double seconds) {
  if (seconds < 120) return fmt::format("{:.0f} s", seconds);
  if (seconds < 7200) return fmt::format("{:.1f} min", seconds / 60);
  return fmt::format("{:.1f} h", seconds / 3600);
}

// One line a reader wants first: what was trained on what, for how long,
// and the numbers it ended with.
std::string headline(const Metrics& m) {
  std::vector<std::string> parts;
  if (!m.config.empty()) {
    const auto& c = m.config.front();
    const auto& o = c.options;
    std::string what = c.dataset.empty() ? "" : c.dataset;
    if (c.train_images > 0) {
      what += fmt::format("{}{} training images", what.empty() ? "" : ", ",
                          c.train_images);
    }
    if (!what.empty()) parts.push_back(what);
    if (o.contains("arch") && o["arch"].is_string() && !o["arch"].get<std::string>().empty()) {
      std::string model = o["arch"].get<std::string>();
      if (o.contains("width") && o["width"].is_number() && o["width"].get<int64_t>() != 64) {
        model += fmt::format(" width {}", o["width"].get<int64_t>());
      }
      parts.push_back(model);
    }
    if (o.contains("pretrained") && o["pretrained"].is_string() &&
        !o["pretrained"].get<std::string>().empty()) {
      parts.push_back("from " + o["pretrained"].get<std::string>());
    }
    if (o.contains("epochs") && o["epochs"].is_number()) {
      int64_t done = 0;
      for (const auto& e : m.epochs) done += e.complete ? 1 : 0;
      done = std::max<int64_t>({done, static_cast<int64_t>(m.lincls.size()),
                                static_cast<int64_t>(m.finetune.size())});
      parts.push_back(fmt::format("{} of {} epochs", done, o["epochs"].get<int64_t>()));
    }
  }
  if (m.last_time > m.first_time && m.first_time > 0) {
    parts.push_back(duration(m.last_time - m.first_time) + " wall time");
  }
  std::string result;
  for (auto it = m.knn.rbegin(); it != m.knn.rend(); ++it) {
    if (it->features != "encoder") continue;
    result = fmt::format("final kNN top-1 {:.2f}%", it->top1);
    for (const auto& p : m.knn) {
      if (p.features == "pixels") result += fmt::format(" (raw pixels {:.2f}%)", p.top1);
    }
    break;
  }
  auto best = [](const auto& records) {
    double b = 0;
    for (const auto& r : records) b = std::max(b, r.acc1);
    return b;
  };
  if (!m.lincls.empty()) {
    result += fmt::format("{}linear top-1 {:.2f}% (best), {:.2f}% (last)",
                          result.empty() ? "" : "; ", best(m.lincls), m.lincls.back().acc1);
  }
  if (!m.finetune.empty()) {
    result += fmt::format("{}fine-tuned top-1 {:.2f}% (best), {:.2f}% (last), on {} "
                          "labelled images",
                          result.empty() ? "" : "; ", best(m.finetune),
                          m.finetune.back().acc1, m.finetune.back().train_images);
  }
  std::string line;
  for (const auto& p : parts) line += (line.empty() ? "" : " · ") + p;
  return escape_xml(line) + (result.empty() ? "" : "<br><b>" + escape_xml(result) + "</b>");
}

}  // namespace

ReportResult write_report(const std::string& run_dir) {
  const fs::path dir(run_dir);
  const fs::path metrics = dir / "metrics.jsonl";
  TORCH_CHECK(fs::exists(metrics), "no metrics.jsonl in ", run_dir,
              " (expected the --output folder of a moco run)");
  const Metrics m = read_metrics(metrics.string());
  const auto charts = run_charts(m);
  TORCH_CHECK(!charts.empty(), "nothing to chart in ", metrics.string(),
              " (no train, knn, epoch, lincls or finetune records yet)");
  ReportResult result;
  for (const auto& c : charts) result.charts.push_back(c.title);
  const std::string svg = svg_document(charts);
  const std::string config = m.config.empty() ? "" : m.config.back().options.dump(2);
  const std::string html =
      "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>moco run: " +
      escape_xml(dir.filename().string()) +
      "</title><style>body{font-family:sans-serif;margin:20px;background:#fafafa}"
      "pre{background:#fff;border:1px solid #ccc;padding:8px;font-size:12px;"
      "max-height:300px;overflow:auto}#charts svg{width:100%;height:auto}"
      "#headline{font-size:18px;margin:8px 0 16px}</style></head><body><h1>moco "
      "run: " + escape_xml(run_dir) + "</h1>\n<p id=\"headline\">" + headline(m) +
      "</p>\n<div id=\"charts\">" + svg +
      "</div>\n<h2>Configuration</h2><pre>" + escape_xml(config) +
      "</pre></body></html>\n";
  result.html = (dir / "report.html").string();
  result.svg = (dir / "report.svg").string();
  atomic_write(result.html, html);
  atomic_write(result.svg, svg);
  return result;
}

}  // namespace moco::io
