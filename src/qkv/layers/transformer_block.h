// One Transformer block: self-attention and a feed-forward network, each wrapped in a residual
// connection with a normalisation before (pre-norm, GPT-2) or after (post-norm, the original
// Transformer, Marian, BART):
//
//   pre-norm:  r = x + drop(Attn(N1(x)));   y = r + drop(FFN(N2(r)))
//   post-norm: r = N1(x + drop(Attn(x)));   y = N2(r + drop(FFN(r)))
//
// An encoder-decoder's decoder block has a third sublayer between the two, cross-attention to
// the encoder's output m (the memory), wrapped the same way with its own norm Nc:
//   pre-norm:  r' = r + drop(Cross(Nc(r), m));  post-norm: r' = Nc(r + drop(Cross(r, m)))
// and the feed-forward sublayer then reads r'. An encoder block masks its padding keys.
//
// The one implementation of the block: training (forward with saved activations, backward)
// and KV-cache decoding (the attention sublayer reads and extends a cache) run the same body,
// differing only in how attention gets its keys and values.
// Legend: B batch, T sequence length, C width; rows = B*T.
#pragma once

#include <cstdint>
#include <optional>
#include <span>

#include "qkv/core/random.h"
#include "qkv/layers/cross_attention.h"
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
  float dropout = 0.0f;  // on every branch output, in training only
  // Set in an encoder-decoder's decoder blocks: the cross-attention sublayer.
  std::optional<CrossAttentionConfig> cross_attention;
};

template <typename T>
struct BlockParams {
  NormParams<T> norm1;
  SelfAttentionParams<T> attention;
  NormParams<T> cross_norm;                 // cross-attention blocks only
  CrossAttentionParams<T> cross_attention;  // cross-attention blocks only
  NormParams<T> norm2;
  FeedForwardParams<T> ffn;
};

// "norm1.*", "attention.*", ["cross_norm.*", "cross_attention.*",] "norm2.*", "ffn.*", in that
// order.
template <typename T, typename Visitor>
void ForEachBlockParameter(const BlockConfig& config, BlockParams<T>& params, Visitor&& visit) {
  ForEachNormParameter(config.norm, params.norm1, Prefixed("norm1.", visit));
  ForEachSelfAttentionParameter(config.attention, params.attention, Prefixed("attention.", visit));
  if (config.cross_attention) {
    ForEachNormParameter(config.norm, params.cross_norm, Prefixed("cross_norm.", visit));
    ForEachCrossAttentionParameter(*config.cross_attention, params.cross_attention,
                                   Prefixed("cross_attention.", visit));
  }
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
  // Cross-attention blocks only:
  TensorView<T> cross_norm_out;                  // (rows, C) pre: Nc(residual1); post: Nc(r + c)
  NormSaved<T> cross_norm;                       // (rows) each
  CrossAttentionActivations<T> cross_attention;  // training only (layers/cross_attention.h)
  TensorView<T> cross_out;                       // (B, T, C) after dropout
  TensorView<uint8_t> cross_keep;                // (B, T, C) dropout mask, training with dropout
  TensorView<T> residual_cross;                  // (B, T, C) the stream plus cross_out
  TensorView<T> norm2_out;                       // (rows, C)  pre-norm only: N2(residual1)
  NormSaved<T> norm2;                            // (rows) each
  FeedForwardActivations<T> ffn;                 // (rows, ...) see layers/feed_forward.h
  TensorView<uint8_t> ffn_keep;  // (rows, C) dropout mask, training with dropout only
  TensorView<T> residual2;       // (B, T, C) post-norm only: r + ffn.out
};

// What a block sees besides its own input: the padding of its sequence (an encoder's source)
// and, for cross-attention, the memory and its padding.
template <typename T>
struct BlockContext {
  ConstTensorView<uint8_t> key_padding = {};     // (B, T) nonzero at padding, or empty
  ConstTensorView<T> memory = {};                // (B, S, C): the encoder's output
  ConstTensorView<uint8_t> memory_padding = {};  // (B, S) nonzero at padding, or empty
};

// What the activations are for: training keeps everything backward needs; decoding keeps
// only the buffers of one forward pass (no attention internals, no dropout masks).
enum class BlockPass { kTraining, kDecoding };

template <typename T>
BlockActivations<T> AllocateBlockActivations(Arena& arena, const BlockConfig& config, int64_t batch,
                                             int64_t seq_len, BlockPass pass,
                                             int64_t memory_len = 0);

