#include "qkv/model/transformer.h"

#include <algorithm>
#include <cstring>

#include "qkv/layers/head_packing.h"
#include "qkv/ops/alibi.h"
#include "qkv/ops/cross_entropy.h"
#include "qkv/ops/dropout.h"
#include "qkv/ops/embedding.h"
#include "qkv/ops/gelu.h"
#include "qkv/ops/layer_norm.h"
#include "qkv/ops/linear.h"
#include "qkv/ops/op_checks.h"
#include "qkv/ops/position_add.h"
#include "qkv/ops/relu.h"
#include "qkv/ops/rms_norm.h"
#include "qkv/ops/sinusoidal.h"
#include "qkv/ops/swiglu.h"
#include "qkv/runtime/parallel_for.h"

namespace qkv::model {

namespace {

template <typename T>
FeedForwardBuffers<T> FeedForwardBuffersOf(const BlockActivations<T>& acts) {
  return {acts.ffn_up, acts.ffn_gate, acts.ffn_value, acts.ffn_hidden, acts.ffn_out};
}

// Writes d_input (=); accumulates d_weight, d_bias.
template <typename T>
void NormBackward(const ModelConfig& config, ConstTensorView<T> d_output, ConstTensorView<T> input,
                  ConstTensorView<T> weight, TensorView<T> mean, TensorView<T> rstd,
                  TensorView<T> d_input, TensorView<T> d_weight, TensorView<T> d_bias,
                  const ExecutionContext& ctx) {
  if (config.norm == NormKind::kLayerNorm) {
    ops::LayerNormBackward<T>(d_output, input, weight, {mean, rstd}, d_input, d_weight, d_bias,
                              ctx);
  } else {
    ops::RmsNormBackward<T>(d_output, input, weight, rstd, d_input, d_weight, ctx);
  }
}

// out = a + b, elementwise over (B, T, C) or any equal shapes; out may alias a or b.
template <typename T>
void Add(ConstTensorView<T> a, ConstTensorView<T> b, TensorView<T> out,
         const ExecutionContext& ctx) {
  ParallelFor(
      a.size(), ctx,
      [&](int64_t begin, int64_t end, int) {
        for (int64_t i = begin; i < end; ++i) out.data()[i] = a.data()[i] + b.data()[i];
      },
      16384);
}

template <typename T>
void MaybeDropout(const ModelConfig& config, bool training, Random* random, TensorView<T> values,
                  TensorView<uint8_t> keep, const ExecutionContext& ctx) {
  if (!training || config.dropout == 0.0f) return;
  QKV_CHECK(random != nullptr, "model: dropout needs a random generator");
  ops::DropoutForward<T>(values, config.dropout, *random, keep.Reshape(values.shape()), values,
                         ctx);
}

// d_values (in place) through the dropout of the last training forward pass.
template <typename T>
void MaybeDropoutBackward(const ModelConfig& config, TensorView<T> d_values,
                          TensorView<uint8_t> keep, const ExecutionContext& ctx) {
  if (config.dropout == 0.0f) return;
  ops::DropoutBackward<T>(d_values, keep.Reshape(d_values.shape()), config.dropout, d_values, ctx);
}

// Writes d_input (=) from d_ffn_out (the gradient after dropout's backward).
template <typename T>
void FeedForwardBackward(const ModelConfig& config, const BlockParams<T>& params,
                         const BlockParams<T>& grads, ConstTensorView<T> input,
                         const BlockActivations<T>& acts, ConstTensorView<T> d_ffn_out,
                         TensorView<T> d_input, const ExecutionContext& ctx) {
  const int64_t rows = input.dim(0), f = config.ffn_hidden();
  Arena& scratch = ctx.Scratch();
  ArenaScope release(scratch);
  TensorView<T> d_hidden = scratch.Allocate<T>(acts.ffn_hidden.shape());
  TensorView<T> d_up = scratch.Allocate<T>(acts.ffn_up.shape());
  ops::LinearBackward<T>(d_ffn_out, acts.ffn_hidden, params.ffn_down_weight, d_hidden,
                         grads.ffn_down_weight, grads.ffn_down_bias, ctx);
  switch (config.ffn) {
    case FfnKind::kSwiGlu: {
      TensorView<T> d_gate = scratch.Allocate<T>(acts.ffn_gate.shape());
      TensorView<T> d_value = scratch.Allocate<T>(acts.ffn_value.shape());
      ops::SwiGluBackward<T>(d_hidden, acts.ffn_gate, acts.ffn_value, d_gate, d_value, ctx);
      layers::PackColumns<T>(d_gate.data(), rows, f, 2, 0, d_up.data(), ctx);
      layers::PackColumns<T>(d_value.data(), rows, f, 2, 1, d_up.data(), ctx);
      break;
    }
    case FfnKind::kGeluTanh:
      ops::GeluBackward<T>(d_hidden, acts.ffn_up, ops::GeluApproximation::kTanh, d_up, ctx);
      break;
    case FfnKind::kGelu:
      ops::GeluBackward<T>(d_hidden, acts.ffn_up, ops::GeluApproximation::kNone, d_up, ctx);
      break;
    case FfnKind::kRelu:
      ops::ReluBackward<T>(d_hidden, acts.ffn_up, d_up, ctx);
      break;
  }
  ops::LinearBackward<T>(d_up, input, params.ffn_up_weight, d_input, grads.ffn_up_weight,
                         grads.ffn_up_bias, ctx);
}

template <typename T>
void BlockForward(const ModelConfig& config, const BlockParams<T>& params, ConstTensorView<T> input,
                  bool training, Random* random, const BlockActivations<T>& acts,
                  TensorView<T> output, const ExecutionContext& ctx) {
  const layers::SelfAttentionConfig attention_config = SelfAttentionConfigFor(config, input.dim(1));
  const Shape sequence_shape = input.shape();  // (B, T, C)
  const Shape rows_shape{input.dim(0) * input.dim(1), input.dim(2)};
  if (config.norm_placement == NormPlacement::kPre) {
    NormForward<T>(config, input.Reshape(rows_shape), params.norm1_weight, params.norm1_bias,
                   acts.norm1_out, acts.norm1_mean, acts.norm1_rstd, ctx);
    layers::SelfAttentionForward<T>(attention_config, params.attention,
                                    acts.norm1_out.Reshape(sequence_shape), 0, {}, acts.attention,
                                    acts.attention_out, ctx);
    MaybeDropout(config, training, random, acts.attention_out, acts.attention_keep, ctx);
    Add<T>(input, acts.attention_out, acts.residual1, ctx);
    NormForward<T>(config, acts.residual1.Reshape(rows_shape), params.norm2_weight,
                   params.norm2_bias, acts.norm2_out, acts.norm2_mean, acts.norm2_rstd, ctx);
    FeedForwardForward<T>(config, params, acts.norm2_out, FeedForwardBuffersOf(acts), ctx);
    MaybeDropout(config, training, random, acts.ffn_out, acts.ffn_keep, ctx);
    Add<T>(acts.residual1, acts.ffn_out.Reshape(sequence_shape), output, ctx);
  } else {
    layers::SelfAttentionForward<T>(attention_config, params.attention, input, 0, {},
                                    acts.attention, acts.attention_out, ctx);
    MaybeDropout(config, training, random, acts.attention_out, acts.attention_keep, ctx);
    Add<T>(input, acts.attention_out, acts.residual1, ctx);
    NormForward<T>(config, acts.residual1.Reshape(rows_shape), params.norm1_weight,
                   params.norm1_bias, acts.norm1_out, acts.norm1_mean, acts.norm1_rstd, ctx);
    FeedForwardForward<T>(config, params, acts.norm1_out, FeedForwardBuffersOf(acts), ctx);
    MaybeDropout(config, training, random, acts.ffn_out, acts.ffn_keep, ctx);
    Add<T>(acts.norm1_out.Reshape(sequence_shape), acts.ffn_out.Reshape(sequence_shape),
           acts.residual2, ctx);
    NormForward<T>(config, acts.residual2.Reshape(rows_shape), params.norm2_weight,
                   params.norm2_bias, output.Reshape(rows_shape), acts.norm2_mean, acts.norm2_rstd,
                   ctx);
  }
}

// Writes d_input (=) from d_output; accumulates the block's parameter gradients.
template <typename T>
void BlockBackward(const ModelConfig& config, const BlockParams<T>& params,
                   const BlockParams<T>& grads, ConstTensorView<T> input,
                   const BlockActivations<T>& acts, ConstTensorView<T> d_output,
                   TensorView<T> d_input, const ExecutionContext& ctx) {
  const layers::SelfAttentionConfig attention_config = SelfAttentionConfigFor(config, input.dim(1));
  const Shape sequence_shape = input.shape();
  const Shape rows_shape{input.dim(0) * input.dim(1), input.dim(2)};
  Arena& scratch = ctx.Scratch();
  ArenaScope release(scratch);
  TensorView<T> d_residual = scratch.Allocate<T>(rows_shape);  // gradient of the stream
  TensorView<T> d_branch = scratch.Allocate<T>(rows_shape);    // gradient of a branch output
  TensorView<T> d_branch_input = scratch.Allocate<T>(rows_shape);

  if (config.norm_placement == NormPlacement::kPre) {
    // output = residual1 + ffn_out(N2(residual1))
    std::memcpy(d_branch.data(), d_output.data(), d_output.size() * sizeof(T));
    MaybeDropoutBackward(config, d_branch, acts.ffn_keep, ctx);
    FeedForwardBackward<T>(config, params, grads, acts.norm2_out, acts, d_branch, d_branch_input,
                           ctx);
    NormBackward<T>(config, d_branch_input, acts.residual1.Reshape(rows_shape), params.norm2_weight,
                    acts.norm2_mean, acts.norm2_rstd, d_residual, grads.norm2_weight,
                    grads.norm2_bias, ctx);
    Add<T>(d_residual, d_output.Reshape(rows_shape), d_residual, ctx);
    // residual1 = input + attention_out(N1(input))
    std::memcpy(d_branch.data(), d_residual.data(), d_residual.size() * sizeof(T));
    MaybeDropoutBackward(config, d_branch, acts.attention_keep, ctx);
    layers::SelfAttentionBackward<T>(attention_config, params.attention,
                                     acts.norm1_out.Reshape(sequence_shape), 0, {}, acts.attention,
                                     d_branch.Reshape(sequence_shape),
                                     d_branch_input.Reshape(sequence_shape), grads.attention, ctx);
    NormBackward<T>(config, d_branch_input, input.Reshape(rows_shape), params.norm1_weight,
                    acts.norm1_mean, acts.norm1_rstd, d_input.Reshape(rows_shape),
                    grads.norm1_weight, grads.norm1_bias, ctx);
    Add<T>(d_input, d_residual.Reshape(sequence_shape), d_input, ctx);
  } else {
    // output = N2(residual2), residual2 = norm1_out + ffn_out(norm1_out)
    NormBackward<T>(config, d_output.Reshape(rows_shape), acts.residual2.Reshape(rows_shape),
                    params.norm2_weight, acts.norm2_mean, acts.norm2_rstd, d_residual,
                    grads.norm2_weight, grads.norm2_bias, ctx);
    std::memcpy(d_branch.data(), d_residual.data(), d_residual.size() * sizeof(T));
    MaybeDropoutBackward(config, d_branch, acts.ffn_keep, ctx);
    FeedForwardBackward<T>(config, params, grads, acts.norm1_out, acts, d_branch, d_branch_input,
                           ctx);
    Add<T>(d_residual, d_branch_input, d_residual, ctx);  // d norm1_out
    // norm1_out = N1(residual1), residual1 = input + attention_out(input)
    NormBackward<T>(config, d_residual, acts.residual1.Reshape(rows_shape), params.norm1_weight,
                    acts.norm1_mean, acts.norm1_rstd, d_branch, grads.norm1_weight,
                    grads.norm1_bias, ctx);  // d_branch = d residual1
    std::memcpy(d_residual.data(), d_branch.data(), d_branch.size() * sizeof(T));
    MaybeDropoutBackward(config, d_branch, acts.attention_keep, ctx);
    layers::SelfAttentionBackward<T>(attention_config, params.attention, input, 0, {},
                                     acts.attention, d_branch.Reshape(sequence_shape), d_input,
                                     grads.attention, ctx);
    Add<T>(d_input, d_residual.Reshape(sequence_shape), d_input, ctx);
  }
}

}  // namespace

template <typename T>
void NormForward(const ModelConfig& config, ConstTensorView<T> input, ConstTensorView<T> weight,
                 ConstTensorView<T> bias, TensorView<T> output, TensorView<T> mean,
                 TensorView<T> rstd, const ExecutionContext& ctx) {
  const T eps = static_cast<T>(config.norm_eps);
  if (config.norm == NormKind::kLayerNorm) {
    ops::LayerNormForward<T>(input, weight, bias, eps, output, {mean, rstd}, ctx);
  } else {
    ops::RmsNormForward<T>(input, weight, eps, output, rstd, ctx);
  }
}

template <typename T>
void FeedForwardForward(const ModelConfig& config, const BlockParams<T>& params,
                        ConstTensorView<T> input, const FeedForwardBuffers<T>& buffers,
                        const ExecutionContext& ctx) {
  const int64_t rows = input.dim(0), f = config.ffn_hidden();
  ops::LinearForward<T>(input, params.ffn_up_weight, params.ffn_up_bias, buffers.up, ctx);
  switch (config.ffn) {
    case FfnKind::kSwiGlu:
      layers::UnpackColumns<T>(buffers.up.data(), rows, f, 2, 0, buffers.gate.data(), ctx);
      layers::UnpackColumns<T>(buffers.up.data(), rows, f, 2, 1, buffers.value.data(), ctx);
      ops::SwiGluForward<T>(buffers.gate, buffers.value, buffers.hidden, ctx);
      break;
    case FfnKind::kGeluTanh:
      ops::GeluForward<T>(buffers.up, ops::GeluApproximation::kTanh, buffers.hidden, ctx);
      break;
    case FfnKind::kGelu:
      ops::GeluForward<T>(buffers.up, ops::GeluApproximation::kNone, buffers.hidden, ctx);
      break;
    case FfnKind::kRelu:
      ops::ReluForward<T>(buffers.up, buffers.hidden, ctx);
      break;
  }
  ops::LinearForward<T>(buffers.hidden, params.ffn_down_weight, params.ffn_down_bias, buffers.out,
                        ctx);
}

layers::SelfAttentionConfig SelfAttentionConfigFor(const ModelConfig& config, int64_t seq_len) {
  layers::SelfAttentionConfig attention{config.width, config.num_heads, /*causal=*/true,
                                        config.bias, std::nullopt};
  const bool flash = config.attention == AttentionImpl::kFlash ||
                     (config.attention == AttentionImpl::kAuto && seq_len > 0 &&
                      seq_len >= kFlashAttentionFromLength);
  attention.kernel = flash ? layers::AttentionKernel::kFlash : layers::AttentionKernel::kSimple;
  if (config.position == PositionEncoding::kRope) attention.rope = RopeConfigFor(config);
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
  const int64_t rows = batch * seq_len, c = config.width, f = config.ffn_hidden();
  const bool swiglu = config.ffn == FfnKind::kSwiGlu;
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
  const layers::SelfAttentionConfig attention_config = SelfAttentionConfigFor(config, seq_len);
  for (int64_t l = 0; l < config.num_layers; ++l) {
    BlockActivations<T> block;
    block.norm1_out = arena.Allocate<T>(row_shape);
    block.norm1_mean = arena.Allocate<T>(stats);
    block.norm1_rstd = arena.Allocate<T>(stats);
    block.attention =
        layers::AllocateSelfAttentionActivations<T>(arena, attention_config, batch, seq_len);
    block.attention_out = arena.Allocate<T>(sequence);
    if (dropout) block.attention_keep = arena.Allocate<uint8_t>(sequence);
    block.residual1 = arena.Allocate<T>(sequence);
    if (config.norm_placement == NormPlacement::kPre)
      block.norm2_out = arena.Allocate<T>(row_shape);
    block.norm2_mean = arena.Allocate<T>(stats);
    block.norm2_rstd = arena.Allocate<T>(stats);
    block.ffn_up = arena.Allocate<T>(Shape{rows, swiglu ? 2 * f : f});
    if (swiglu) {
      block.ffn_gate = arena.Allocate<T>(Shape{rows, f});
      block.ffn_value = arena.Allocate<T>(Shape{rows, f});
    }
    block.ffn_hidden = arena.Allocate<T>(Shape{rows, f});
    block.ffn_out = arena.Allocate<T>(row_shape);
    if (dropout) block.ffn_keep = arena.Allocate<uint8_t>(row_shape);
    if (config.norm_placement == NormPlacement::kPost)
      block.residual2 = arena.Allocate<T>(sequence);
    acts.blocks.push_back(block);
  }
  acts.final_norm_out = arena.Allocate<T>(row_shape);
  acts.final_norm_mean = arena.Allocate<T>(stats);
  acts.final_norm_rstd = arena.Allocate<T>(stats);
  acts.logits = arena.Allocate<T>(Shape{rows, config.vocab_size});
  acts.logsumexp = arena.Allocate<T>(stats);
  return acts;
}

size_t ModelScratchBytes(const ModelConfig& config, int64_t batch, int64_t seq_len, int num_threads,
                         size_t element_size) {
  const size_t rows = static_cast<size_t>(batch * seq_len);
  const size_t c = static_cast<size_t>(config.width), f = static_cast<size_t>(config.ffn_hidden());
  // ModelBackward: 2 (rows, C) buffers; block backward: 3 more; inside it either the feed-forward
  // backward (hidden, up and SwiGLU halves: at most 5 (rows, F)) or self-attention's forward or
  // backward. Plus alignment slack for each allocation.
  const size_t block = element_size * 5 * rows * c;
  const size_t ffn = element_size * 5 * rows * f;
  const size_t attention = layers::SelfAttentionScratchBytes(
      SelfAttentionConfigFor(config, seq_len), batch, seq_len, num_threads, element_size);
  return block + std::max(ffn, attention) + 32 * kBufferAlignment;
}

size_t ModelForwardScratchBytes(const ModelConfig& config, int64_t batch, int64_t seq_len,
                                int num_threads, size_t element_size) {
  return layers::SelfAttentionForwardScratchBytes(SelfAttentionConfigFor(config, seq_len), batch,
                                                  seq_len, num_threads, element_size);
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
  for (int64_t l = 0; l < config.num_layers; ++l) {
    BlockForward<T>(config, params.blocks[l], acts.stream[l], training, dropout_random,
                    acts.blocks[l], acts.stream[l + 1], ctx);
  }
  NormForward<T>(config, acts.stream[config.num_layers].Reshape(row_shape),
                 params.final_norm_weight, params.final_norm_bias, acts.final_norm_out,
                 acts.final_norm_mean, acts.final_norm_rstd, ctx);
  ops::LinearForward<T>(acts.final_norm_out, params.token_embedding, {}, acts.logits, ctx);
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
  const Shape row_shape{rows, c}, sequence{acts.batch, acts.seq_len, c};
  Arena& scratch = ctx.Scratch();
  ArenaScope release(scratch);
  TensorView<T> d_stream = scratch.Allocate<T>(sequence);
  TensorView<T> d_previous = scratch.Allocate<T>(sequence);

  TensorView<T> d_logits = acts.logits;  // in place: the logits are not needed any more
  ops::CrossEntropyBackward<T>(loss_scale, acts.logits, targets.Reshape(Shape{rows}),
                               ops::kDefaultIgnoreIndex, acts.logsumexp, d_logits, ctx);
  TensorView<T> d_final = d_previous.Reshape(row_shape);
  ops::LinearBackward<T>(d_logits, acts.final_norm_out, params.token_embedding, d_final,
                         grads.token_embedding, {}, ctx);
  NormBackward<T>(config, d_final, acts.stream[config.num_layers].Reshape(row_shape),
                  params.final_norm_weight, acts.final_norm_mean, acts.final_norm_rstd,
                  d_stream.Reshape(row_shape), grads.final_norm_weight, grads.final_norm_bias, ctx);
  for (int64_t l = config.num_layers - 1; l >= 0; --l) {
    BlockBackward<T>(config, params.blocks[l], grads.blocks[l], acts.stream[l], acts.blocks[l],
                     d_stream, d_previous, ctx);
    std::swap(d_stream, d_previous);
  }
  MaybeDropoutBackward(config, d_stream, acts.embedding_keep, ctx);
  if (config.position == PositionEncoding::kLearned) {
    ops::AddPositionsBackward<T>(d_stream, 0, grads.position_embedding, ctx);
  }
  ops::EmbeddingBackward<T>(d_stream.Reshape(row_shape), tokens.Reshape(Shape{rows}),
                            grads.token_embedding, ctx);
}

template <typename T>
void InitializeParameters(const ModelConfig& config, ModelParams<T>& params, Random& random) {
  ForEachParameter(config, params, [&](const ParameterInfo& info, TensorView<T>& slot) {
    if (info.init_stddev > 0) {
      random.FillNormal(slot, 0.0, info.init_stddev);
    } else {
      for (T& value : slot) value = static_cast<T>(info.init_constant);
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
template void NormForward<float>(const ModelConfig&, ConstTensorView<float>, ConstTensorView<float>,
                                 ConstTensorView<float>, TensorView<float>, TensorView<float>,
                                 TensorView<float>, const ExecutionContext&);
template void NormForward<double>(const ModelConfig&, ConstTensorView<double>,
                                  ConstTensorView<double>, ConstTensorView<double>,
                                  TensorView<double>, TensorView<double>, TensorView<double>,
                                  const ExecutionContext&);
template void FeedForwardForward<float>(const ModelConfig&, const BlockParams<float>&,
                                        ConstTensorView<float>, const FeedForwardBuffers<float>&,
                                        const ExecutionContext&);
template void FeedForwardForward<double>(const ModelConfig&, const BlockParams<double>&,
                                         ConstTensorView<double>, const FeedForwardBuffers<double>&,
                                         const ExecutionContext&);
template void InitializeParameters<float>(const ModelConfig&, ModelParams<float>&, Random&);
template void InitializeParameters<double>(const ModelConfig&, ModelParams<double>&, Random&);

}  // namespace qkv::model
