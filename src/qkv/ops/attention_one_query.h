// Attention of one query per sequence, as incremental decoding runs it: the newest token's
// query against every key so far (self-attention) or against the source (cross-attention).
// The same function as AttentionForward (ops/attention.h) with Tq = 1, no causal mask (one
// query after every key sees them all) and optional key padding, computed head by head with
// dot products and a fused softmax-weighted sum instead of two matrix products: at one query
// row those are calls into the GEMM library that cost more than their arithmetic.
//
// Legend as ops/attention.h: Tk keys, H query heads, KV key/value heads (dividing H), D head
// size, Cq = H·D, Ckv = KV·D.
#pragma once

#include <cstdint>

#include "qkv/core/tensor_view.h"
#include "qkv/runtime/execution_context.h"

namespace qkv::ops {

// q: (1, 1, Cq); k, v: (1, Tk, Ckv); key_padding: (1, Tk) or empty (nonzero: padding);
// output: (1, 1, Cq), overwritten; scores: (Tk) working space, left holding the last head's
// probabilities. A head whose keys are all padded gets a zero output. Runs on the calling
// thread (decoding calls it from inside a ParallelFor over sequences); float uses the vector
// kernels of ctx.isa, double plain loops (the oracle).
template <typename T>
void AttentionForwardOneQuery(ConstTensorView<T> q, ConstTensorView<T> k, ConstTensorView<T> v,
                              int64_t num_heads, ConstTensorView<uint8_t> key_padding,
                              TensorView<T> output, TensorView<T> scores,
                              const ExecutionContext& ctx);

}  // namespace qkv::ops
