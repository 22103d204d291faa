// The language model's forward pass for new tokens of one sequence, with the keys and values
// of the earlier tokens taken from a KvCache instead of recomputed: prefill a prompt (many
// tokens at once), then decode one token at a time. Each block is layers::BlockForwardCached,
// the same block code training runs (pre- or post-norm, LayerNorm/RMSNorm, every FFN kind,
// every position encoding including ALiBi and scaled RoPE, no dropout); the logits agree with
// ModelForward over the whole sequence (tested to ~1e-5).
//
//   DecodeWorkspace workspace(model.config, /*max_new_tokens=*/64, cache.max_len(), threads);
//   ConstTensorView<float> logits = IncrementalForward(model, prompt, cache, workspace, threads);
//   // logits: (prompt.size(), V); the last row predicts the next token.
//
// Legend: Tnew new tokens, C width, F feed-forward size, V vocabulary, H heads.
#pragma once

#include <cstdint>
#include <span>

#include "qkv/core/arena.h"
#include "qkv/infer/kv_cache.h"
#include "qkv/layers/transformer_block.h"
#include "qkv/model/checkpoint.h"
#include "qkv/runtime/thread_pool.h"

namespace qkv::infer {

// Which new tokens get logits: all (to score every position), or the last only (generation
// reads only the next token's: a prefill of T tokens then skips (T - 1) x C x V of the head).
enum class LogitRows { kAll, kLast };

// Every buffer IncrementalForward needs, allocated once (one arena for activations, one for
// the attention scratch) so that decoding allocates nothing per token. Move-only.
class DecodeWorkspace {
 public:
  // Chunks of up to max_new_tokens (>= 1) tokens, attending over at most max_len (>= 1)
  // positions (the cache's max_len).
  DecodeWorkspace(const model::ModelConfig& config, int64_t max_new_tokens, int64_t max_len);

  int64_t max_new_tokens() const { return max_new_tokens_; }
  int64_t max_len() const { return max_len_; }

  // bfloat16 copies of the model's weights for the linear layers to read when a call has few
  // tokens (ExecutionContext::bf16_weights); null (the default): float32 throughout. The
  // copies must outlive the workspace's use of them.
  void set_bf16_weights(const Bf16WeightCopies* copies) { bf16_weights_ = copies; }
  // The precision of the products (runtime/precision.h; the caller has checked that bf16 can
  // run): in bf16 a decoding step also rounds its activations and multiplies bfloat16 pairs
  // (ops::LinearForward), and a prefill runs bfloat16 GEMMs on the copies.
  void set_precision(Precision precision) { precision_ = precision; }

 private:
  friend ConstTensorView<float> IncrementalForward(const model::Model&, std::span<const int32_t>,
                                                   KvCache&, DecodeWorkspace&, const ThreadPool&,
                                                   LogitRows);
  struct Buffers {
    TensorView<float> stream, next_stream;  // (Tmax, C) a block's input and output, swapped
    TensorView<float> norm_out;             // (Tmax, C) the final norm's output
    layers::NormSaved<float> norm;          // (Tmax) each
    TensorView<float> logits;               // (Tmax, V)
    TensorView<float> sinusoidal_table;     // (max_len, C) sinusoidal positions only
  };
  static Buffers Allocate(Arena& arena, const model::ModelConfig& config, int64_t max_new_tokens,
                          int64_t max_len);

  int64_t max_new_tokens_ = 0, max_len_ = 0;
  int64_t vocab_size_ = 0, width_ = 0, ffn_hidden_ = 0;  // to check the model matches
  // Built once: with ALiBi it holds the slopes, which would otherwise be a heap allocation
  // per layer and token.
  layers::BlockConfig block_;
  Arena arena_{0};
  Arena scratch_{0};
  Buffers buffers_;
  const Bf16WeightCopies* bf16_weights_ = nullptr;
  Precision precision_ = Precision::kFloat32;
};

// Runs `tokens` (1 <= Tnew <= workspace.max_new_tokens()) at positions
// [cache.length(), cache.length() + Tnew) and appends their keys and values to the cache.
// Returns the logits (Tnew, V), or (1, V) of the last token with LogitRows::kLast, a view into
// the workspace that the next call overwrites.
// Errors (qkv::Error) name the values: a cache or workspace that does not fit the model, a
// chunk that does not fit the cache, positions past a learned position table, bad token ids.
ConstTensorView<float> IncrementalForward(const model::Model& model,
                                          std::span<const int32_t> tokens, KvCache& cache,
                                          DecodeWorkspace& workspace, const ThreadPool& threads,
                                          LogitRows logit_rows = LogitRows::kAll);

}  // namespace qkv::infer
