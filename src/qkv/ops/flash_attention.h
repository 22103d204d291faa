// Fused, tiled scaled dot-product attention (the FlashAttention-2 algorithm, Dao 2023, on the
// CPU). Computes exactly what ops/attention.h computes, with the same layouts and the same
// AttentionMask semantics, but never stores the (query_len × key_len) probabilities:
//   forward:  for each block of queries, loop over blocks of keys; scores of the block pair
//             via GEMM, an online softmax with a running row maximum and sum, and the output
//             accumulated and rescaled as the maximum grows. Per query only the log-sum-exp of
//             its scores is kept (for backward).
//   backward: recomputes the probabilities block by block from q, k and the log-sum-exp.
// Memory is linear in the sequence length: besides the (B, H, Tq) log-sum-exp, scratch is
// O(block²) per thread plus O(B·H·Tq). Under the causal mask, blocks of keys that no query of
// a block can see are skipped; so are the padding keys after a batch row's last real key (the
// padding of a length-sorted batch: whole tiles skipped, the last one cut short).
// AttentionForward/Backward stay as the oracle this is tested against. Derivation:
// docs/derivations/attention.md; its blockwise form is at the top of flash_attention.cc.
//
// Grouped-query attention as in ops/attention.h: k and v may hold KV heads, KV dividing H.
//
// Legend: B batch, Tq query length, Tk key length, H query heads, KV key/value heads, D head
// size; Cq = H * D, Ckv = KV * D.
#pragma once

#include <cstddef>
#include <cstdint>

#include "qkv/core/tensor_view.h"
#include "qkv/ops/attention.h"
#include "qkv/runtime/execution_context.h"

namespace qkv::ops {

// Rows of queries and of keys per tile. 64×64 tiles of float scores (16 KiB) and the 64-row
// slices of q, k, v, output of one head stay in L1/L2 while a tile is processed.
inline constexpr int64_t kFlashAttentionBlock = 64;

// Bytes of ctx.scratch that FlashAttentionForward and FlashAttentionBackward need (the larger
// of the two) for these sizes and num_threads threads: a few (block × block) tiles per thread
// plus one T per query and head (B·H·Tq). Never grows as Tq·Tk.
template <typename T>
size_t FlashAttentionScratchBytes(int64_t batch, int64_t num_heads, int64_t query_len,
                                  int num_threads);

// q: (B, Tq, Cq); k, v: (B, Tk, Ckv); output: (B, Tq, Cq), overwritten (=); log_sum_exp: (B, H,
// Tq), overwritten: log(sum_j exp(score_ij)) over the keys query i sees, or +inf for a query whose
// keys are all masked (its output is then exactly 0, as in AttentionForward). mask as in
// AttentionForward (causal needs Tk >= Tq; key_padding (B, Tk); one ALiBi slope per head).
// output must not alias q, k or v. Needs FlashAttentionScratchBytes<T>(...) bytes of
// ctx.scratch (given back on return).
template <typename T>
void FlashAttentionForward(ConstTensorView<T> q, ConstTensorView<T> k, ConstTensorView<T> v,
                           int64_t num_heads, const AttentionMask& mask, TensorView<T> output,
                           TensorView<T> log_sum_exp, const ExecutionContext& ctx);

// d_output, output: (B, Tq, Cq) — output and log_sum_exp (B, H, Tq) as FlashAttentionForward
// wrote them for these q (B, Tq, Cq), k, v (B, Tk, Ckv) and this mask. Writes d_q (B, Tq, Cq),
// d_k, d_v (B, Tk, Ckv) (=). A query whose keys are all masked contributes zero gradients.
// Results are bitwise reproducible for a fixed thread count (every element of d_q, d_k, d_v
// is summed by one thread in a fixed order). Needs FlashAttentionScratchBytes<T>(...) bytes
// of ctx.scratch.
template <typename T>
void FlashAttentionBackward(ConstTensorView<T> d_output, ConstTensorView<T> q, ConstTensorView<T> k,
                            ConstTensorView<T> v, ConstTensorView<T> output,
                            ConstTensorView<T> log_sum_exp, int64_t num_heads,
                            const AttentionMask& mask, TensorView<T> d_q, TensorView<T> d_k,
                            TensorView<T> d_v, const ExecutionContext& ctx);

}  // namespace qkv::ops
