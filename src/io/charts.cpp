#include "io/charts.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

namespace moco::io {

std::string escape_xml(const std::string& s) {
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

const char* palette(size_t i) {
  static const char* colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e",
                                 "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                                 "#bcbd22", "#17becf"};
  return colors[i % 10];
}

std::vector<double> nice_ticks(double lo, double hi, int count) {
  if (!(hi > lo)) hi = lo + 1;
  const double raw = (hi - lo) / std::max(1, count);
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 5.0, 10.0}) {
    if (m * mag >= raw) {
      step = m * mag;
      break;
    }
  }
  std::vector<double> ticks;
  const auto first = static_cast<int64_t>(std::floor(lo / step + 1e-9));
  const auto last = static_cast<int64_t>(std::ceil(hi / step - 1e-9));
  for (int64_t i = first; i <= last; ++i) ticks.push_back(static_cast<double>(i) * step);
  if (ticks.size() < 2) ticks.push_back(ticks.back() + step);
  return ticks;
}

std::string tick_label(double v, double step) {
  if (step != 0 && (std::fabs(step) < 1e-3 || std::fabs(v) >= 1e6)) {
    return fmt::format("{:.2g}", v);
  }
  // The fewest decimals that show the step exactly (2.5 -> 1, 0.02 -> 2).
  int decimals = 0;
  while (decimals < 8 && std::fabs(step * std::pow(10.0, decimals) -
                                   std::round(step * std::pow(10.0, decimals))) > 1e-6) {
    ++decimals;
  }
  return fmt::format("{:.{}f}", v, decimals);
}

