#include "qkv/model/transformer.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "qkv/ops/alibi.h"
#include "qkv/ops/cross_entropy.h"
#include "qkv/ops/dropout.h"
#include "qkv/ops/embedding.h"
#include "qkv/ops/linear.h"
#include "qkv/ops/op_checks.h"
#include "qkv/ops/position_add.h"
#include "qkv/ops/sinusoidal.h"

namespace qkv::model {

namespace {

template <typename T>
void MaybeDropout(const ModelConfig& config, bool training, Random* random, TensorView<T> values,
                  TensorView<uint8_t> keep, const ExecutionContext& ctx) {
  if (!training || config.dropout == 0.0f) return;
  QKV_CHECK(random != nullptr, "model: dropout needs a random generator");
  ops::DropoutForward<T>(values, config.dropout, *random, keep.Reshape(values.shape()), values,
                         ctx);
}

// ModelBackward's own temporaries: the gradient of the stream, twice (ping-pong over blocks).
template <typename T>
struct BackwardScratch {
  TensorView<T> d_stream, d_previous;  // (B, T, C) each
};

template <typename T>
BackwardScratch<T> AllocateBackwardScratch(Arena& arena, const ModelConfig& config, int64_t batch,
                                           int64_t seq_len) {
  const Shape sequence{batch, seq_len, config.width};
  return {arena.Allocate<T>(sequence), arena.Allocate<T>(sequence)};
}

}  // namespace

layers::NormConfig NormConfigFor(const ModelConfig& config) {
  return {config.norm, config.width, config.bias, config.norm_eps};
}

layers::BlockConfig BlockConfigFor(const ModelConfig& config, int64_t seq_len) {
  layers::BlockConfig block;
  block.attention = SelfAttentionConfigFor(config, seq_len);
  block.norm = NormConfigFor(config);
  block.ffn = {config.width, config.ffn_hidden(), config.ffn, config.bias};
  block.placement = config.norm_placement;
  block.dropout = config.dropout;
  return block;
}

double InitStddev(const ModelConfig& config, ParameterInit init) {
  switch (init) {
    case ParameterInit::kNormal:
      return 0.02;
    case ParameterInit::kNormalResidual:
      return 0.02 / std::sqrt(2.0 * static_cast<double>(config.num_layers));
    case ParameterInit::kZeros:
    case ParameterInit::kOnes:
      return 0.0;
  }
  return 0.0;
}

layers::SelfAttentionConfig SelfAttentionConfigFor(const ModelConfig& config, int64_t seq_len) {
  layers::SelfAttentionConfig attention{config.width, config.num_heads, /*causal=*/true,
                                        config.bias, std::nullopt};
  attention.num_kv_heads = config.num_kv_heads;
  attention.head_size = config.head_size;
  const bool flash = config.attention == AttentionImpl::kFlash ||
                     (config.attention == AttentionImpl::kAuto && seq_len > 0 &&
                      seq_len >= kFlashAttentionFromLength);
  attention.kernel = flash ? layers::AttentionKernel::kFlash : layers::AttentionKernel::kSimple;
  if (config.position == PositionEncoding::kRope) {
    attention.rope = RopeConfigFor(config);
    attention.rope->sequence_length = seq_len;  // dynamic scaling depends on it
  }
  if (config.position == PositionEncoding::kAlibi) {
    attention.alibi_slopes = ops::AlibiSlopes(config.num_heads);
  }
  return attention;
}

template <typename T>
ModelActivations<T> AllocateModelActivations(Arena& arena, const ModelConfig& config, int64_t batch,
                                             int64_t seq_len) {
  config.Validate();
  ops::CheckPositive("model", "batch", batch);
  ops::CheckPositive("model", "sequence length", seq_len);
  QKV_CHECK(seq_len <= config.context || config.position != PositionEncoding::kLearned,
            "model: sequence length ", seq_len, " exceeds the learned position table of ",
            config.context, " positions");
  const int64_t rows = batch * seq_len, c = config.width;
  const bool dropout = config.dropout > 0.0f;
  const Shape sequence{batch, seq_len, c}, row_shape{rows, c}, stats{rows};
  ModelActivations<T> acts;
  acts.batch = batch;
  acts.seq_len = seq_len;
  if (config.position == PositionEncoding::kSinusoidal) {
    acts.sinusoidal_table = arena.Allocate<T>(Shape{seq_len, c});
    if (!arena.measure_only()) ops::FillSinusoidalTable(acts.sinusoidal_table);
  }
  for (int64_t l = 0; l <= config.num_layers; ++l)
    acts.stream.push_back(arena.Allocate<T>(sequence));
  if (dropout) acts.embedding_keep = arena.Allocate<uint8_t>(sequence);
  acts.block_config = BlockConfigFor(config, seq_len);
  for (int64_t l = 0; l < config.num_layers; ++l) {
    acts.blocks.push_back(layers::AllocateBlockActivations<T>(
        arena, acts.block_config, batch, seq_len, layers::BlockPass::kTraining));
  }
  acts.final_norm_out = arena.Allocate<T>(row_shape);
  acts.final_norm = layers::AllocateNormSaved<T>(arena, rows);
  acts.logits = arena.Allocate<T>(Shape{rows, config.vocab_size});
  acts.logsumexp = arena.Allocate<T>(stats);
  return acts;
}

size_t ModelScratchBytes(const ModelConfig& config, int64_t batch, int64_t seq_len, int num_threads,
                         size_t element_size) {
  const size_t own = MeasureBytes(element_size, [&](Arena& arena, auto element) {
    AllocateBackwardScratch<decltype(element)>(arena, config, batch, seq_len);
  });
  const layers::BlockConfig block = BlockConfigFor(config, seq_len);
  // The blocks run one at a time, forward (no buffers of the model's own held) or backward.
  return std::max(
      layers::BlockForwardScratchBytes(block, batch, seq_len, num_threads, element_size),
      own + layers::BlockBackwardScratchBytes(block, batch, seq_len, num_threads, element_size));
}

size_t ModelForwardScratchBytes(const ModelConfig& config, int64_t batch, int64_t seq_len,
                                int num_threads, size_t element_size) {
  return layers::BlockForwardScratchBytes(BlockConfigFor(config, seq_len), batch, seq_len,
                                          num_threads, element_size);
}

template <typename T>
T ModelForward(const ModelConfig& config, const ModelParams<T>& params,
               ConstTensorView<int32_t> tokens, ConstTensorView<int32_t> targets, bool training,
               Random* dropout_random, const ModelActivations<T>& acts,
               const ExecutionContext& ctx) {
  ops::CheckShape("model", "tokens", tokens, Shape{acts.batch, acts.seq_len});
  if (!targets.empty()) ops::CheckShape("model", "targets", targets, tokens.shape());
  const int64_t rows = acts.batch * acts.seq_len, c = config.width;
  const Shape row_shape{rows, c};
  TensorView<T> x0 = acts.stream[0];

  ops::EmbeddingForward<T>(tokens.Reshape(Shape{rows}), params.token_embedding,
                           x0.Reshape(row_shape), ctx);
  if (config.position == PositionEncoding::kLearned) {
    ops::AddPositionsForward<T>(x0, params.position_embedding, 0, x0, ctx);
  } else if (config.position == PositionEncoding::kSinusoidal) {
    ops::AddPositionsForward<T>(x0, acts.sinusoidal_table, 0, x0, ctx);
  }
  MaybeDropout(config, training, dropout_random, x0, acts.embedding_keep, ctx);
  for (size_t l = 0; l < acts.blocks.size(); ++l) {
    layers::BlockForward<T>(acts.block_config, params.blocks[l], acts.stream[l], training,
                            dropout_random, acts.blocks[l], acts.stream[l + 1], ctx);
  }
  layers::NormForward<T>(acts.block_config.norm, params.final_norm,
                         acts.stream.back().Reshape(row_shape), acts.final_norm_out,
                         acts.final_norm, ctx);
  ops::LinearForward<T>(acts.final_norm_out, params.head(), {}, acts.logits, ctx);
  if (targets.empty()) return T(0);
  return ops::CrossEntropyForward<T>(acts.logits, targets.Reshape(Shape{rows}),
                                     ops::kDefaultIgnoreIndex, acts.logsumexp, ctx);
}

template <typename T>
void ModelBackward(const ModelConfig& config, const ModelParams<T>& params,
                   ConstTensorView<int32_t> tokens, ConstTensorView<int32_t> targets, T loss_scale,
                   const ModelActivations<T>& acts, const ModelParams<T>& grads,
                   const ExecutionContext& ctx) {
  ops::CheckShape("model", "tokens", tokens, Shape{acts.batch, acts.seq_len});
  ops::CheckShape("model", "targets", targets, tokens.shape());
  const int64_t rows = acts.batch * acts.seq_len, c = config.width;
  const Shape row_shape{rows, c};
  Arena& scratch = ctx.Scratch();
  ArenaScope release(scratch);
  const BackwardScratch<T> s =
      AllocateBackwardScratch<T>(scratch, config, acts.batch, acts.seq_len);
  TensorView<T> d_stream = s.d_stream, d_previous = s.d_previous;

  TensorView<T> d_logits = acts.logits;  // in place: the logits are not needed any more
  ops::CrossEntropyBackward<T>(loss_scale, acts.logits, targets.Reshape(Shape{rows}),
                               ops::kDefaultIgnoreIndex, acts.logsumexp, d_logits, ctx);
  TensorView<T> d_final = d_previous.Reshape(row_shape);
  ops::LinearBackward<T>(d_logits, acts.final_norm_out, params.head(), d_final, grads.head(), {},
                         ctx);
  layers::NormBackward<T>(acts.block_config.norm, params.final_norm, d_final,
                          acts.stream.back().Reshape(row_shape), acts.final_norm,
                          d_stream.Reshape(row_shape), grads.final_norm, ctx);
  for (size_t l = acts.blocks.size(); l-- > 0;) {
    layers::BlockBackward<T>(acts.block_config, params.blocks[l], acts.stream[l], acts.blocks[l],
                             d_stream, d_previous, grads.blocks[l], ctx);
    std::swap(d_stream, d_previous);
  }
  if (config.dropout > 0.0f) {
    ops::DropoutBackward<T>(d_stream, acts.embedding_keep.Reshape(d_stream.shape()), config.dropout,
                            d_stream, ctx);
  }
  if (config.position == PositionEncoding::kLearned) {
    ops::AddPositionsBackward<T>(d_stream, 0, grads.position_embedding, ctx);
  }
  ops::EmbeddingBackward<T>(d_stream.Reshape(row_shape), tokens.Reshape(Shape{rows}),
                            grads.token_embedding, ctx);
}

template <typename T>
void InitializeParameters(const ModelConfig& config, ModelParams<T>& params, Random& random) {
  ForEachParameter(config, params, [&](const ParameterInfo& info, TensorView<T>& slot) {
    const double stddev = InitStddev(config, info.init);
    if (stddev > 0) {
      random.FillNormal(slot, 0.0, stddev);
    } else {
      const T constant = info.init == ParameterInit::kOnes ? T(1) : T(0);
      for (T& value : slot) value = constant;
    }
  });
}

int64_t CountParameters(const ModelConfig& config) {
  ModelParams<float> params;
  int64_t count = 0;
  ForEachParameter(config, params, [&](const ParameterInfo& info, TensorView<float>&) {
    count += info.shape.NumElements();
  });
  return count;
}

size_t ParameterBytes(const ModelConfig& config, size_t element_size) {
  ModelParams<float> params;
  size_t bytes = 0;
  ForEachParameter(config, params, [&](const ParameterInfo& info, TensorView<float>&) {
    bytes += (static_cast<size_t>(info.shape.NumElements()) * element_size + kBufferAlignment - 1) /
             kBufferAlignment * kBufferAlignment;
  });
  return bytes;
}

template ModelActivations<float> AllocateModelActivations<float>(Arena&, const ModelConfig&,
                                                                 int64_t, int64_t);
template ModelActivations<double> AllocateModelActivations<double>(Arena&, const ModelConfig&,
                                                                   int64_t, int64_t);
template float ModelForward<float>(const ModelConfig&, const ModelParams<float>&,
                                   ConstTensorView<int32_t>, ConstTensorView<int32_t>, bool,
                                   Random*, const ModelActivations<float>&,
                                   const ExecutionContext&);
template double ModelForward<double>(const ModelConfig&, const ModelParams<double>&,
                                     ConstTensorView<int32_t>, ConstTensorView<int32_t>, bool,
                                     Random*, const ModelActivations<double>&,
                                     const ExecutionContext&);
template void ModelBackward<float>(const ModelConfig&, const ModelParams<float>&,
                                   ConstTensorView<int32_t>, ConstTensorView<int32_t>, float,
                                   const ModelActivations<float>&, const ModelParams<float>&,
                                   const ExecutionContext&);
template void ModelBackward<double>(const ModelConfig&, const ModelParams<double>&,
                                    ConstTensorView<int32_t>, ConstTensorView<int32_t>, double,
                                    const ModelActivations<double>&, const ModelParams<double>&,
                                    const ExecutionContext&);
template void InitializeParameters<float>(const ModelConfig&, ModelParams<float>&, Random&);
template void InitializeParameters<double>(const ModelConfig&, ModelParams<double>&, Random&);

}  // namespace qkv::model
