// Scaled dot-product multi-head attention, the core of self- and cross-attention:
//   scores = q_h · k_hᵀ / sqrt(head_dim)  (masked entries set to -inf)
//   probs  = softmax(scores) over the keys;   output_h = probs · v_h
// for each batch element and head h (columns [h*head_dim, (h+1)*head_dim) of q and output).
// Keys and values may have fewer heads than queries (grouped-query attention, Ainslie et al.
// 2023; multi-query attention when there is one): with KV of them, query head h reads key/value
// head h / (H / KV), as Hugging Face's repeat_kv. KV is k's width divided by the head size.
// This is the simple version that stores the (query_len × key_len) probabilities; it is the
// oracle for any fused kernel. Derivation of the backward pass: docs/derivations/attention.md.
//
// Legend: B batch, Tq query length, Tk key length, H query heads, KV key/value heads (dividing
// H), D head size; Cq = H * D, Ckv = KV * D (Cq = Ckv = C for multi-head attention).
#pragma once

#include <cstdint>
#include <span>

#include "qkv/core/tensor_view.h"
#include "qkv/runtime/execution_context.h"

namespace qkv::ops {

struct AttentionMask {
  // Query i may attend key j only if j <= i + (Tk - Tq): the queries are the last Tq positions
  // of the key sequence (with Tq == Tk this is the usual j <= i). Requires Tk >= Tq.
  bool causal = false;
  // (B, Tk), or empty for none. Nonzero marks a padding key that no query attends, as
  // PyTorch's key_padding_mask = True.
  ConstTensorView<uint8_t> key_padding = {};
  // ALiBi slopes, one per head (ops/alibi.h), or empty for none. Head h adds
  // -m_h * |i + Tk - Tq - j| to the score of query i and key j (the distance between their
  // positions; under the causal mask only j <= i + Tk - Tq remain, the paper's form). The bias
  // is a constant, so the backward pass is unchanged.
  std::span<const double> alibi_slopes = {};
};

// q: (B, Tq, Cq); k, v: (B, Tk, Ckv); output: (B, Tq, Cq), overwritten; probs: (B, H, Tq, Tk),
// written for backward and for inspection (attention maps). Masked weights are exactly 0; a
// query whose keys are all masked gets all-zero weights and a zero output. output must not
// alias q, k or v.
template <typename T>
void AttentionForward(ConstTensorView<T> q, ConstTensorView<T> k, ConstTensorView<T> v,
                      int64_t num_heads, const AttentionMask& mask, TensorView<T> output,
                      TensorView<T> probs, const ExecutionContext& ctx);

// Writes d_q, d_k, d_v (=); d_k and d_v of a key/value head sum over the query heads of its
// group in a fixed order (bitwise reproducible). Needs AttentionBackwardScratchBytes<T> of
// ctx.scratch.
template <typename T>
void AttentionBackward(ConstTensorView<T> d_output, ConstTensorView<T> q, ConstTensorView<T> k,
                       ConstTensorView<T> v, ConstTensorView<T> probs, int64_t num_heads,
                       TensorView<T> d_q, TensorView<T> d_k, TensorView<T> d_v,
                       const ExecutionContext& ctx);

// Scratch bytes AttentionBackward takes on `num_threads` threads (one (Tq, Tk) tile each),
// measured by its own allocation code.
template <typename T>
size_t AttentionBackwardScratchBytes(int64_t query_len, int64_t key_len, int num_threads);

}  // namespace qkv::ops
