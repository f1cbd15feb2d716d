#include "io/report.h"

#include <c10/util/Exception.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

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
  // Epochs count from 1, as the log's "epoch 3/6"; 0 is before training.
  auto after = [](int64_t epoch) { return static_cast<double>(epoch + 1); };
  for (const auto& r : m.knn) {
    if (r.features != "encoder") continue;
    add("4knn", "kNN top-1 accuracy (%)", "epoch (0: before training)",
        "#d62728", after(r.epoch), r.top1);
  }
  for (const auto& r : m.epochs) {
    add("6wait", "share of time waiting for data (%)", "epoch", "#8c564b",
        after(r.epoch), 100 * r.data_wait_share);
  }
  for (const auto& r : m.lincls) {
    add("7lloss", "linear classifier loss", "epoch", "#1f77b4", after(r.epoch), r.loss);
    add("8lacc", "linear classifier val top-1 (%)", "epoch", "#d62728", after(r.epoch),
        r.acc1);
  }
  for (const auto& r : m.finetune) {
    const double epoch = after(r.epoch);
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

std::string read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The pictures go into the page as data URIs so that report.html stays one
// file that opens anywhere. Base64 by hand: a dozen lines, where a library
// would be a dependency for one function.
std::string base64(const std::string& in) {
  static const char* abc =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  for (size_t i = 0; i < in.size(); i += 3) {
    uint32_t v = static_cast<uint8_t>(in[i]) << 16;
    if (i + 1 < in.size()) v |= static_cast<uint8_t>(in[i + 1]) << 8;
    if (i + 2 < in.size()) v |= static_cast<uint8_t>(in[i + 2]);
    out += abc[(v >> 18) & 63];
    out += abc[(v >> 12) & 63];
    out += i + 1 < in.size() ? abc[(v >> 6) & 63] : '=';
    out += i + 2 < in.size() ? abc[v & 63] : '=';
  }
  return out;
}

std::string png_figure(const fs::path& path, const std::string& id,
                       const std::string& caption) {
  if (!fs::exists(path)) return "";
  return "<figure id=\"" + id + "\"><img src=\"data:image/png;base64," +
         base64(read_bytes(path)) + "\" alt=\"" + escape_xml(caption) +
         "\"><figcaption>" + escape_xml(caption) + "</figcaption></figure>\n";
}

// embedding.json (written by pretraining's last kNN) as a scatter plot; a
// damaged file is left out with a note in the page, never the report's end.
std::string embedding_figure(const fs::path& path) {
  if (!fs::exists(path)) return "";
  Scatter sc;
  try {
    const auto e = nlohmann::json::parse(read_bytes(path));
    for (const auto& g : e.at("classes")) sc.groups.push_back(g.get<std::string>());
    for (const auto& p : e.at("points")) {
      sc.points.push_back({p.at(0).get<double>(), p.at(1).get<double>(),
                           p.at(2).get<int64_t>()});
    }
    const auto& v = e.at("explained_variance");
    sc.title = fmt::format("{} test images' features, first two principal components",
                           sc.points.size());
    sc.x_label = fmt::format("PC 1 ({:.1f}% of the variance)",
                             v.size() > 0 ? 100 * v[0].get<double>() : 0.0);
    sc.y_label = fmt::format("PC 2 ({:.1f}%)", v.size() > 1 ? 100 * v[1].get<double>() : 0.0);
  } catch (const std::exception& ex) {
    return "<p>" + escape_xml(path.string()) + " is damaged (" + escape_xml(ex.what()) +
           "): no embedding plot.</p>\n";
  }
  return "<figure id=\"embedding\">" + svg_scatter(sc) +
         "<figcaption>The learned features of the test images projected on their "
         "first two principal components, coloured by class: classes that form "
         "their own clusters are the ones a kNN or linear classifier separates."
         "</figcaption></figure>\n";
}

std::string pictures(const fs::path& dir) {
  std::string out =
      png_figure(dir / "preview-aug.png", "augmentation",
                 "The run's augmentation: two views of the same 8 training images "
                 "(top row: the query's view, bottom: the key's), as the encoder saw "
                 "them, before normalisation.") +
      png_figure(dir / "neighbours.png", "neighbours",
                 "Nearest neighbours by the learned features: each row a test image "
                 "(dark frame) and its 8 nearest training images (green frame: same "
                 "class, red: another class).") +
      embedding_figure(dir / "embedding.json");
  return out.empty() ? "" : "<h2>Pictures</h2>\n<div id=\"pictures\">" + out + "</div>\n";
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
      "#headline{font-size:18px;margin:8px 0 16px;padding:10px 14px;"
      "background:#e8f0fa;border-left:6px solid #1f77b4}"
      "figure{margin:0 0 24px}figure img{max-width:100%;image-rendering:pixelated;"
      "border:1px solid #ccc}#augmentation img{width:min(100%,960px)}figcaption{color:#444;font-size:14px;max-width:900px}"
      "#embedding svg{max-width:100%;height:auto}</style></head><body><h1>moco "
      "run: " + escape_xml(run_dir) + "</h1>\n<p id=\"headline\">" + headline(m) +
      "</p>\n<div id=\"charts\">" + svg +
      "</div>\n" + pictures(dir) + "<h2>Configuration</h2><pre>" + escape_xml(config) +
      "</pre></body></html>\n";
  result.html = (dir / "report.html").string();
  result.svg = (dir / "report.svg").string();
  atomic_write(result.html, html);
  atomic_write(result.svg, svg);
  return result;
}

}  // namespace moco::io
