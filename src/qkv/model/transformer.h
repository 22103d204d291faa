// The decoder-only Transformer language model: forward and backward over a batch of token
// windows.
//
//   x_0 = wte[tokens] (+ wpe[t] | + sinusoidal PE[t]);  dropout
//   block l: x' = Block_l(x)  (layers/transformer_block.h: pre- or post-norm)
//   logits = N_f(x_L) · wteᵀ  (the output head is tied to the embedding);  loss = CE(logits, y)
//
// Legend: B batch, T sequence length (<= context), C width, F feed-forward size, V vocabulary.
// Parameters, gradients and activations live in arenas the caller owns; nothing is allocated
// inside a step except scratch from ctx.scratch, which is given back before returning.
#pragma once

#include <cstdint>
#include <vector>

#include "qkv/core/random.h"
#include "qkv/layers/self_attention.h"
#include "qkv/model/model_config.h"
#include "qkv/model/parameters.h"
#include "qkv/runtime/execution_context.h"

namespace qkv::model {

// The self-attention settings of every block: causal, bias, RoPE or ALiBi per config, and the
// attention kernel config.attention resolves to for sequences of seq_len tokens (kAuto:
// flash from kFlashAttentionFromLength on; seq_len 0: the simple kernel).
layers::SelfAttentionConfig SelfAttentionConfigFor(const ModelConfig& config, int64_t seq_len = 0);

template <typename T>
struct ModelActivations {
  int64_t batch = 0, seq_len = 0;
  // The blocks' configuration at this sequence length (its attention kernel decides what
  // the attention activations hold), resolved once.
  layers::BlockConfig block_config;
  TensorView<T> sinusoidal_table;      // (T, C), sinusoidal positions only
  std::vector<TensorView<T>> stream;   // L + 1 views of (B, T, C): block inputs, then x_L
  TensorView<uint8_t> embedding_keep;  // (B, T, C) dropout mask of x_0
  std::vector<layers::BlockActivations<T>> blocks;  // L
  TensorView<T> final_norm_out;                     // (B*T, C)
  layers::NormSaved<T> final_norm;                  // (B*T) each
  TensorView<T> logits;                             // (B*T, V); backward turns it into d_logits
  TensorView<T> logsumexp;                          // (B*T)
};

template <typename T>
ModelActivations<T> AllocateModelActivations(Arena& arena, const ModelConfig& config, int64_t batch,
                                             int64_t seq_len);

// Bytes ctx.scratch needs for ModelBackward (and ModelForward) at this size and thread count,
// measured from the allocation code of each piece (layers/transformer_block.h).
size_t ModelScratchBytes(const ModelConfig& config, int64_t batch, int64_t seq_len, int num_threads,
                         size_t element_size);

// Bytes ctx.scratch needs for ModelForward alone (evaluation): only the flash kernel's tiles.
size_t ModelForwardScratchBytes(const ModelConfig& config, int64_t batch, int64_t seq_len,
                                int num_threads, size_t element_size);

// tokens, targets: (B, T) with T <= context; targets may be empty (logits only; returns 0).
// Targets equal to ops::kDefaultIgnoreIndex are not counted. dropout_random is used only when
// config.dropout > 0 and training is true. Returns the mean cross-entropy.
template <typename T>
T ModelForward(const ModelConfig& config, const ModelParams<T>& params,
               ConstTensorView<int32_t> tokens, ConstTensorView<int32_t> targets, bool training,
               Random* dropout_random, const ModelActivations<T>& acts,
               const ExecutionContext& ctx);

// Accumulates every parameter gradient (+=) for d(loss_scale * loss). Needs the activations of
// the ModelForward call with targets just before; overwrites acts.logits with d_logits.
template <typename T>
void ModelBackward(const ModelConfig& config, const ModelParams<T>& params,
                   ConstTensorView<int32_t> tokens, ConstTensorView<int32_t> targets, T loss_scale,
                   const ModelActivations<T>& acts, const ModelParams<T>& grads,
                   const ExecutionContext& ctx);

// Fills params with GPT-2's initialisation (model/parameters.h, InitStddev) from random.
template <typename T>
void InitializeParameters(const ModelConfig& config, ModelParams<T>& params, Random& random);

}  // namespace qkv::model
