// One Transformer block: self-attention and a feed-forward network, each wrapped in a residual
// connection with a normalisation before (pre-norm, GPT-2) or after (post-norm, the original
// Transformer, Marian, BART):
//
//   pre-norm:  r = x + drop(Attn(N1(x)));   y = r + drop(FFN(N2(r)))
//   post-norm: r = N1(x + drop(Attn(x)));   y = N2(r + drop(FFN(r)))
//
// The one implementation of the block: training (forward with saved activations, backward)
// and KV-cache decoding (the attention sublayer reads and extends a cache) run the same body,
// differing only in how attention gets its keys and values.
// Legend: B batch, T sequence length, C width; rows = B*T.
#pragma once

#include <cstdint>

#include "qkv/core/random.h"
#include "qkv/layers/feed_forward.h"
#include "qkv/layers/norm.h"
#include "qkv/layers/parameter.h"
#include "qkv/layers/self_attention.h"
#include "qkv/runtime/execution_context.h"

namespace qkv::layers {

enum class NormPlacement { kPre, kPost };

struct BlockConfig {
  SelfAttentionConfig attention;
  NormConfig norm;  // both norms of the block
  FeedForwardConfig ffn;
  NormPlacement placement = NormPlacement::kPre;
  float dropout = 0.0f;  // on both branch outputs, in training only
};

template <typename T>
struct BlockParams {
  NormParams<T> norm1;
  SelfAttentionParams<T> attention;
  NormParams<T> norm2;
  FeedForwardParams<T> ffn;
};

// "norm1.*", "attention.*", "norm2.*", "ffn.*", in that order.
template <typename T, typename Visitor>
void ForEachBlockParameter(const BlockConfig& config, BlockParams<T>& params, Visitor&& visit) {
  ForEachNormParameter(config.norm, params.norm1, Prefixed("norm1.", visit));
  ForEachSelfAttentionParameter(config.attention, params.attention, Prefixed("attention.", visit));
  ForEachNormParameter(config.norm, params.norm2, Prefixed("norm2.", visit));
  ForEachFeedForwardParameter(config.ffn, params.ffn, Prefixed("ffn.", visit));
}

template <typename T>
struct BlockActivations {
  TensorView<T> norm1_out;                // (rows, C)  pre: N1(x); post: N1(x + attn)
  NormSaved<T> norm1;                     // (rows) each
  SelfAttentionActivations<T> attention;  // training only (layers/self_attention.h)
  TensorView<T> attention_out;            // (B, T, C) after dropout
  TensorView<uint8_t> attention_keep;     // (B, T, C) dropout mask, training with dropout only
  TensorView<T> residual1;                // (B, T, C) x + attention_out
  TensorView<T> norm2_out;                // (rows, C)  pre-norm only: N2(residual1)
  NormSaved<T> norm2;                     // (rows) each
  FeedForwardActivations<T> ffn;          // (rows, ...) see layers/feed_forward.h
  TensorView<uint8_t> ffn_keep;           // (rows, C) dropout mask, training with dropout only
  TensorView<T> residual2;                // (B, T, C) post-norm only: r + ffn.out
};

// What the activations are for: training keeps everything backward needs; decoding keeps
// only the buffers of one forward pass (no attention internals, no dropout masks).
enum class BlockPass { kTraining, kDecoding };

template <typename T>
BlockActivations<T> AllocateBlockActivations(Arena& arena, const BlockConfig& config, int64_t batch,
                                             int64_t seq_len, BlockPass pass);

// input, output: (B, T, C), output not aliasing input. random is used only when training
// with dropout > 0. Needs BlockForwardScratchBytes of ctx.scratch.
template <typename T>
void BlockForward(const BlockConfig& config, const BlockParams<T>& params, ConstTensorView<T> input,
                  bool training, Random* random, const BlockActivations<T>& acts,
                  TensorView<T> output, const ExecutionContext& ctx);

// Writes d_input (=) from d_output; accumulates the parameter gradients (+=). Needs the
// activations of the training BlockForward of the same input and BlockBackwardScratchBytes
// of ctx.scratch. d_input must not alias d_output.
template <typename T>
void BlockBackward(const BlockConfig& config, const BlockParams<T>& params,
                   ConstTensorView<T> input, const BlockActivations<T>& acts,
                   ConstTensorView<T> d_output, TensorView<T> d_input,
                   const BlockParams<T>& d_params, const ExecutionContext& ctx);

// The block for decoding one sequence with a key/value cache (no dropout): input, output
// (1, Tnew, C) are the tokens at positions [cache_length, cache_length + Tnew); k_cache,
// v_cache (max_len, C) hold the earlier tokens' keys and values and get the new ones
// (layers/self_attention.h, SelfAttentionForwardCached). Its buffers come from ctx.scratch:
// BlockForwardCachedScratchBytes(config, Tnew, cache_length + Tnew, sizeof(T)).
template <typename T>
void BlockForwardCached(const BlockConfig& config, const BlockParams<T>& params,
                        ConstTensorView<T> input, TensorView<T> k_cache, TensorView<T> v_cache,
                        int64_t cache_length, TensorView<T> output, const ExecutionContext& ctx);

// Scratch sizes, measured by running the same allocation code against a counting arena.
size_t BlockForwardScratchBytes(const BlockConfig& config, int64_t batch, int64_t seq_len,
                                int num_threads, size_t element_size);
size_t BlockBackwardScratchBytes(const BlockConfig& config, int64_t batch, int64_t seq_len,
                                 int num_threads, size_t element_size);
size_t BlockForwardCachedScratchBytes(const BlockConfig& config, int64_t new_tokens,
                                      int64_t total_len, size_t element_size);

}  // namespace qkv::layers
