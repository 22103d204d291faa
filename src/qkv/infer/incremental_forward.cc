#include "qkv/infer/incremental_forward.h"

#include <cstring>

#include "qkv/layers/head_packing.h"
#include "qkv/layers/self_attention.h"
#include "qkv/model/transformer.h"
#include "qkv/ops/embedding.h"
#include "qkv/ops/gelu.h"
#include "qkv/ops/layer_norm.h"
#include "qkv/ops/linear.h"
#include "qkv/ops/position_add.h"
#include "qkv/ops/relu.h"
#include "qkv/ops/rms_norm.h"
#include "qkv/ops/sinusoidal.h"
#include "qkv/ops/swiglu.h"
#include "qkv/runtime/execution_context.h"
#include "qkv/runtime/parallel_for.h"

namespace qkv::infer {

namespace {

using model::FfnKind;
using model::ModelConfig;
using model::NormKind;
using model::NormPlacement;
using model::PositionEncoding;

// out = a + b elementwise; out may alias a or b.
void Add(ConstTensorView<float> a, ConstTensorView<float> b, TensorView<float> out,
         const ExecutionContext& ctx) {
  ParallelFor(
      a.size(), ctx,
      [&](int64_t begin, int64_t end, int) {
        for (int64_t i = begin; i < end; ++i) out.data()[i] = a.data()[i] + b.data()[i];
      },
      16384);
}

// A view of the first `rows` rows of a (Tmax, cols) buffer.
TensorView<float> Rows(TensorView<float> buffer, int64_t rows) {
  return TensorView<float>(buffer.data(),
                           buffer.rank() == 1 ? Shape{rows} : Shape{rows, buffer.dim(1)});
}

struct ChunkBuffers {
  TensorView<float> stream, attention_out, norm_out, norm_mean, norm_rstd, ffn_up, ffn_gate,
      ffn_value, ffn_hidden, ffn_out;
};

void FeedForward(const ModelConfig& config, const model::BlockParams<float>& params,
                 ConstTensorView<float> input, const ChunkBuffers& b, const ExecutionContext& ctx) {
  model::FeedForwardForward<float>(
      config, params, input, {b.ffn_up, b.ffn_gate, b.ffn_value, b.ffn_hidden, b.ffn_out}, ctx);
}

// One block over the chunk in b.stream (rows, C), in place, as BlockForward in
// model/transformer.cc without dropout; attention reads and extends this layer's cache.
void Block(const ModelConfig& config, const layers::SelfAttentionConfig& attention,
           const model::BlockParams<float>& params, const KvCache& cache, int64_t layer,
           const ChunkBuffers& b, const ExecutionContext& ctx) {
  const int64_t rows = b.stream.dim(0), c = config.width;
  const Shape sequence{1, rows, c};
  TensorView<float> keys = cache.keys(layer), values = cache.values(layer);
  if (config.norm_placement == NormPlacement::kPre) {
    // x = x + Attn(N1(x));  x = x + FFN(N2(x))
    model::NormForward<float>(config, b.stream, params.norm1_weight, params.norm1_bias, b.norm_out,
                              b.norm_mean, b.norm_rstd, ctx);
    layers::SelfAttentionForwardCached<float>(
        attention, params.attention, b.norm_out.Reshape(sequence), keys, values, cache.length(),
        b.attention_out.Reshape(sequence), ctx);
    Add(b.stream, b.attention_out, b.stream, ctx);
    model::NormForward<float>(config, b.stream, params.norm2_weight, params.norm2_bias, b.norm_out,
                              b.norm_mean, b.norm_rstd, ctx);
    FeedForward(config, params, b.norm_out, b, ctx);
    Add(b.stream, b.ffn_out, b.stream, ctx);
  } else {
    // r = N1(x + Attn(x));  x = N2(r + FFN(r))
    layers::SelfAttentionForwardCached<float>(
        attention, params.attention, b.stream.Reshape(sequence), keys, values, cache.length(),
        b.attention_out.Reshape(sequence), ctx);
    Add(b.stream, b.attention_out, b.stream, ctx);
    model::NormForward<float>(config, b.stream, params.norm1_weight, params.norm1_bias, b.norm_out,
                              b.norm_mean, b.norm_rstd, ctx);
    FeedForward(config, params, b.norm_out, b, ctx);
    Add(b.norm_out, b.ffn_out, b.stream, ctx);
    model::NormForward<float>(config, b.stream, params.norm2_weight, params.norm2_bias, b.norm_out,
                              b.norm_mean, b.norm_rstd, ctx);
    std::memcpy(b.stream.data(), b.norm_out.data(), static_cast<size_t>(rows * c) * sizeof(float));
  }
}

}  // namespace

DecodeWorkspace::Buffers DecodeWorkspace::Allocate(Arena& arena, const ModelConfig& config,
                                                   int64_t max_new_tokens, int64_t max_len) {
  const int64_t rows = max_new_tokens, c = config.width, f = config.ffn_hidden();
  const bool swiglu = config.ffn == FfnKind::kSwiGlu;
  Buffers b;
  b.stream = arena.Allocate<float>(Shape{rows, c});
  b.attention_out = arena.Allocate<float>(Shape{rows, c});
  b.norm_out = arena.Allocate<float>(Shape{rows, c});
  b.norm_mean = arena.Allocate<float>(Shape{rows});
  b.norm_rstd = arena.Allocate<float>(Shape{rows});
  b.ffn_up = arena.Allocate<float>(Shape{rows, swiglu ? 2 * f : f});
  if (swiglu) {
    b.ffn_gate = arena.Allocate<float>(Shape{rows, f});
    b.ffn_value = arena.Allocate<float>(Shape{rows, f});
  }
  b.ffn_hidden = arena.Allocate<float>(Shape{rows, f});
  b.ffn_out = arena.Allocate<float>(Shape{rows, c});
  b.logits = arena.Allocate<float>(Shape{rows, config.vocab_size});
  if (config.position == PositionEncoding::kSinusoidal) {
    // Rows depend only on their position, so a table of max_len rows agrees with the one
    // ModelForward builds for its sequence length.
    b.sinusoidal_table = arena.Allocate<float>(Shape{max_len, c});
    if (!arena.measure_only()) ops::FillSinusoidalTable(b.sinusoidal_table);
  }
  return b;
}

DecodeWorkspace::DecodeWorkspace(const ModelConfig& config, int64_t max_new_tokens, int64_t max_len)
    : max_new_tokens_(max_new_tokens),
      max_len_(max_len),
      vocab_size_(config.vocab_size),
      width_(config.width),
      ffn_hidden_(config.ffn_hidden()),
      attention_(model::SelfAttentionConfigFor(config)) {
  config.Validate();
  QKV_CHECK(max_new_tokens > 0, "decode workspace: max_new_tokens must be > 0, got ",
            max_new_tokens);
  QKV_CHECK(max_len >= max_new_tokens, "decode workspace: max_len ", max_len,
            " is shorter than max_new_tokens ", max_new_tokens);
  Arena measure = Arena::MeasureOnly();
  Allocate(measure, config, max_new_tokens, max_len);
  arena_ = Arena(measure.used_bytes());
  buffers_ = Allocate(arena_, config, max_new_tokens, max_len);
  scratch_ = Arena(
      layers::SelfAttentionCachedScratchBytes(attention_, max_new_tokens, max_len, sizeof(float)));
}

ConstTensorView<float> IncrementalForward(const model::Model& model,
                                          std::span<const int32_t> tokens, KvCache& cache,
                                          DecodeWorkspace& workspace, const ThreadPool& threads) {
  const ModelConfig& config = model.config;
  const model::ModelParams<float>& params = model.params;
  const int64_t new_tokens = static_cast<int64_t>(tokens.size());
  const int64_t start = cache.length(), c = config.width;
  QKV_CHECK(new_tokens > 0, "incremental forward: no tokens to process");
  QKV_CHECK(new_tokens <= workspace.max_new_tokens(), "incremental forward: ", new_tokens,
            " tokens at once exceed the workspace's chunk of ", workspace.max_new_tokens());
  QKV_CHECK(cache.num_layers() == config.num_layers && cache.width() == c,
            "incremental forward: a cache of ", cache.num_layers(), " layers x width ",
            cache.width(), " does not fit a model of ", config.num_layers, " layers x width ", c);
  QKV_CHECK(workspace.vocab_size_ == config.vocab_size && workspace.width_ == c &&
                workspace.ffn_hidden_ == config.ffn_hidden(),
            "incremental forward: the workspace was made for another model (vocabulary ",
            workspace.vocab_size_, ", width ", workspace.width_, ")");
  QKV_CHECK(cache.max_len() <= workspace.max_len(), "incremental forward: a cache of ",
            cache.max_len(), " positions is longer than the workspace's ", workspace.max_len());
  QKV_CHECK(start + new_tokens <= cache.max_len(), "incremental forward: ", new_tokens,
            " new tokens after ", start, " cached ones exceed the cache's ", cache.max_len(),
            " positions");
  QKV_CHECK(config.position != PositionEncoding::kLearned || start + new_tokens <= config.context,
            "incremental forward: positions up to ", start + new_tokens - 1,
            " are past the learned position table of ", config.context, " positions");

  const ExecutionContext ctx{&threads, &workspace.scratch_};
  const DecodeWorkspace::Buffers& all = workspace.buffers_;
  ChunkBuffers b;
  b.stream = Rows(all.stream, new_tokens);
  b.attention_out = Rows(all.attention_out, new_tokens);
  b.norm_out = Rows(all.norm_out, new_tokens);
  b.norm_mean = Rows(all.norm_mean, new_tokens);
  b.norm_rstd = Rows(all.norm_rstd, new_tokens);
  b.ffn_up = Rows(all.ffn_up, new_tokens);
  if (config.ffn == FfnKind::kSwiGlu) {
    b.ffn_gate = Rows(all.ffn_gate, new_tokens);
    b.ffn_value = Rows(all.ffn_value, new_tokens);
  }
  b.ffn_hidden = Rows(all.ffn_hidden, new_tokens);
  b.ffn_out = Rows(all.ffn_out, new_tokens);
  TensorView<float> logits = Rows(all.logits, new_tokens);

  const ConstTensorView<int32_t> ids(tokens.data(), Shape{new_tokens});
  ops::EmbeddingForward<float>(ids, params.token_embedding, b.stream, ctx);
  const Shape sequence{1, new_tokens, c};
  if (config.position == PositionEncoding::kLearned) {
    ops::AddPositionsForward<float>(b.stream.Reshape(sequence), params.position_embedding, start,
                                    b.stream.Reshape(sequence), ctx);
  } else if (config.position == PositionEncoding::kSinusoidal) {
    ops::AddPositionsForward<float>(b.stream.Reshape(sequence), all.sinusoidal_table, start,
                                    b.stream.Reshape(sequence), ctx);
  }
  for (int64_t layer = 0; layer < config.num_layers; ++layer) {
    Block(config, workspace.attention_, params.blocks[layer], cache, layer, b, ctx);
  }
  cache.Advance(new_tokens);
  model::NormForward<float>(config, b.stream, params.final_norm_weight, params.final_norm_bias,
                            b.norm_out, b.norm_mean, b.norm_rstd, ctx);
  ops::LinearForward<float>(b.norm_out, params.token_embedding, {}, logits, ctx);
  return logits;
}

}  // namespace qkv::infer
