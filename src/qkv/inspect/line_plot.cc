#include "qkv/inspect/line_plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "qkv/inspect/svg_text.h"

namespace qkv::inspect {

namespace {

constexpr double kWidth = 800, kHeight = 500;
constexpr double kLeft = 80, kRight = 30, kTop = 50, kBottom = 60;

std::string Number(double value) {
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "%.1f", value);
  return buffer;
}

std::string TickLabel(double value, double step) {
  char buffer[32];
  const int decimals = step >= 1 ? 0 : static_cast<int>(std::ceil(-std::log10(step)));
  std::snprintf(buffer, sizeof(buffer), "%.*f", decimals, value);
  return buffer;
}

// A step of 1, 2 or 5 times a power of ten giving about `target` ticks over [low, high].
double NiceStep(double low, double high, int target) {
  const double raw = (high - low) / target;
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  for (double multiple : {1.0, 2.0, 5.0, 10.0}) {
    if (raw <= multiple * magnitude) return multiple * magnitude;
  }
  return 10 * magnitude;
}

}  // namespace

std::string RenderSvg(const LinePlot& plot) {
  double x_min = std::numeric_limits<double>::infinity(), x_max = -x_min;
  double y_min = x_min, y_max = -x_min;
  for (const Series& series : plot.series) {
    for (const auto& [x, y] : series.points) {
      if (!std::isfinite(x) || !std::isfinite(y)) continue;
      x_min = std::min(x_min, x);
      x_max = std::max(x_max, x);
      y_min = std::min(y_min, y);
      y_max = std::max(y_max, y);
    }
  }
  if (!std::isfinite(x_min)) x_min = 0, x_max = 1, y_min = 0, y_max = 1;
  if (x_max == x_min) x_max = x_min + 1;
  if (y_max == y_min) y_max = y_min + 1;
  const double y_pad = 0.05 * (y_max - y_min);
  y_min -= y_pad;
  y_max += y_pad;
  const double x_step = NiceStep(x_min, x_max, 8), y_step = NiceStep(y_min, y_max, 6);
  x_min = std::floor(x_min / x_step) * x_step;
  x_max = std::ceil(x_max / x_step) * x_step;
  y_min = std::floor(y_min / y_step) * y_step;
  y_max = std::ceil(y_max / y_step) * y_step;

  const double plot_width = kWidth - kLeft - kRight, plot_height = kHeight - kTop - kBottom;
  auto to_x = [&](double x) { return kLeft + (x - x_min) / (x_max - x_min) * plot_width; };
  auto to_y = [&](double y) { return kTop + (y_max - y) / (y_max - y_min) * plot_height; };

  std::string svg =
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"800\" height=\"500\" "
      "viewBox=\"0 0 800 500\" font-family=\"sans-serif\" font-size=\"13\">\n"
      "<rect width=\"800\" height=\"500\" fill=\"white\"/>\n";
  svg += "<text x=\"400\" y=\"28\" text-anchor=\"middle\" font-size=\"17\">" +
         EscapeXml(plot.title) + "</text>\n";
  // Grid and tick labels.
  for (double x = x_min; x <= x_max + x_step / 2; x += x_step) {
    svg += "<line x1=\"" + Number(to_x(x)) + "\" y1=\"" + Number(kTop) + "\" x2=\"" +
           Number(to_x(x)) + "\" y2=\"" + Number(kTop + plot_height) + "\" stroke=\"#e5e5e5\"/>\n";
    svg += "<text x=\"" + Number(to_x(x)) + "\" y=\"" + Number(kTop + plot_height + 18) +
           "\" text-anchor=\"middle\">" + TickLabel(x, x_step) + "</text>\n";
  }
  for (double y = y_min; y <= y_max + y_step / 2; y += y_step) {
    svg += "<line x1=\"" + Number(kLeft) + "\" y1=\"" + Number(to_y(y)) + "\" x2=\"" +
           Number(kLeft + plot_width) + "\" y2=\"" + Number(to_y(y)) + "\" stroke=\"#e5e5e5\"/>\n";
    svg += "<text x=\"" + Number(kLeft - 8) + "\" y=\"" + Number(to_y(y) + 4) +
           "\" text-anchor=\"end\">" + TickLabel(y, y_step) + "</text>\n";
  }
  svg += "<rect x=\"" + Number(kLeft) + "\" y=\"" + Number(kTop) + "\" width=\"" +
         Number(plot_width) + "\" height=\"" + Number(plot_height) +
         "\" fill=\"none\" stroke=\"#333\"/>\n";
  svg += "<text x=\"" + Number(kLeft + plot_width / 2) + "\" y=\"" + Number(kHeight - 15) +
         "\" text-anchor=\"middle\">" + EscapeXml(plot.x_label) + "</text>\n";
  svg += "<text transform=\"translate(20 " + Number(kTop + plot_height / 2) +
         ") rotate(-90)\" text-anchor=\"middle\">" + EscapeXml(plot.y_label) + "</text>\n";

  for (const Series& series : plot.series) {
    std::string points;
    for (const auto& [x, y] : series.points) {
      if (!std::isfinite(x) || !std::isfinite(y)) continue;
      points += Number(to_x(x)) + "," + Number(to_y(y)) + " ";
    }
    if (points.empty()) continue;
    svg += "<polyline fill=\"none\" stroke-width=\"1.8\" stroke=\"" + EscapeXml(series.color) +
           "\" points=\"" + points + "\"/>\n";
    if (series.markers) {
      for (const auto& [x, y] : series.points) {
        if (!std::isfinite(x) || !std::isfinite(y)) continue;
        svg += "<circle r=\"3\" fill=\"" + EscapeXml(series.color) + "\" cx=\"" + Number(to_x(x)) +
               "\" cy=\"" + Number(to_y(y)) + "\"/>\n";
      }
    }
  }
  // Legend, top right inside the plot.
  double legend_y = kTop + 18;
  for (const Series& series : plot.series) {
    const double x = kLeft + plot_width - 150;
    svg += "<line x1=\"" + Number(x) + "\" y1=\"" + Number(legend_y - 4) + "\" x2=\"" +
           Number(x + 24) + "\" y2=\"" + Number(legend_y - 4) + "\" stroke-width=\"3\" stroke=\"" +
           EscapeXml(series.color) + "\"/>\n";
    svg += "<text x=\"" + Number(x + 30) + "\" y=\"" + Number(legend_y) + "\">" +
           EscapeXml(series.name) + "</text>\n";
    legend_y += 20;
  }
  svg += "</svg>\n";
  return svg;
}

}  // namespace qkv::inspect