// input, output: (B, T, C), output not aliasing input. random is used only when training
// with dropout > 0. A cross-attention block needs context.memory (and the activations
// allocated for its length S). Needs BlockForwardScratchBytes of ctx.scratch.
template <typename T>
void BlockForward(const BlockConfig& config, const BlockParams<T>& params, ConstTensorView<T> input,
                  const BlockContext<T>& context, bool training, Random* random,
                  const BlockActivations<T>& acts, TensorView<T> output,
                  const ExecutionContext& ctx);

// A block with nothing but its input (a decoder-only model's).
template <typename T>
void BlockForward(const BlockConfig& config, const BlockParams<T>& params, ConstTensorView<T> input,
                  bool training, Random* random, const BlockActivations<T>& acts,
                  TensorView<T> output, const ExecutionContext& ctx) {
  BlockForward<T>(config, params, input, BlockContext<T>{}, training, random, acts, output, ctx);
}

// Writes d_input (=) from d_output; accumulates the parameter gradients (+=). Needs the
// activations of the training BlockForward of the same input and BlockBackwardScratchBytes
// of ctx.scratch. d_input must not alias d_output. A cross-attention block adds the memory's
// gradient to d_memory (+=, (B, S, C): the memory feeds every decoder block).
template <typename T>
void BlockBackward(const BlockConfig& config, const BlockParams<T>& params,
                   ConstTensorView<T> input, const BlockContext<T>& context,
                   const BlockActivations<T>& acts, ConstTensorView<T> d_output,
                   TensorView<T> d_input, TensorView<T> d_memory, const BlockParams<T>& d_params,
                   const ExecutionContext& ctx);

template <typename T>
void BlockBackward(const BlockConfig& config, const BlockParams<T>& params,
                   ConstTensorView<T> input, const BlockActivations<T>& acts,
                   ConstTensorView<T> d_output, TensorView<T> d_input,
                   const BlockParams<T>& d_params, const ExecutionContext& ctx) {
  BlockBackward<T>(config, params, input, BlockContext<T>{}, acts, d_output, d_input, {}, d_params,
                   ctx);
}

// The block for decoding one sequence with a key/value cache (no dropout): input, output
// (1, Tnew, C) are the tokens at positions [cache_length, cache_length + Tnew); k_cache,
// v_cache (max_len, C) hold the earlier tokens' keys and values and get the new ones
// (layers/self_attention.h, SelfAttentionForwardCached). Its buffers come from ctx.scratch:
// BlockForwardCachedScratchBytes(config, Tnew, cache_length + Tnew, sizeof(T)).
template <typename T>
void BlockForwardCached(const BlockConfig& config, const BlockParams<T>& params,
                        ConstTensorView<T> input, TensorView<T> k_cache, TensorView<T> v_cache,
                        int64_t cache_length, TensorView<T> output, const ExecutionContext& ctx);

// What a block reads and writes while decoding N sequences in lockstep, one token each at the
// same position (layers/self_attention.h SelfAttentionForwardStep): its self-attention caches
// and, in a decoder block, the memory's keys and values (CrossAttentionKeysValues).
template <typename T>
struct BlockStepState {
  TensorView<T> k_cache, v_cache;           // (N, max_len, C) rows [0, position) filled
  int64_t position = 0;                     // the new token's position
  ConstTensorView<T> cross_k, cross_v;      // (B, S, C), cross-attention blocks only
  ConstTensorView<uint8_t> memory_padding;  // (B, S) or empty
  std::span<const int64_t> source_of;       // (N): the source row of each sequence
};

// input, output: (N, 1, C). Its buffers come from ctx.scratch: BlockForwardStepScratchBytes.
template <typename T>
void BlockForwardStep(const BlockConfig& config, const BlockParams<T>& params,
                      ConstTensorView<T> input, const BlockStepState<T>& state,
                      TensorView<T> output, const ExecutionContext& ctx);

// Scratch sizes, measured by running the same allocation code against a counting arena.
size_t BlockForwardScratchBytes(const BlockConfig& config, int64_t batch, int64_t seq_len,
                                int num_threads, size_t element_size);
size_t BlockBackwardScratchBytes(const BlockConfig& config, int64_t batch, int64_t seq_len,
                                 int num_threads, size_t element_size, int64_t memory_len = 0);
size_t BlockForwardCachedScratchBytes(const BlockConfig& config, int64_t new_tokens,
                                      int64_t total_len, size_t element_size);
size_t BlockForwardStepScratchBytes(const BlockConfig& config, int64_t sequences, int64_t total_len,
                                    int64_t memory_len, int num_threads, size_t element_size);

}  // namespace qkv::layers
