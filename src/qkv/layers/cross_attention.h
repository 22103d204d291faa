// Multi-head cross-attention, as in an encoder-decoder Transformer's decoder: queries come
// from the decoder sequence x (B, Tq, C), keys and values from another sequence, the memory
// (B, Tk, C), whose length may differ:
//   q = x · W_qᵀ + b_q;  [k v] = memory · W_kvᵀ + b_kv;  a = Attention(q, k, v);
//   y = a · W_outᵀ + b_out.
// Padding keys of the memory are masked with key_padding (B, Tk). No causal mask and no RoPE:
// the two sequences have unrelated positions. With the flash kernel, trailing padding keys of a
// source are never visited (ops/flash_attention.h), and nothing grows as Tq·Tk.
#pragma once

#include <cstdint>
#include <span>

#include "qkv/core/arena.h"
#include "qkv/layers/attention_kernel.h"
#include "qkv/layers/parameter.h"
#include "qkv/ops/attention.h"
#include "qkv/runtime/execution_context.h"

namespace qkv::layers {

struct CrossAttentionConfig {
  int64_t width = 0;      // C, > 0
  int64_t num_heads = 0;  // H, > 0, divides C
  bool bias = true;
  AttentionKernel kernel = AttentionKernel::kSimple;
  void Validate() const;
};

template <typename T>
struct CrossAttentionParams {
  TensorView<T> q_weight;    // (C, C)
  TensorView<T> q_bias;      // (C) or empty
  TensorView<T> kv_weight;   // (2C, C): rows [0,C) make k, [C,2C) v
  TensorView<T> kv_bias;     // (2C) or empty
  TensorView<T> out_weight;  // (C, C)
  TensorView<T> out_bias;    // (C) or empty
};

// "q.weight", "q.bias", "kv.weight", "kv.bias", "out.weight", "out.bias".
template <typename T, typename Visitor>
void ForEachCrossAttentionParameter(const CrossAttentionConfig& config,
                                    CrossAttentionParams<T>& params, Visitor&& visit) {
  const int64_t c = config.width;
  visit(ParameterInfo{"q.weight", Shape{c, c}, true, ParameterInit::kNormal}, params.q_weight);
  if (config.bias) {
    visit(ParameterInfo{"q.bias", Shape{c}, false, ParameterInit::kZeros}, params.q_bias);
  }
  visit(ParameterInfo{"kv.weight", Shape{2 * c, c}, true, ParameterInit::kNormal},
        params.kv_weight);
  if (config.bias) {
    visit(ParameterInfo{"kv.bias", Shape{2 * c}, false, ParameterInit::kZeros}, params.kv_bias);
  }
  visit(ParameterInfo{"out.weight", Shape{c, c}, true, ParameterInit::kNormalResidual},
        params.out_weight);
  if (config.bias) {
    visit(ParameterInfo{"out.bias", Shape{c}, false, ParameterInit::kZeros}, params.out_bias);
  }
}

template <typename T>
CrossAttentionParams<T> AllocateCrossAttentionParams(Arena& arena,
                                                     const CrossAttentionConfig& config) {
  config.Validate();
  CrossAttentionParams<T> params;
  ForEachCrossAttentionParameter(config, params, AllocateFrom<T>(arena));
  return params;
}

template <typename T>
struct CrossAttentionActivations {
  TensorView<T> q;            // (B, Tq, C)
  TensorView<T> kv;           // (B*Tk, 2C)
  TensorView<T> k, v;         // (B, Tk, C)
  TensorView<T> probs;        // (B, H, Tq, Tk), kSimple only
  TensorView<T> log_sum_exp;  // (B, H, Tq) log-sum-exp of each query's scores, kFlash only
  TensorView<T> attended;     // (B*Tq, C)
};

template <typename T>
CrossAttentionActivations<T> AllocateCrossAttentionActivations(Arena& arena,
                                                               const CrossAttentionConfig& config,
                                                               int64_t batch, int64_t query_len,
                                                               int64_t key_len);

// input, output: (B, Tq, C); memory: (B, Tk, C); key_padding: (B, Tk) or empty. Needs
// CrossAttentionForwardScratchBytes of ctx.scratch.
template <typename T>
void CrossAttentionForward(const CrossAttentionConfig& config,
                           const CrossAttentionParams<T>& params, ConstTensorView<T> input,
                           ConstTensorView<T> memory, ConstTensorView<uint8_t> key_padding,
                           const CrossAttentionActivations<T>& acts, TensorView<T> output,
                           const ExecutionContext& ctx);

// Writes d_input and d_memory (=); accumulates d_params (+=). key_padding as given to the
// forward pass. Needs CrossAttentionBackwardScratchBytes of ctx.scratch.
template <typename T>
void CrossAttentionBackward(const CrossAttentionConfig& config,
                            const CrossAttentionParams<T>& params, ConstTensorView<T> input,
                            ConstTensorView<T> memory, ConstTensorView<uint8_t> key_padding,
                            const CrossAttentionActivations<T>& acts, ConstTensorView<T> d_output,
                            TensorView<T> d_input, TensorView<T> d_memory,
                            const CrossAttentionParams<T>& d_params, const ExecutionContext& ctx);

// Decoding: the memory's keys and values, computed once per source and reused at every step.
// memory: (B, S, C); k, v: (B, S, C), overwritten. Needs 2·B·S·C elements of ctx.scratch.
template <typename T>
void CrossAttentionKeysValues(const CrossAttentionConfig& config,
                              const CrossAttentionParams<T>& params, ConstTensorView<T> memory,
                              TensorView<T> k, TensorView<T> v, const ExecutionContext& ctx);

// Decoding N sequences one token each: input, output (N, 1, C); k, v (B, S, C) from
// CrossAttentionKeysValues; key_padding (B, S) or empty; source_of (N): the source row each
// sequence attends (beams of one source share it). Needs CrossAttentionStepScratchBytes.
template <typename T>
void CrossAttentionForwardStep(const CrossAttentionConfig& config,
                               const CrossAttentionParams<T>& params, ConstTensorView<T> input,
                               ConstTensorView<T> k, ConstTensorView<T> v,
                               ConstTensorView<uint8_t> key_padding,
                               std::span<const int64_t> source_of, TensorView<T> output,
                               const ExecutionContext& ctx);

size_t CrossAttentionStepScratchBytes(const CrossAttentionConfig& config, int64_t sequences,
                                      int64_t key_len, int num_threads, size_t element_size);

// The flash kernel's tiles; nothing for the simple kernel.
size_t CrossAttentionForwardScratchBytes(const CrossAttentionConfig& config, int64_t batch,
                                         int64_t query_len, int num_threads, size_t element_size);

// Measured by running the backward pass's scratch allocation against a counting arena, plus
// the kernel's own.
size_t CrossAttentionBackwardScratchBytes(const CrossAttentionConfig& config, int64_t batch,
                                          int64_t query_len, int64_t key_len, int num_threads,
                                          size_t element_size);

}  // namespace qkv::layers
