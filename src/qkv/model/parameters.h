// The parameters of a model, as views into one arena, and the single list that names them.
//
// ForEachParameter is the only place where the model's tensors are enumerated: allocation,
// initialisation, weight decay, gradients, optimizer moments and checkpoint I/O all walk it,
// so no second list can drift out of sync.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "qkv/core/arena.h"
#include "qkv/layers/self_attention.h"
#include "qkv/model/model_config.h"

namespace qkv::model {

// Legend: V vocabulary, L context, C width, F feed-forward size (2F rows for SwiGLU).
template <typename T>
struct BlockParams {
  TensorView<T> norm1_weight;                // (C)       h.{i}.ln_1.weight
  TensorView<T> norm1_bias;                  // (C)/empty h.{i}.ln_1.bias (LayerNorm with bias only)
  layers::SelfAttentionParams<T> attention;  // h.{i}.attn.c_attn.*, h.{i}.attn.c_proj.*
  TensorView<T> norm2_weight;                // (C)
  TensorView<T> norm2_bias;                  // (C)/empty
  TensorView<T> ffn_up_weight;    // (F, C), or (2F, C) for SwiGLU: rows [0,F) gate, [F,2F) up
  TensorView<T> ffn_up_bias;      // (F) / (2F) / empty
  TensorView<T> ffn_down_weight;  // (C, F)
  TensorView<T> ffn_down_bias;    // (C) / empty
};

template <typename T>
struct ModelParams {
  TensorView<T> token_embedding;     // (V, C) wte.weight, also the output head (tied)
  TensorView<T> position_embedding;  // (L, C) wpe.weight, learned positions only
  std::vector<BlockParams<T>> blocks;
  TensorView<T> final_norm_weight;  // (C) ln_f.weight
  TensorView<T> final_norm_bias;    // (C) ln_f.bias / empty
};

// How a parameter is stored and treated.
struct ParameterInfo {
  std::string name;  // Hugging Face GPT-2 name, without the "transformer." prefix
  Shape shape;       // qkv's layout: linear weights are (out_features, in_features)
  // GPT-2 stores Conv1D weights as (in, out): transpose when reading or writing checkpoints.
  bool stored_transposed = false;
  bool decayed = false;        // AdamW weight decay applies (matrices, as nanoGPT)
  double init_stddev = 0.0;    // normal(0, init_stddev) at initialisation, unless...
  double init_constant = 0.0;  // ...init_stddev is 0: filled with this constant
};

// Calls visit(const ParameterInfo&, TensorView<T>& slot) for every parameter, in a fixed order.
template <typename T, typename Visitor>
void ForEachParameter(const ModelConfig& config, ModelParams<T>& params, Visitor&& visit) {
  const int64_t c = config.width, f = config.ffn_hidden();
  const int64_t up_rows = config.ffn == FfnKind::kSwiGlu ? 2 * f : f;
  const bool norm_bias = config.norm == NormKind::kLayerNorm && config.bias;
  const double stddev = 0.02;
  // GPT-2 scales the init of the projections that write into the residual stream by
  // 1/sqrt(2 * layers), so the stream's variance does not grow with depth.
  const double residual_stddev = 0.02 / std::sqrt(2.0 * static_cast<double>(config.num_layers));

  params.blocks.resize(config.num_layers);
  visit(ParameterInfo{"wte.weight", Shape{config.vocab_size, c}, false, true, stddev, 0},
        params.token_embedding);
  if (config.position == PositionEncoding::kLearned) {
    visit(ParameterInfo{"wpe.weight", Shape{config.context, c}, false, true, stddev, 0},
          params.position_embedding);
  }
  for (int64_t layer = 0; layer < config.num_layers; ++layer) {
    BlockParams<T>& block = params.blocks[layer];
    const std::string prefix = "h." + std::to_string(layer) + ".";
    visit(ParameterInfo{prefix + "ln_1.weight", Shape{c}, false, false, 0, 1}, block.norm1_weight);
    if (norm_bias) {
      visit(ParameterInfo{prefix + "ln_1.bias", Shape{c}, false, false, 0, 0}, block.norm1_bias);
    }
    visit(ParameterInfo{prefix + "attn.c_attn.weight", Shape{3 * c, c}, true, true, stddev, 0},
          block.attention.qkv_weight);
    if (config.bias) {
      visit(ParameterInfo{prefix + "attn.c_attn.bias", Shape{3 * c}, false, false, 0, 0},
            block.attention.qkv_bias);
    }
    visit(ParameterInfo{prefix + "attn.c_proj.weight", Shape{c, c}, true, true, residual_stddev, 0},
          block.attention.out_weight);
    if (config.bias) {
      visit(ParameterInfo{prefix + "attn.c_proj.bias", Shape{c}, false, false, 0, 0},
            block.attention.out_bias);
    }
    visit(ParameterInfo{prefix + "ln_2.weight", Shape{c}, false, false, 0, 1}, block.norm2_weight);
    if (norm_bias) {
      visit(ParameterInfo{prefix + "ln_2.bias", Shape{c}, false, false, 0, 0}, block.norm2_bias);
    }
    visit(ParameterInfo{prefix + "mlp.c_fc.weight", Shape{up_rows, c}, true, true, stddev, 0},
          block.ffn_up_weight);
    if (config.bias) {
      visit(ParameterInfo{prefix + "mlp.c_fc.bias", Shape{up_rows}, false, false, 0, 0},
            block.ffn_up_bias);
    }
    visit(ParameterInfo{prefix + "mlp.c_proj.weight", Shape{c, f}, true, true, residual_stddev, 0},
          block.ffn_down_weight);
    if (config.bias) {
      visit(ParameterInfo{prefix + "mlp.c_proj.bias", Shape{c}, false, false, 0, 0},
            block.ffn_down_bias);
    }
  }
  visit(ParameterInfo{"ln_f.weight", Shape{c}, false, false, 0, 1}, params.final_norm_weight);
  if (norm_bias) {
    visit(ParameterInfo{"ln_f.bias", Shape{c}, false, false, 0, 0}, params.final_norm_bias);
  }
}

// Views for every parameter, allocated from arena (also used for gradients and moments).
template <typename T>
ModelParams<T> AllocateModelParams(Arena& arena, const ModelConfig& config) {
  ModelParams<T> params;
  ForEachParameter(config, params, [&](const ParameterInfo& info, TensorView<T>& slot) {
    slot = arena.Allocate<T>(info.shape);
  });
  return params;
}

// The number of scalars in the model.
int64_t CountParameters(const ModelConfig& config);

// Bytes an arena needs to hold one set of parameters.
size_t ParameterBytes(const ModelConfig& config, size_t element_size);

}  // namespace qkv::model
