// `qkv attention`: the attention weights of every layer and head of a model for a text, as
// heatmaps (SVG per layer, PNG too when rsvg-convert is installed) and as JSON, and the
// attention explorer (one HTML page, docs/attention.md). For an encoder-decoder
// (--source, --target): the encoder's self-attention over the source, the decoder's causal
// self-attention over [start] + target, and the decoder's cross-attention (rows: the decoder's
// positions, columns: the source's) of every layer and head (../shared/SPEC.md §4).
#pragma once

#include <CLI/CLI.hpp>
#include <string>

namespace qkv::cli {

struct AttentionMapOptions {
  std::string model, text;
  std::string source, target;  // encoder-decoders instead of text
  std::string out;             // empty: "attention", unless only --html was given
  std::string html;            // empty: no explorer page
  int threads = 0;
};

CLI::App* AddAttentionMapCommand(CLI::App& app, AttentionMapOptions& options);
int RunAttentionMap(const AttentionMapOptions& options);

}  // namespace qkv::cli
