// `qkv info DIR`: what a model directory holds, without running the model: architecture,
// layout, parameter count by part, context, positions, tokenizer, dtype of the weights, the
// training step and checkpoints, and the size of every file.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

namespace qkv::cli {

struct InfoOptions {
  std::string model;
  bool json = false;
};

CLI::App* AddInfoCommand(CLI::App& app, InfoOptions& options);
int RunInfo(const InfoOptions& options);

}  // namespace qkv::cli
