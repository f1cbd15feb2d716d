#include "io/report.h"

#include <c10/util/Exception.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>

#include "io/checkpoint.h"

namespace moco::io {

namespace fs = std::filesystem;

namespace {

struct Series {
  std::string title, x_label, y_label, color;
  std::vector<std::pair<double, double>> points;
};

std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '&': out += "&amp;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string number(double v) {
  if (v != 0 && (std::fabs(v) < 1e-3 || std::fabs(v) >= 1e5)) {
    return fmt::format("{:.2e}", v);
  }
  return fmt::format("{:.4g}", v);
}

// One line chart, 460 x 260, as an SVG fragment placed at (ox, oy).
std::string chart(const Series& s, double ox, double oy) {
  const double w = 460, h = 260, left = 60, right = 15, top = 30, bottom = 40;
  double x0 = s.points.front().first, x1 = x0;
  double y0 = s.points.front().second, y1 = y0;
  for (const auto& [x, y] : s.points) {
    x0 = std::min(x0, x);
    x1 = std::max(x1, x);
    y0 = std::min(y0, y);
    y1 = std::max(y1, y);
  }
  if (x1 == x0) x1 = x0 + 1;
  if (y1 == y0) {
    // A constant: show it mid-height on a range from zero.
    const double v = y0;
    y0 = v > 0 ? 0 : (v < 0 ? 2 * v : -0.5);
    y1 = v > 0 ? 2 * v : (v < 0 ? 0 : 0.5);
  }
  const double pad = 0.05 * (y1 - y0);
  y0 -= pad;
  y1 += pad;
  auto px = [&](double x) { return ox + left + (x - x0) / (x1 - x0) * (w - left - right); };
  auto py = [&](double y) { return oy + top + (y1 - y) / (y1 - y0) * (h - top - bottom); };
  std::string out = fmt::format(
      "<g class=\"chart\" data-title=\"{}\">"
      "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"#ffffff\" "
      "stroke=\"#cccccc\"/>"
      "<text x=\"{}\" y=\"{}\" font-size=\"15\" font-family=\"sans-serif\" "
      "font-weight=\"bold\">{}</text>",
      escape(s.title), ox, oy, w, h, ox + left, oy + 20, escape(s.title));
  // Axes, with the range at the ends and four grid lines.
  for (int i = 0; i <= 4; ++i) {
    const double y = y0 + (y1 - y0) * i / 4.0;
    out += fmt::format(
        "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#eeeeee\"/>"
        "<text x=\"{}\" y=\"{}\" font-size=\"11\" font-family=\"sans-serif\" "
        "text-anchor=\"end\">{}</text>",
        px(x0), py(y), px(x1), py(y), ox + left - 5, py(y) + 4, number(y));
  }
  out += fmt::format(
      "<line x1=\"{0}\" y1=\"{1}\" x2=\"{2}\" y2=\"{1}\" stroke=\"#333333\"/>"
      "<line x1=\"{0}\" y1=\"{3}\" x2=\"{0}\" y2=\"{1}\" stroke=\"#333333\"/>",
      px(x0), py(y0), px(x1), py(y1));
  out += fmt::format(
      "<text x=\"{}\" y=\"{}\" font-size=\"11\" font-family=\"sans-serif\">{}"
      "</text><text x=\"{}\" y=\"{}\" font-size=\"11\" font-family=\"sans-serif\" "
      "text-anchor=\"end\">{}</text>"
      "<text x=\"{}\" y=\"{}\" font-size=\"12\" font-family=\"sans-serif\" "
      "text-anchor=\"middle\">{}</text>",
      px(x0), oy + h - bottom + 15, number(x0), px(x1), oy + h - bottom + 15,
      number(x1), ox + (left + w - right) / 2, oy + h - 8, escape(s.x_label));
  std::string pts;
  for (const auto& [x, y] : s.points) pts += fmt::format("{:.2f},{:.2f} ", px(x), py(y));
  out += fmt::format(
      "<polyline class=\"series\" points=\"{}\" fill=\"none\" stroke=\"{}\" "
      "stroke-width=\"2.5\"/>",
      pts, s.color);
  if (s.points.size() <= 40) {
    for (const auto& [x, y] : s.points) {
      out += fmt::format("<circle cx=\"{:.2f}\" cy=\"{:.2f}\" r=\"3.5\" fill=\"{}\"/>",
                         px(x), py(y), s.color);
    }
  }
  out += "</g>";
  return out;
}

}  // namespace

