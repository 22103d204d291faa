// `qkv tokenize`: text on stdin to token ids on stdout, or ids back to text with --decode.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

namespace qkv::cli {

struct TokenizeOptions {
  std::string model_dir;    // --model: a model directory whose config.json names the tokenizer
  std::string vocab_path;   // --vocab: GPT-2's encoder.json (vocab.json)
  std::string merges_path;  // --merges: GPT-2's vocab.bpe (merges.txt)
  bool decode = false;
  bool allow_special = false;
};

CLI::App* AddTokenizeCommand(CLI::App& app, TokenizeOptions& options);
// Throws UsageError unless exactly one of --model and --vocab/--merges is given.
int RunTokenize(const TokenizeOptions& options);

}  // namespace qkv::cli
