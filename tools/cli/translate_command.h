// `qkv translate`: source lines in, one translation per line out, in input order, with an
// encoder-decoder model directory (../shared/SPEC.md §4).
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>

namespace qkv::cli {

struct TranslateCommandOptions {
  std::string model;
  std::string input;            // empty: stdin
  int64_t beam = 1;             // 1: greedy
  int64_t max_length = 0;       // decoder positions with the start token; 0: the model's
  double length_penalty = 1.0;  // beam search: score / length^A
  int64_t batch = 16;           // sentences per Translate call (speed only)
  int threads = 0;
  std::string precision = "fp32";  // or "bf16" (../shared/SPEC.md §6)
  bool stats = false;              // a JSON line of counts and speed on stderr at the end
};

CLI::App* AddTranslateCommand(CLI::App& app, TranslateCommandOptions& options);
int RunTranslate(const TranslateCommandOptions& options);

}  // namespace qkv::cli
