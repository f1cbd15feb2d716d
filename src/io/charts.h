// Line charts as SVG fragments, for `moco report` and `moco sweep`: one or
// more series on round-numbered axes, optional error bars, a legend when
// there are several series. No scripts, no fonts to load.
//
//   io::Chart c;
//   c.title = "kNN top-1 (%)";
//   c.x_label = "epoch";
//   c.series.push_back({"m 0.99", "#1f77b4", {{0, 70.1}, {1, 74.2}}});
//   std::string svg = io::svg_document({c});   // a whole <svg> document
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace moco::io {

struct Point {
  double x = 0, y = 0;
  double y_err = 0;  // half-height of an error bar; 0: none
};

struct Series {
  std::string name;   // in the legend
  std::string color;  // any SVG colour
  std::vector<Point> points;
};

struct Chart {
  std::string title, x_label;
  std::vector<Series> series;
  // Categorical x: the points' x are 0, 1, ...; these label them.
  std::vector<std::string> x_categories;
  bool integer_x = false;  // x ticks at whole numbers only (epochs, steps)
};

// Round tick values (steps of 1, 2 or 5 times a power of ten) covering
// [lo, hi], about `count` of them.
std::vector<double> nice_ticks(double lo, double hi, int count = 5);
// A tick's label: no more digits than the step needs.
std::string tick_label(double v, double step);

// One chart, width x height, as an SVG <g> placed at (x, y).
std::string svg_chart(const Chart& chart, double x, double y, double width,
                      double height);

// Charts in a grid of `columns`, as a whole SVG document.
std::string svg_document(const std::vector<Chart>& charts, int columns = 2,
                         double chart_width = 560, double chart_height = 320);

// Points coloured by group (a 2-D embedding coloured by class).
struct ScatterPoint {
  double x = 0, y = 0;
  int64_t group = 0;  // index into Scatter::groups
};

struct Scatter {
  std::string title, x_label, y_label;
  std::vector<std::string> groups;  // legend names, coloured by palette(i)
  std::vector<ScatterPoint> points;
};

// A scatter plot with a legend, as a whole SVG document.
std::string svg_scatter(const Scatter& scatter, double width = 760,
                        double height = 560);

// A colour for the i-th series (a ten-colour qualitative palette).
const char* palette(size_t i);

// &, <, >, " escaped for SVG and HTML text.
std::string escape_xml(const std::string& s);

}  // namespace moco::io
