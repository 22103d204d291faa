// Line plots as standalone SVG: the loss curves of training runs (and, later, the
// extrapolation plots). No dependencies: any browser or image viewer shows the result.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace qkv::inspect {

struct Series {
  std::string name;
  std::string color;                              // any SVG colour, e.g. "#1f77b4"
  std::vector<std::pair<double, double>> points;  // (x, y), drawn in order
  bool markers = false;                           // draw a dot at each point (for sparse series)
};

struct LinePlot {
  std::string title;
  std::string x_label;
  std::string y_label;
  std::vector<Series> series;
};

// An 800x500 SVG with axes, "nice" tick values, a legend, and one polyline per series.
// Non-finite points are skipped. A plot without points still renders (empty axes).
std::string RenderSvg(const LinePlot& plot);

}  // namespace qkv::inspect
