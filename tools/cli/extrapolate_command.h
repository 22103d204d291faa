// `qkv extrapolate`: the length-extrapolation experiment of the position lab. Trains (or
// takes) one model per position scheme on the same data, budget and seed at context L, then
// evaluates each at L, 2L, 4L, 8L (and RoPE with linear / NTK / YaRN scaling), printing a
// table and writing JSON and a plot (SVG, and PNG when rsvg-convert is installed).
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "qkv/model/model_config.h"

namespace qkv::cli {

struct ExtrapolateOptions {
  std::string data, out;
  std::vector<std::string> schemes = model::PositionEncodingNames();  // all of them
  std::vector<int64_t> multipliers = {1, 2, 4, 8};
  int64_t context = 64, layers = 4, heads = 4, dim = 128, batch = 12, steps = 600;
  int64_t eval_tokens = 32768;  // validation tokens evaluated at every length
  double lr = 1e-3;
  uint64_t seed = 1337;
  int threads = 0;
};

CLI::App* AddExtrapolateCommand(CLI::App& app, ExtrapolateOptions& options);
int RunExtrapolate(const ExtrapolateOptions& options);

}  // namespace qkv::cli
