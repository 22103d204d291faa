// Multi-head self-attention with a fused Q,K,V projection, optional RoPE on queries and keys,
// and an output projection:
//   [q k v] = x · W_qkvᵀ + b_qkv;  q, k = RoPE(q), RoPE(k);  a = Attention(q, k, v);
//   y = a · W_outᵀ + b_out.
// Keys and values may have fewer heads than queries (grouped-query / multi-query attention,
// ops/attention.h), and the head size need not be C / H.
// Parameters are views into an arena owned by the caller (one allocation for the whole
// model); activations likewise. Legend: B batch, T sequence length, C width, H heads, KV
// key/value heads, D head size, Cq = H·D, Ckv = KV·D, P = Cq + 2·Ckv.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "qkv/core/arena.h"
#include "qkv/layers/attention_kernel.h"
#include "qkv/layers/parameter.h"
#include "qkv/ops/attention.h"
#include "qkv/ops/rope.h"
#include "qkv/runtime/execution_context.h"

namespace qkv::layers {

struct SelfAttentionConfig {
  int64_t width = 0;      // C, > 0
  int64_t num_heads = 0;  // H, > 0, divides C unless head_size is set
  bool causal = true;
  bool bias = true;
  std::optional<ops::RopeConfig> rope;  // rotate q and k when set
  // ALiBi slopes, one per head (ops/alibi.h), or empty: linear distance biases on the scores.
  std::vector<double> alibi_slopes = {};
  AttentionKernel kernel = AttentionKernel::kSimple;
  int64_t num_kv_heads = 0;  // KV, divides H; 0: H (multi-head attention)
  int64_t head_size = 0;     // D; 0: C / H
  // Throws qkv::Error naming the bad value.
  void Validate() const;

