// --rope-scaling / --rope-factor, shared by the commands that run a trained model (eval,
// sample): run a RoPE model past its training context by position interpolation, NTK-aware
// base scaling or YaRN (ops/rope.h).
#pragma once

#include <CLI/CLI.hpp>
#include <string>

#include "qkv/model/model_config.h"

namespace qkv::cli {

struct RopeScalingFlags {
  std::string scaling = "none";  // none | linear | ntk | yarn
  double factor = 1.0;
};

void AddRopeScalingFlags(CLI::App* command, RopeScalingFlags& flags);

// Applies the flags to config (of a loaded model). Throws UsageError when scaling is asked of
// a model without RoPE, or when a factor is given without a scaling method.
void ApplyRopeScaling(const RopeScalingFlags& flags, model::ModelConfig& config);

}  // namespace qkv::cli
