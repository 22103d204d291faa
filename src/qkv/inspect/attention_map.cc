#include "qkv/inspect/attention_map.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>

#include "qkv/inspect/svg_text.h"

namespace qkv::inspect {

namespace {

// Viridis, sampled at 9 points and interpolated: perceptually ordered and readable in grey.
std::string Viridis(float value) {
  static constexpr std::array<std::array<float, 3>, 9> kStops = {{{68, 1, 84},
                                                                  {71, 44, 122},
                                                                  {59, 81, 139},
                                                                  {44, 113, 142},
                                                                  {33, 144, 141},
                                                                  {39, 173, 129},
                                                                  {92, 200, 99},
                                                                  {170, 220, 50},
                                                                  {253, 231, 37}}};
  const float position = std::clamp(value, 0.0f, 1.0f) * 8.0f;
  const int low = std::min(7, static_cast<int>(position));
  const float t = position - static_cast<float>(low);
  char buffer[8];
  int rgb[3];
  for (int c = 0; c < 3; ++c) {
    rgb[c] = static_cast<int>(std::lround(kStops[low][c] * (1 - t) + kStops[low + 1][c] * t));
  }
  std::snprintf(buffer, sizeof(buffer), "#%02x%02x%02x", rgb[0], rgb[1], rgb[2]);
  return buffer;
}

std::string Num(double value) {
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "%.1f", value);
  return buffer;
}

}  // namespace

std::string VisibleToken(const std::string& token) {
  std::string out;
  for (char c : token) {
    if (c == ' ') {
      out += "\u2423";
    } else if (c == '\n') {
      out += "\u23ce";
    } else if (c == '\t') {
      out += "\u21e5";
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += '?';
    } else {
      out += c;
    }
  }
  return out.empty() ? "\u2205" : out;
}

std::string RenderAttentionSvg(const std::string& title, const std::vector<std::string>& tokens,
                               const std::vector<std::vector<std::vector<float>>>& weights) {
  return RenderAttentionSvg(title, tokens, tokens, weights);
}

std::string RenderAttentionSvg(const std::string& title,
                               const std::vector<std::string>& query_tokens,
                               const std::vector<std::string>& key_tokens,
                               const std::vector<std::vector<std::vector<float>>>& weights) {
  const int heads = static_cast<int>(weights.size());
  const int nq = static_cast<int>(query_tokens.size()), nk = static_cast<int>(key_tokens.size());
  // Cells shrink with the sequences so that a panel stays about 320 px wide.
  const double cell = std::clamp(320.0 / std::max({nq, nk, 1}), 4.0, 28.0);
  const double font = std::clamp(cell * 0.75, 5.0, 13.0);
  const double label = 12 + font * 0.62 * 6;          // room for ~6 characters of label
  const double panel_width = label + cell * nk + 24;  // labels, cells, margin
  const double panel_height = label + cell * nq + 24;
  const int columns = std::min(heads, 4);
  const int rows = (heads + columns - 1) / std::max(columns, 1);
  const double width = columns * panel_width + 130, height = rows * (panel_height + 24) + 60;

  std::string svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + Num(width) +
                    "\" height=\"" + Num(height) + "\" font-family=\"sans-serif\">\n";
  svg += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  svg += "<text x=\"12\" y=\"24\" font-size=\"16\">" + EscapeXml(title) +
         " (rows: queries, columns: keys)</text>\n";
  for (int h = 0; h < heads; ++h) {
    // The heads fill a grid of `columns` panels per row, left to right.
    const int grid_row = h / columns, grid_column = h % columns;
    const double x0 = 12 + grid_column * panel_width, y0 = 44 + grid_row * (panel_height + 24);
    const double grid_x = x0 + label, grid_y = y0 + label;
    svg += "<text x=\"" + Num(grid_x) + "\" y=\"" + Num(y0 + 12) + "\" font-size=\"13\">head " +
           std::to_string(h) + "</text>\n";
    // Row labels (queries) left of the grid; column labels (keys) above it, rotated.
    for (int i = 0; i < nq; ++i) {
      svg += "<text x=\"" + Num(grid_x - 3) + "\" y=\"" +
             Num(grid_y + cell * (i + 0.5) + font / 3) + "\" font-size=\"" + Num(font) +
             "\" text-anchor=\"end\">" + EscapeXml(VisibleToken(query_tokens[i])) + "</text>\n";
    }
    for (int j = 0; j < nk; ++j) {
      svg += "<text transform=\"translate(" + Num(grid_x + cell * (j + 0.5) + font / 3) + " " +
             Num(grid_y - 3) + ") rotate(-90)\" font-size=\"" + Num(font) + "\">" +
             EscapeXml(VisibleToken(key_tokens[j])) + "</text>\n";
    }
    for (int i = 0; i < nq; ++i) {
      for (int j = 0; j < nk; ++j) {
        const float w = weights[h][i][j];
        svg += "<rect x=\"" + Num(grid_x + cell * j) + "\" y=\"" + Num(grid_y + cell * i) +
               "\" width=\"" + Num(cell) + "\" height=\"" + Num(cell) + "\" fill=\"" +
               (w == 0.0f ? std::string("#ffffff") : Viridis(w)) + "\"><title>" +
               EscapeXml(VisibleToken(query_tokens[i]) + " \u2192 " + VisibleToken(key_tokens[j])) +
               ": " + std::to_string(w) + "</title></rect>\n";
      }
    }
    svg += "<rect x=\"" + Num(grid_x) + "\" y=\"" + Num(grid_y) + "\" width=\"" + Num(cell * nk) +
           "\" height=\"" + Num(cell * nq) + "\" fill=\"none\" stroke=\"#444\"/>\n";
  }
  // Colour bar.
  const double bar_x = width - 100, bar_y = 60, bar_h = 200;
  for (int k = 0; k < 50; ++k) {
    svg += "<rect x=\"" + Num(bar_x) + "\" y=\"" + Num(bar_y + bar_h * (49 - k) / 50) +
           "\" width=\"16\" height=\"" + Num(bar_h / 50 + 0.5) + "\" fill=\"" +
           Viridis(static_cast<float>(k) / 49) + "\"/>\n";
  }
  svg += "<text x=\"" + Num(bar_x + 20) + "\" y=\"" + Num(bar_y + 8) +
         "\" font-size=\"11\">1</text>\n<text x=\"" + Num(bar_x + 20) + "\" y=\"" +
         Num(bar_y + bar_h) + "\" font-size=\"11\">0</text>\n";
  svg += "<text x=\"" + Num(bar_x - 6) + "\" y=\"" + Num(bar_y + bar_h + 20) +
         "\" font-size=\"10\">white: exactly 0</text>\n";
  svg += "</svg>\n";
  return svg;
}

}  // namespace qkv::inspect
