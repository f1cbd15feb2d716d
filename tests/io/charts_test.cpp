// Chart axes with round ticks, legends and error bars, checked on the SVG.
#include "io/charts.h"

#include "../support.h"

namespace moco::io {
namespace {

TEST(Charts, TicksAreRoundAndCoverTheRange) {
  EXPECT_EQ(nice_ticks(0, 10, 5), (std::vector<double>{0, 2, 4, 6, 8, 10}));
  const auto t = nice_ticks(0.0017, 0.0603, 5);
  EXPECT_DOUBLE_EQ(t.front(), 0.0);
  EXPECT_GE(t.back(), 0.0603);
  EXPECT_NEAR(t[1] - t[0], 0.02, 1e-12);
  EXPECT_EQ(tick_label(0.04, 0.02), "0.04");
  EXPECT_EQ(tick_label(70, 5), "70");
  EXPECT_EQ(tick_label(72.5, 2.5), "72.5");
}

TEST(Charts, SeveralSeriesGetALegendAndErrorBars) {
  Chart c;
  c.title = "kNN";
  c.x_label = "--moco-m";
  c.x_categories = {"0", "0.9", "0.99"};
  c.series.push_back({"a", palette(0), {{0, 50, 2}, {1, 70, 0}, {2, 75, 1}}});
  c.series.push_back({"b", palette(1), {{0, 40}, {1, 60}, {2, 65}}});
  const auto svg = svg_document({c});
  size_t lines = 0;
  for (size_t p = 0; (p = svg.find("<polyline", p)) != std::string::npos; ++p) ++lines;
  EXPECT_EQ(lines, 2u);
  EXPECT_NE(svg.find(">0.99</text>"), std::string::npos);  // category labels
  EXPECT_NE(svg.find(">a</text>"), std::string::npos);     // legend
  // Two error bars (y_err > 0) drawn as vertical lines in the first colour.
  size_t bars = 0;
  for (size_t p = 0; (p = svg.find("stroke-width=\"1.5\"", p)) != std::string::npos; ++p) ++bars;
  EXPECT_EQ(bars, 2u);
  EXPECT_EQ(escape_xml("a<b & \"c\""), "a&lt;b &amp; &quot;c&quot;");
}

}  // namespace
}  // namespace moco::io