namespace {

struct Range {
  double lo = std::numeric_limits<double>::infinity();
  double hi = -std::numeric_limits<double>::infinity();
  void add(double v) {
    if (!std::isfinite(v)) return;
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  void widen() {
    if (!std::isfinite(lo)) lo = 0, hi = 1;
    if (hi == lo) {
      // A constant: shown mid-height on a range from zero.
      const double v = lo;
      lo = v > 0 ? 0 : (v < 0 ? 2 * v : -0.5);
      hi = v > 0 ? 2 * v : (v < 0 ? 0 : 0.5);
    }
  }
};

std::string text(double x, double y, const std::string& s, int size,
                 const char* anchor = "start", const char* extra = "") {
  return fmt::format(
      "<text x=\"{:.1f}\" y=\"{:.1f}\" font-size=\"{}\" font-family=\"sans-serif\" "
      "text-anchor=\"{}\"{}>{}</text>",
      x, y, size, anchor, extra, escape_xml(s));
}

}  // namespace

namespace {

// The finite points of a line, at most about `budget` of them: past that,
// each pixel column keeps its lowest and highest point in their order, so
// a run of 10^6 steps draws the same line (spikes included) in a file of
// kilobytes, not tens of megabytes.
template <class Px>
std::vector<Point> drawn_points(const std::vector<Point>& points, const Px& px, double budget) {
  std::vector<Point> finite;
  for (const auto& p : points) {
    if (std::isfinite(p.y)) finite.push_back(p);
  }
  if (static_cast<double>(finite.size()) <= budget) return finite;
  std::vector<Point> out;
  size_t i = 0;
  while (i < finite.size()) {
    const auto column = static_cast<int64_t>(std::floor(px(finite[i].x)));
    size_t lo = i, hi = i, j = i;
    for (; j < finite.size() && static_cast<int64_t>(std::floor(px(finite[j].x))) == column; ++j) {
      if (finite[j].y < finite[lo].y) lo = j;
      if (finite[j].y > finite[hi].y) hi = j;
    }
    out.push_back(finite[std::min(lo, hi)]);
    if (lo != hi) out.push_back(finite[std::max(lo, hi)]);
    i = j;
  }
  return out;
}

}  // namespace

std::string svg_chart(const Chart& c, double ox, double oy, double w, double h) {
  const bool legend = c.series.size() > 1;
  size_t longest = 0;
  for (const auto& s : c.series) longest = std::max(longest, s.name.size());
  // Room for the legend: about 6.5 px a character at 11 px, at most half.
  const double right =
      legend ? std::min(w / 2, 40 + 6.5 * static_cast<double>(longest)) : 18;
  const double left = 64, top = 34, bottom = 46;
  Range xr, yr;
  for (const auto& s : c.series) {
    for (const auto& p : s.points) {
      xr.add(p.x);
      yr.add(p.y - p.y_err);
      yr.add(p.y + p.y_err);
    }
  }
  xr.widen();
  yr.widen();
  const auto yt = nice_ticks(yr.lo, yr.hi);
  const double y0 = std::min(yt.front(), yr.lo), y1 = std::max(yt.back(), yr.hi);
  std::vector<double> xt;
  if (!c.x_categories.empty()) {
    for (size_t i = 0; i < c.x_categories.size(); ++i) xt.push_back(static_cast<double>(i));
    xr.lo = -0.5;
    xr.hi = static_cast<double>(c.x_categories.size()) - 0.5;
  } else {
    xt = nice_ticks(xr.lo, xr.hi, 6);
    if (c.integer_x && xt.size() > 1 && xt[1] - xt[0] < 1) {
      xt.clear();
      for (double v = std::floor(xr.lo); v <= std::ceil(xr.hi); v += 1) xt.push_back(v);
    }
    xr.lo = std::min(xr.lo, xt.front());
    xr.hi = std::max(xr.hi, xt.back());
  }
  const double pw = w - left - right, ph = h - top - bottom;
  auto px = [&](double x) { return ox + left + (x - xr.lo) / (xr.hi - xr.lo) * pw; };
  auto py = [&](double y) { return oy + top + (y1 - y) / (y1 - y0) * ph; };
  std::string out = fmt::format(
      "<g class=\"chart\" data-title=\"{}\"><rect x=\"{}\" y=\"{}\" width=\"{}\" "
      "height=\"{}\" fill=\"#ffffff\" stroke=\"#cccccc\"/>",
      escape_xml(c.title), ox, oy, w, h);
  out += text(ox + left, oy + 22, c.title, 15, "start", " font-weight=\"bold\"");
  const double ystep = yt.size() > 1 ? yt[1] - yt[0] : 1;
  for (double v : yt) {
    if (v < y0 - 1e-12 || v > y1 + 1e-12) continue;
    out += fmt::format("<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" "
                       "stroke=\"#eeeeee\"/>",
                       px(xr.lo), py(v), px(xr.hi), py(v));
    out += text(ox + left - 6, py(v) + 4, tick_label(v, ystep), 11, "end");
  }
  const double xstep = xt.size() > 1 ? xt[1] - xt[0] : 1;
  for (size_t i = 0; i < xt.size(); ++i) {
    const double v = xt[i];
    const std::string label =
        c.x_categories.empty() ? tick_label(v, xstep) : c.x_categories[i];
    out += text(px(v), oy + h - bottom + 16, label, 11, "middle");
  }
  out += fmt::format(
      "<line x1=\"{0:.1f}\" y1=\"{1:.1f}\" x2=\"{2:.1f}\" y2=\"{1:.1f}\" stroke=\"#333333\"/>"
      "<line x1=\"{0:.1f}\" y1=\"{3:.1f}\" x2=\"{0:.1f}\" y2=\"{1:.1f}\" stroke=\"#333333\"/>",
      px(xr.lo), py(y0), px(xr.hi), py(y1));
  out += text(ox + left + pw / 2, oy + h - 10, c.x_label, 12, "middle");
  for (size_t si = 0; si < c.series.size(); ++si) {
    const auto& s = c.series[si];
    std::string pts;
    for (const auto& p : drawn_points(s.points, px, 2 * pw)) {
      pts += fmt::format("{:.2f},{:.2f} ", px(p.x), py(p.y));
    }
    out += fmt::format("<polyline class=\"series\" points=\"{}\" fill=\"none\" "
                       "stroke=\"{}\" stroke-width=\"2.5\"/>",
                       pts, s.color);
    for (const auto& p : s.points) {
      if (!std::isfinite(p.y)) continue;
      if (p.y_err > 0) {
        out += fmt::format("<line x1=\"{0:.2f}\" y1=\"{1:.2f}\" x2=\"{0:.2f}\" "
                           "y2=\"{2:.2f}\" stroke=\"{3}\" stroke-width=\"1.5\"/>",
                           px(p.x), py(p.y - p.y_err), py(p.y + p.y_err), s.color);
      }
      if (s.points.size() <= 40) {
        out += fmt::format("<circle cx=\"{:.2f}\" cy=\"{:.2f}\" r=\"3.5\" fill=\"{}\"/>",
                           px(p.x), py(p.y), s.color);
      }
    }
    if (legend) {
      const double ly = oy + top + 8 + 18 * static_cast<double>(si);
      out += fmt::format("<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"14\" height=\"4\" "
                         "fill=\"{}\"/>",
                         ox + w - right + 10, ly - 4, s.color);
      out += text(ox + w - right + 30, ly + 1, s.name, 11);
    }
  }
  out += "</g>";
  return out;
}

std::string svg_scatter(const Scatter& c, double w, double h) {
  size_t longest = 0;
  for (const auto& g : c.groups) longest = std::max(longest, g.size());
  const double right = std::min(w / 3, 40 + 6.5 * static_cast<double>(longest));
  const double left = 64, top = 34, bottom = 46;
  Range xr, yr;
  for (const auto& p : c.points) {
    xr.add(p.x);
    yr.add(p.y);
  }
  xr.widen();
  yr.widen();
  const auto xt = nice_ticks(xr.lo, xr.hi, 6), yt = nice_ticks(yr.lo, yr.hi);
  const double x0 = std::min(xt.front(), xr.lo), x1 = std::max(xt.back(), xr.hi);
  const double y0 = std::min(yt.front(), yr.lo), y1 = std::max(yt.back(), yr.hi);
  const double pw = w - left - right, ph = h - top - bottom;
  auto px = [&](double x) { return left + (x - x0) / (x1 - x0) * pw; };
  auto py = [&](double y) { return top + (y1 - y) / (y1 - y0) * ph; };
  std::string out = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"scatter\" width=\"{0}\" "
      "height=\"{1}\" viewBox=\"0 0 {0} {1}\"><rect width=\"100%\" height=\"100%\" "
      "fill=\"#ffffff\" stroke=\"#cccccc\"/>",
      w, h);
  out += text(left, 22, c.title, 15, "start", " font-weight=\"bold\"");
  const double ys = yt.size() > 1 ? yt[1] - yt[0] : 1, xs = xt.size() > 1 ? xt[1] - xt[0] : 1;
  for (double v : yt) {
    out += fmt::format("<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" "
                       "stroke=\"#eeeeee\"/>",
                       px(x0), py(v), px(x1), py(v));
    out += text(left - 6, py(v) + 4, tick_label(v, ys), 11, "end");
  }
  for (double v : xt) out += text(px(v), h - bottom + 16, tick_label(v, xs), 11, "middle");
  out += fmt::format(
      "<line x1=\"{0:.1f}\" y1=\"{1:.1f}\" x2=\"{2:.1f}\" y2=\"{1:.1f}\" stroke=\"#333333\"/>"
      "<line x1=\"{0:.1f}\" y1=\"{3:.1f}\" x2=\"{0:.1f}\" y2=\"{1:.1f}\" stroke=\"#333333\"/>",
      px(x0), py(y0), px(x1), py(y1));
  out += text(left + pw / 2, h - 10, c.x_label, 12, "middle");
  out += text(16, top + ph / 2, c.y_label, 12, "middle",
              fmt::format(" transform=\"rotate(-90 16 {:.1f})\"", top + ph / 2).c_str());
  for (const auto& p : c.points) {
    if (!std::isfinite(p.x) || !std::isfinite(p.y)) continue;
    out += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"2.5\" fill=\"{}\" "
                       "fill-opacity=\"0.75\"/>",
                       px(p.x), py(p.y), palette(static_cast<size_t>(std::max<int64_t>(p.group, 0))));
  }
  for (size_t g = 0; g < c.groups.size(); ++g) {
    const double ly = top + 8 + 18 * static_cast<double>(g);
    out += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"5\" fill=\"{}\"/>",
                       w - right + 16, ly - 3, palette(g));
    out += text(w - right + 28, ly + 1, c.groups[g], 11);
  }
  return out + "</svg>\n";
}

std::string svg_document(const std::vector<Chart>& charts, int columns,
                         double cw, double ch) {
  const int cols = std::max(1, std::min<int>(columns, static_cast<int>(charts.size())));
  const int rows = static_cast<int>((charts.size() + cols - 1) / cols);
  const double gap = 10;
  const double W = cols * (cw + gap) + gap, H = rows * (ch + gap) + gap;
  std::string svg = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" "
      "viewBox=\"0 0 {0} {1}\"><rect width=\"100%\" height=\"100%\" "
      "fill=\"#fafafa\"/>",
      W, H);
  for (size_t i = 0; i < charts.size(); ++i) {
    svg += svg_chart(charts[i], gap + static_cast<double>(i % cols) * (cw + gap),
                     gap + static_cast<double>(i / cols) * (ch + gap), cw, ch);
  }
  return svg + "</svg>\n";
}

}  // namespace moco::io
