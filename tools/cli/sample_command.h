// `qkv sample`: loads a model directory and streams generated text to stdout
// (../shared/SPEC.md §1).
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>

#include "tools/cli/model_flags.h"

namespace qkv::cli {

struct SampleCommandOptions {
  std::string model, prompt;
  int64_t tokens = 200;
  double temperature = 0.8;
  int64_t top_k = 0;   // 0: off
  double top_p = 1.0;  // 1: off
  uint64_t seed = 1337;
  int threads = 1;                 // small models decode fastest on one thread; 0: every core
  std::string precision = "fp32";  // or "bf16": decode with bfloat16 copies of the weights
  RopeScalingFlags rope_scaling;
};

CLI::App* AddSampleCommand(CLI::App& app, SampleCommandOptions& options);
int RunSample(const SampleCommandOptions& options);

}  // namespace qkv::cli