ReportResult write_report(const std::string& run_dir) {
  const fs::path dir(run_dir);
  const fs::path metrics = dir / "metrics.jsonl";
  TORCH_CHECK(fs::exists(metrics), "no metrics.jsonl in ", run_dir,
              " (expected the --output folder of a moco run)");
  std::ifstream in(metrics);
  std::map<std::string, Series> series;
  auto add = [&](const std::string& key, const std::string& title,
                 const std::string& x_label, const std::string& color, double x,
                 double y) {
    auto& s = series[key];
    s.title = title;
    s.x_label = x_label;
    s.color = color;
    if (std::isfinite(x) && std::isfinite(y)) s.points.emplace_back(x, y);
  };
  std::string line, config;
  int64_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.empty()) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const std::exception& e) {
      // A run killed mid-write leaves a torn last line; skip it.
      continue;
    }
    const std::string kind = j.value("kind", "");
    auto num = [&](const char* k) {
      return j.contains(k) && j[k].is_number() ? j[k].get<double>() : NAN;
    };
    if (kind == "config") {
      config = j.dump(2);
    } else if (kind == "train") {
      const double step = num("step");
      add("1loss", "InfoNCE loss", "step", "#1f77b4", step, num("loss"));
      add("2acc", "pretext top-1 accuracy (%)", "step", "#2ca02c", step, num("acc1"));
      add("3lr", "learning rate", "step", "#9467bd", step, num("lr"));
      add("5ips", "throughput (images/s)", "step", "#ff7f0e", step,
          num("images_per_s"));
    } else if (kind == "knn") {
      add("4knn", "kNN top-1 accuracy (%)", "epoch (-1: before training)",
          "#d62728", num("epoch"), num("top1"));
    } else if (kind == "epoch") {
      add("6wait", "share of time waiting for data (%)", "epoch", "#8c564b",
          num("epoch"), 100 * num("data_wait_share"));
    } else if (kind == "lincls") {
      add("7lloss", "linear classifier loss", "epoch", "#1f77b4", num("epoch"),
          num("loss"));
      add("8lacc", "linear classifier val top-1 (%)", "epoch", "#d62728",
          num("epoch"), num("acc1"));
    }
  }
  std::vector<const Series*> drawn;
  for (const auto& [k, s] : series) {
    if (!s.points.empty()) drawn.push_back(&s);
  }
  TORCH_CHECK(!drawn.empty(), "nothing to chart in ", metrics.string(),
              " (no train, knn, epoch or lincls records yet)");
  const int cols = 2;
  const double cw = 480, chh = 280;
  const int rows = static_cast<int>((drawn.size() + cols - 1) / cols);
  std::string svg = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" "
      "viewBox=\"0 0 {} {}\"><rect width=\"100%\" height=\"100%\" "
      "fill=\"#fafafa\"/>",
      cols * cw, rows * chh, cols * cw, rows * chh);
  ReportResult result;
  for (size_t i = 0; i < drawn.size(); ++i) {
    svg += chart(*drawn[i], 10 + (i % cols) * cw, 10 + (i / cols) * chh);
    result.charts.push_back(drawn[i]->title);
  }
  svg += "</svg>\n";
  const std::string html =
      "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>moco run: " +
      escape(dir.filename().string()) +
      "</title><style>body{font-family:sans-serif;margin:20px;background:#fafafa}"
      "pre{background:#fff;border:1px solid #ccc;padding:8px;font-size:12px;"
      "max-height:300px;overflow:auto}</style></head><body><h1>moco run: " +
      escape(run_dir) + "</h1>\n<div id=\"charts\">" + svg +
      "</div>\n<h2>Configuration</h2><pre>" + escape(config) +
      "</pre></body></html>\n";
  result.html = (dir / "report.html").string();
  result.svg = (dir / "report.svg").string();
  atomic_write(result.html, html);
  atomic_write(result.svg, svg);
  return result;
}

}  // namespace moco::io
