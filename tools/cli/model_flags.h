// The flags that describe a model, each declared once, with the names they accept taken from
// model/model_config.h's tables: the model `qkv train` creates (--layers ... --rope-style; some
// also in `qkv extrapolate` and `qkv demo`), --rope-scaling / --rope-factor for the commands that
// run a model past its training context (train, eval, sample), and --attention (train, eval).
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "qkv/model/model_config.h"

namespace qkv::cli {

// --rope-scaling / --rope-factor: run a RoPE model past its training context by position
// interpolation, NTK-aware base scaling (static or dynamic), YaRN or Llama 3's rule
// (ops/rope.h).
struct RopeScalingFlags {
  std::string scaling = "none";  // one of model::RopeScalingNames()
  double factor = 1.0;
};

// The model `qkv train` creates; every name is one of its concept's names in model_config.h.
struct ModelFlags {
  int64_t layers = 4, heads = 4, dim = 128, ffn_dim = 0, context = 64;
  int64_t kv_heads = 0;  // 0: --heads (multi-head attention)
  int64_t head_dim = 0;  // 0: --dim / --heads
  bool tie_embeddings = true;
  std::string position = "learned", norm = "layernorm", ffn = "gelu-tanh", norm_placement = "pre",
              rope_style = "half";
  double rope_theta = 10000.0;
  RopeScalingFlags rope_scaling;  // e.g. to train at a longer context than a model was made for
  bool bias = true;
  float dropout = 0.0f;
};

// Every flag of ModelFlags, in the group "Model" of --help.
void AddModelFlags(CLI::App* command, ModelFlags& flags);

// Single flags, for the commands that take only some of them; each returns its option (for the
// caller to put in a group).
CLI::Option* AddLayersFlag(CLI::App* command, int64_t& layers);
CLI::Option* AddHeadsFlag(CLI::App* command, int64_t& heads);
CLI::Option* AddDimFlag(CLI::App* command, int64_t& dim);
// --pos, accepting `names`: model::PositionEncodingNames(), or a subset of it in its order.
CLI::Option* AddPositionFlag(CLI::App* command, std::string& position,
                             const std::vector<std::string>& names);
void AddRopeScalingFlags(CLI::App* command, RopeScalingFlags& flags);
CLI::Option* AddAttentionFlag(CLI::App* command, std::string& attention);

// "" when the heads fit: --heads divides --dim unless --head-dim is given, --kv-heads divides
// --heads, and (when `rope_flag` is given: the flag and value that asked for RoPE, e.g.
// "--pos rope") the head size is even; otherwise what is wrong, naming the flags.
std::string ShapeProblem(int64_t dim, int64_t heads, const char* rope_flag = nullptr,
                         int64_t head_dim = 0, int64_t kv_heads = 0);

// The configuration the flags describe, for a vocabulary of vocab_size tokens. Throws
// UsageError when it is not valid (e.g. --dim not divisible by --heads).
model::ModelConfig ConfigFromFlags(const ModelFlags& flags, int64_t vocab_size);

// Applies the flags to config (of a loaded model). Throws UsageError when scaling is asked of
// a model without RoPE, or when a factor is given without a scaling method.
void ApplyRopeScaling(const RopeScalingFlags& flags, model::ModelConfig& config);

}  // namespace qkv::cli
