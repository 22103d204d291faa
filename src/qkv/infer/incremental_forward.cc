#include "qkv/infer/incremental_forward.h"

#include <utility>

#include "qkv/model/transformer.h"
#include "qkv/ops/embedding.h"
#include "qkv/ops/linear.h"
#include "qkv/ops/position_add.h"
#include "qkv/ops/sinusoidal.h"
#include "qkv/runtime/execution_context.h"

namespace qkv::infer {

namespace {

using model::ModelConfig;
using model::PositionEncoding;

// A view of the first `rows` rows of a (Tmax, cols) or (Tmax) buffer.
template <typename T>
TensorView<T> Rows(TensorView<T> buffer, int64_t rows) {
  return TensorView<T>(buffer.data(),
                       buffer.rank() == 1 ? Shape{rows} : Shape{rows, buffer.dim(1)});
}

}  // namespace

DecodeWorkspace::Buffers DecodeWorkspace::Allocate(Arena& arena, const ModelConfig& config,
                                                   int64_t max_new_tokens, int64_t max_len) {
  const int64_t rows = max_new_tokens, c = config.width;
  Buffers b;
  b.stream = arena.Allocate<float>(Shape{rows, c});
  b.next_stream = arena.Allocate<float>(Shape{rows, c});
  b.norm_out = arena.Allocate<float>(Shape{rows, c});
  b.norm = layers::AllocateNormSaved<float>(arena, rows);
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
      block_(model::BlockConfigFor(config)) {
  config.Validate();
  // Dynamic RoPE scaling rotates every position of a sequence with the frequencies of its
  // length; decoding uses those of the longest sequence the workspace serves, so that cached
  // keys never need rotating again.
  if (block_.attention.rope.has_value()) block_.attention.rope->sequence_length = max_len;
  QKV_CHECK(max_new_tokens > 0, "decode workspace: max_new_tokens must be > 0, got ",
            max_new_tokens);
  QKV_CHECK(max_len >= max_new_tokens, "decode workspace: max_len ", max_len,
            " is shorter than max_new_tokens ", max_new_tokens);
  Arena measure = Arena::MeasureOnly();
  Allocate(measure, config, max_new_tokens, max_len);
  arena_ = Arena(measure.used_bytes());
  buffers_ = Allocate(arena_, config, max_new_tokens, max_len);
  scratch_ =
      Arena(layers::BlockForwardCachedScratchBytes(block_, max_new_tokens, max_len, sizeof(float)));
}

ConstTensorView<float> IncrementalForward(const model::Model& model,
                                          std::span<const int32_t> tokens, KvCache& cache,
                                          DecodeWorkspace& workspace, const ThreadPool& threads,
                                          LogitRows logit_rows) {
  const ModelConfig& config = model.config;
  const model::ModelParams<float>& params = model.params;
  const int64_t new_tokens = static_cast<int64_t>(tokens.size());
  const int64_t start = cache.length(), c = config.width;
  QKV_CHECK(new_tokens > 0, "incremental forward: no tokens to process");
  QKV_CHECK(new_tokens <= workspace.max_new_tokens(), "incremental forward: ", new_tokens,
            " tokens at once exceed the workspace's chunk of ", workspace.max_new_tokens());
  QKV_CHECK(cache.num_layers() == config.num_layers && cache.width() == config.kv_width(),
            "incremental forward: a cache of ", cache.num_layers(), " layers x width ",
            cache.width(), " does not fit a model of ", config.num_layers, " layers x width ",
            config.kv_width());
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

  ExecutionContext ctx{&threads, &workspace.scratch_};
  ctx.bf16_weights = workspace.bf16_weights_;
  ctx.precision = workspace.precision_;
  const DecodeWorkspace::Buffers& all = workspace.buffers_;
  const Shape sequence{1, new_tokens, c};
  TensorView<float> stream = Rows(all.stream, new_tokens).Reshape(sequence);
  TensorView<float> next = Rows(all.next_stream, new_tokens).Reshape(sequence);

  const ConstTensorView<int32_t> ids(tokens.data(), Shape{new_tokens});
  ops::EmbeddingForward<float>(ids, params.token_embedding, stream.Reshape(Shape{new_tokens, c}),
                               ctx);
  if (config.position == PositionEncoding::kLearned) {
    ops::AddPositionsForward<float>(stream, params.position_embedding, start, stream, ctx);
  } else if (config.position == PositionEncoding::kSinusoidal) {
    ops::AddPositionsForward<float>(stream, all.sinusoidal_table, start, stream, ctx);
  }
  for (int64_t layer = 0; layer < config.num_layers; ++layer) {
    layers::BlockForwardCached<float>(workspace.block_, params.blocks[static_cast<size_t>(layer)],
                                      stream, cache.keys(layer), cache.values(layer), start, next,
                                      ctx);
    std::swap(stream, next);
  }
  cache.Advance(new_tokens);
  const int64_t first_row = logit_rows == LogitRows::kLast ? new_tokens - 1 : 0;
  const int64_t rows = new_tokens - first_row;
  const ConstTensorView<float> final_stream(stream.data() + first_row * c, Shape{rows, c});
  TensorView<float> norm_out = Rows(all.norm_out, rows);
  const layers::NormSaved<float> norm{Rows(all.norm.mean, rows), Rows(all.norm.rstd, rows)};
  layers::NormForward<float>(workspace.block_.norm, params.final_norm, final_stream, norm_out, norm,
                             ctx);
  TensorView<float> logits = Rows(all.logits, rows);
  ops::LinearForward<float>(norm_out, params.head(), {}, logits, ctx);
  return logits;
}

}  // namespace qkv::infer
