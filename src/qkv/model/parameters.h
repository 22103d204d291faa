// The parameters of the decoder-only language model, as views into one arena, and their list,
// built from the layers' own declarations (layers/parameter.h): the embeddings, then each
// block's ForEachBlockParameter under "blocks.<i>.", then the final norm. Allocation,
// initialisation, weight decay, gradients, optimizer moments and checkpoint layouts all walk
// ForEachParameter.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "qkv/core/arena.h"
#include "qkv/layers/parameter.h"
#include "qkv/layers/transformer_block.h"
#include "qkv/model/model_config.h"

namespace qkv::model {

using layers::ParameterInfo;
using layers::ParameterInit;

// Legend: V vocabulary, L context, C width.
template <typename T>
struct ModelParams {
  TensorView<T> token_embedding;     // (V, C), also the output head when tied
  TensorView<T> position_embedding;  // (L, C), learned positions only
  std::vector<layers::BlockParams<T>> blocks;
  layers::NormParams<T> final_norm;  // weight (C), bias (C) or empty
  TensorView<T> output_head;         // (V, C), untied models only

  // The matrix the logits are computed with: logits = final_norm_out · headᵀ.
  const TensorView<T>& head() const { return output_head.empty() ? token_embedding : output_head; }
};

// The block configuration of every layer, for sequences of seq_len tokens (which picks the
// attention kernel when config.attention is kAuto; 0: the simple kernel).
layers::BlockConfig BlockConfigFor(const ModelConfig& config, int64_t seq_len = 0);
layers::NormConfig NormConfigFor(const ModelConfig& config);

// Calls visit(const ParameterInfo&, TensorView<T>& slot) for every parameter, in a fixed
// order: "token_embedding", "position_embedding" (learned positions only), "blocks.<i>.*",
// "final_norm.*", "output_head" (untied models only).
template <typename T, typename Visitor>
void ForEachParameter(const ModelConfig& config, ModelParams<T>& params, Visitor&& visit) {
  const int64_t c = config.width;
  params.blocks.resize(static_cast<size_t>(config.num_layers));
  visit(ParameterInfo{"token_embedding", Shape{config.vocab_size, c}, true, ParameterInit::kNormal},
        params.token_embedding);
  if (config.position == PositionEncoding::kLearned) {
    visit(
        ParameterInfo{"position_embedding", Shape{config.context, c}, true, ParameterInit::kNormal},
        params.position_embedding);
  }
  const layers::BlockConfig block = BlockConfigFor(config);
  for (int64_t layer = 0; layer < config.num_layers; ++layer) {
    layers::ForEachBlockParameter(block, params.blocks[static_cast<size_t>(layer)],
                                  layers::Prefixed("blocks." + std::to_string(layer) + ".", visit));
  }
  layers::ForEachNormParameter(NormConfigFor(config), params.final_norm,
                               layers::Prefixed("final_norm.", visit));
  if (!config.tie_embeddings) {
    visit(ParameterInfo{"output_head", Shape{config.vocab_size, c}, true, ParameterInit::kNormal},
          params.output_head);
  }
}

// Views for every parameter, allocated from arena (also used for gradients and moments).
template <typename T>
ModelParams<T> AllocateModelParams(Arena& arena, const ModelConfig& config) {
  ModelParams<T> params;
  ForEachParameter(config, params, layers::AllocateFrom<T>(arena));
  return params;
}

// The number of scalars in the model.
int64_t CountParameters(const ModelConfig& config);

// Bytes an arena needs to hold one set of parameters (measured by allocating them).
size_t ParameterBytes(const ModelConfig& config, size_t element_size);

// The standard deviation (0: a constant) and constant a parameter starts from: GPT-2's
// normal(0, 0.02), with 0.02 / sqrt(2 * layers) for projections into the residual stream.
double InitStddev(const ModelConfig& config, ParameterInit init);

}  // namespace qkv::model
