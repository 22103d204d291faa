// --attention auto|simple|flash, shared by the commands that run whole sequences (train,
// eval): which attention kernel the model uses (model/model_config.h AttentionImpl). A run-time
// choice, never saved in the model directory.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

#include "qkv/model/model_config.h"

namespace qkv::cli {

inline void AddAttentionFlag(CLI::App* command, std::string& value) {
  command
      ->add_option("--attention", value,
                   "Attention kernel: simple (stores the T x T probabilities), flash (tiled, "
                   "memory linear in T), auto (flash from " +
                       std::to_string(model::kFlashAttentionFromLength) + " tokens on)")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "simple", "flash"}));
}

}  // namespace qkv::cli