  int64_t kv_heads() const { return num_kv_heads > 0 ? num_kv_heads : num_heads; }
  int64_t head_dim() const { return head_size > 0 ? head_size : width / num_heads; }
  int64_t q_width() const { return num_heads * head_dim(); }       // Cq
  int64_t kv_width() const { return kv_heads() * head_dim(); }     // Ckv
  int64_t qkv_rows() const { return q_width() + 2 * kv_width(); }  // P
};

template <typename T>
struct SelfAttentionParams {
  TensorView<T> qkv_weight;  // (P, C): rows [0, Cq) make q, [Cq, Cq + Ckv) k, the rest v
  TensorView<T> qkv_bias;    // (P) or empty without bias
  TensorView<T> out_weight;  // (C, Cq)
  TensorView<T> out_bias;    // (C) or empty without bias
};

// "qkv.weight", "qkv.bias", "out.weight", "out.bias" (out writes into the residual stream).
template <typename T, typename Visitor>
void ForEachSelfAttentionParameter(const SelfAttentionConfig& config,
                                   SelfAttentionParams<T>& params, Visitor&& visit) {
  const int64_t c = config.width, p = config.qkv_rows();
  visit(ParameterInfo{"qkv.weight", Shape{p, c}, true, ParameterInit::kNormal}, params.qkv_weight);
  if (config.bias) {
    visit(ParameterInfo{"qkv.bias", Shape{p}, false, ParameterInit::kZeros}, params.qkv_bias);
  }
  visit(
      ParameterInfo{"out.weight", Shape{c, config.q_width()}, true, ParameterInit::kNormalResidual},
      params.out_weight);
  if (config.bias) {
    visit(ParameterInfo{"out.bias", Shape{c}, false, ParameterInit::kZeros}, params.out_bias);
  }
}

// Views for every parameter from arena (values, or gradients on another arena).
template <typename T>
SelfAttentionParams<T> AllocateSelfAttentionParams(Arena& arena,
                                                   const SelfAttentionConfig& config) {
  config.Validate();
  SelfAttentionParams<T> params;
  ForEachSelfAttentionParameter(config, params, AllocateFrom<T>(arena));
  return params;
}

// What the forward pass keeps for the backward pass (and for attention maps).
template <typename T>
struct SelfAttentionActivations {
  TensorView<T> qkv;          // (B*T, P) projection output
  TensorView<T> q;            // (B, T, Cq), after RoPE
  TensorView<T> k, v;         // (B, T, Ckv) each, k after RoPE
  TensorView<T> probs;        // (B, H, T, T) attention weights; kSimple only
  TensorView<T> log_sum_exp;  // (B, H, T) log-sum-exp of each query's scores; kFlash only
  TensorView<T> attended;     // (B*T, Cq) attention output before the output projection
};

template <typename T>
SelfAttentionActivations<T> AllocateSelfAttentionActivations(Arena& arena,
                                                             const SelfAttentionConfig& config,
                                                             int64_t batch, int64_t seq_len);

// input, output: (B, T, C). start_position is the position of input's first token (for RoPE).
template <typename T>
void SelfAttentionForward(const SelfAttentionConfig& config, const SelfAttentionParams<T>& params,
                          ConstTensorView<T> input, int64_t start_position,
                          ConstTensorView<uint8_t> key_padding,
                          const SelfAttentionActivations<T>& acts, TensorView<T> output,
                          const ExecutionContext& ctx);

// Writes d_input (=); accumulates d_params (+=). start_position and key_padding as given to
// the forward pass. Needs ctx.scratch: SelfAttentionScratchBytes.
template <typename T>
void SelfAttentionBackward(const SelfAttentionConfig& config, const SelfAttentionParams<T>& params,
                           ConstTensorView<T> input, int64_t start_position,
                           ConstTensorView<uint8_t> key_padding,
                           const SelfAttentionActivations<T>& acts, ConstTensorView<T> d_output,
                           TensorView<T> d_input, const SelfAttentionParams<T>& d_params,
                           const ExecutionContext& ctx);

// Bytes of ctx.scratch that SelfAttentionForward needs at this size: the flash kernel's tiles,
// nothing for the simple kernel.
size_t SelfAttentionForwardScratchBytes(const SelfAttentionConfig& config, int64_t batch,
                                        int64_t seq_len, int num_threads, size_t element_size);

// Bytes of ctx.scratch that SelfAttentionForward and SelfAttentionBackward need at this size
// (the larger of the two).
size_t SelfAttentionScratchBytes(const SelfAttentionConfig& config, int64_t batch, int64_t seq_len,
                                 int num_threads, size_t element_size);

// Forward only, for decoding one sequence with a key/value cache (inference; no backward).
// input, output: (1, Tnew, C), the tokens at positions [cache_length, cache_length + Tnew).
// k_cache, v_cache: (max_len, Ckv); rows [0, cache_length) hold the keys (after RoPE) and values
// of the earlier tokens, and this call writes rows [cache_length, cache_length + Tnew), so the
// new queries attend causally over cache_length + Tnew keys. Needs ctx.scratch:
// SelfAttentionCachedScratchBytes(config, Tnew, cache_length + Tnew, sizeof(T)) bytes, given
// back before returning. output must not alias input.
template <typename T>
void SelfAttentionForwardCached(const SelfAttentionConfig& config,
                                const SelfAttentionParams<T>& params, ConstTensorView<T> input,
                                TensorView<T> k_cache, TensorView<T> v_cache, int64_t cache_length,
                                TensorView<T> output, const ExecutionContext& ctx);

// Forward only, for decoding N sequences in lockstep (a batch of translations, the beams of a
// beam search): one new token each, all at position cache_length. input, output (N, 1, C);
// k_cache, v_cache (N, max_len, Ckv): sequence n's cache is k_cache[n], rows [0,
// cache_length) filled; this call writes row cache_length. Attends causally (the new token
// sees every cached one). No RoPE, no ALiBi. Needs SelfAttentionStepScratchBytes of
// ctx.scratch.
template <typename T>
void SelfAttentionForwardStep(const SelfAttentionConfig& config,
                              const SelfAttentionParams<T>& params, ConstTensorView<T> input,
                              TensorView<T> k_cache, TensorView<T> v_cache, int64_t cache_length,
                              TensorView<T> output, const ExecutionContext& ctx);

size_t SelfAttentionStepScratchBytes(const SelfAttentionConfig& config, int64_t sequences,
                                     int64_t total_len, int num_threads, size_t element_size);

// Scratch bytes SelfAttentionForwardCached needs for new_tokens queries over total_len keys.
size_t SelfAttentionCachedScratchBytes(const SelfAttentionConfig& config, int64_t new_tokens,
                                       int64_t total_len, size_t element_size);

}  // namespace qkv::layers
