// `qkv attention`: the attention weights of every layer and head of a model for a text, as
// heatmaps (SVG per layer, PNG too when rsvg-convert is installed) and as JSON, and the
// attention explorer (one HTML page, docs/attention.md).
#pragma once

#include <CLI/CLI.hpp>
#include <string>

namespace qkv::cli {

struct AttentionMapOptions {
  std::string model, text;
  std::string out;   // empty: "attention", unless only --html was given
  std::string html;  // empty: no explorer page
  int threads = 0;
};

CLI::App* AddAttentionMapCommand(CLI::App& app, AttentionMapOptions& options);
int RunAttentionMap(const AttentionMapOptions& options);

}  // namespace qkv::cli
