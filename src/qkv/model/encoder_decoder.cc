#include "qkv/model/encoder_decoder.h"

#include <algorithm>
#include <cmath>

#include "qkv/ops/cross_entropy.h"
#include "qkv/ops/dropout.h"
#include "qkv/ops/embedding.h"
#include "qkv/ops/linear.h"
#include "qkv/ops/op_checks.h"
#include "qkv/ops/position_add.h"
#include "qkv/ops/sinusoidal.h"

namespace qkv::model {

void EncoderDecoderConfig::Validate() const {
  auto check_range = [](const char* name, int64_t value, int64_t low, int64_t high) {
    QKV_CHECK(value >= low && value <= high, "encoder-decoder config: ", name, " must be in [", low,
              ", ", high, "], got ", value);
  };
  check_range("vocab_size", vocab_size, 1, kMaxVocabSize);
  check_range("d_model", width, 1, kMaxWidth);
  check_range("attention heads", num_heads, 1, width);
  QKV_CHECK(width % num_heads == 0, "encoder-decoder config: d_model ", width,
            " is not divisible by the ", num_heads, " attention heads");
  check_range("ffn_dim", ffn_hidden(), 1, kMaxFfnDim);
  check_range("encoder_layers", encoder_layers, 1, kMaxLayers);
  check_range("decoder_layers", decoder_layers, 1, kMaxLayers);
  check_range("max_position_embeddings", max_positions, 1, kMaxContext);
  QKV_CHECK(position == PositionEncoding::kSinusoidal || position == PositionEncoding::kLearned ||
                position == PositionEncoding::kNone,
            "encoder-decoder config: position encoding ", ToString(position),
            " is not supported (sinusoidal, learned or none)");
  QKV_CHECK(ffn != FfnKind::kSwiGlu, "encoder-decoder config: the swiglu FFN is not supported");
  QKV_CHECK(dropout >= 0.0f && dropout < 1.0f,
            "encoder-decoder config: dropout must be in [0, 1), got ", dropout);
  QKV_CHECK(norm_eps > 0, "encoder-decoder config: norm eps must be > 0, got ", norm_eps);
  for (auto [name, id] : {std::pair{"pad_token_id", pad_id}, std::pair{"eos_token_id", eos_id},
                          std::pair{"decoder_start_token_id", decoder_start_id}}) {
    QKV_CHECK(id >= 0 && id < vocab_size, "encoder-decoder config: ", name, " ", id,
              " is outside the vocabulary [0, ", vocab_size, ")");
  }
  QKV_CHECK(pad_id != eos_id, "encoder-decoder config: pad and eos are the same id ", pad_id);
}

namespace {

// The kernel of an attention sublayer whose scores are (query_len, key_len) per head.
layers::AttentionKernel KernelFor(const EncoderDecoderConfig& config, int64_t query_len,
                                  int64_t key_len) {
  const int64_t longer = std::max(query_len, key_len);
  const bool flash = config.attention == AttentionImpl::kFlash ||
                     (config.attention == AttentionImpl::kAuto && longer > 0 &&
                      longer >= kFlashAttentionFromLength);
  return flash ? layers::AttentionKernel::kFlash : layers::AttentionKernel::kSimple;
}

layers::BlockConfig BlockConfigOf(const EncoderDecoderConfig& config, int64_t seq_len,
                                  int64_t memory_len, bool decoder) {
  layers::BlockConfig block;
  block.attention = layers::SelfAttentionConfig{config.width, config.num_heads,
                                                /*causal=*/decoder, /*bias=*/true, std::nullopt};
  block.attention.kernel = KernelFor(config, seq_len, seq_len);
  block.norm = {NormKind::kLayerNorm, config.width, true, config.norm_eps};
  block.ffn = {config.width, config.ffn_hidden(), config.ffn, true};
  block.placement = config.norm_placement;
  block.dropout = config.dropout;
  if (decoder) {
    block.cross_attention = layers::CrossAttentionConfig{config.width, config.num_heads, true,
                                                         KernelFor(config, seq_len, memory_len)};
  }
  return block;
}

template <typename T>
void MaybeDropout(const EncoderDecoderConfig& config, bool training, Random* random,
                  TensorView<T> values, TensorView<uint8_t> keep, const ExecutionContext& ctx) {
  if (!training || config.dropout == 0.0f) return;
  QKV_CHECK(random != nullptr, "encoder-decoder: dropout needs a random generator");
  ops::DropoutForward<T>(values, config.dropout, *random, keep.Reshape(values.shape()), values,
                         ctx);
}

template <typename T>
T EmbeddingScale(const EncoderDecoderConfig& config) {
  return config.scale_embedding ? static_cast<T>(std::sqrt(static_cast<double>(config.width)))
                                : T(1);
}

template <typename T>
void Scale(TensorView<T> values, T factor) {
  if (factor == T(1)) return;
  for (T& value : values) value *= factor;
}

// x_0 = EmbedTokens(ids) then dropout: the input of either stack in a forward pass.
template <typename T>
void Embed(const EncoderDecoderConfig& config, const EncoderDecoderParams<T>& params,
           ConstTensorView<int32_t> ids, ConstTensorView<T> learned_positions,
           const EncoderDecoderActivations<T>& acts, bool training, Random* random,
           TensorView<T> x0, TensorView<uint8_t> keep, const ExecutionContext& ctx) {
  const ConstTensorView<T> positions = config.position == PositionEncoding::kLearned
                                           ? learned_positions
                                           : ConstTensorView<T>(acts.sinusoidal_table);
  EmbedTokens<T>(config, params.shared, positions, ids, 0, x0, ctx);
  MaybeDropout(config, training, random, x0, keep, ctx);
}

// The gradient of Embed's output d_x0 (consumed) into the tables.
template <typename T>
void EmbedBackward(const EncoderDecoderConfig& config, ConstTensorView<int32_t> ids,
                   TensorView<T> d_x0, TensorView<uint8_t> keep, TensorView<T> d_learned_positions,
                   TensorView<T> d_shared, const ExecutionContext& ctx) {
  const int64_t rows = ids.size();
  if (config.dropout > 0.0f) {
    ops::DropoutBackward<T>(d_x0, keep.Reshape(d_x0.shape()), config.dropout, d_x0, ctx);
  }
  if (config.position == PositionEncoding::kLearned) {
    ops::AddPositionsBackward<T>(d_x0, 0, d_learned_positions, ctx);
  }
  Scale(d_x0, EmbeddingScale<T>(config));
  ops::EmbeddingBackward<T>(d_x0.Reshape(Shape{rows, config.width}), ids.Reshape(Shape{rows}),
                            d_shared, ctx);
}

// Backward's own temporaries.
template <typename T>
struct BackwardScratch {
  TensorView<T> d_decoder, d_decoder_previous;  // (B, T, C) each, ping-pong over the blocks
  TensorView<T> d_memory;                       // (B, S, C), summed over the decoder blocks
  TensorView<T> d_encoder, d_encoder_previous;  // (B, S, C) each
};

template <typename T>
BackwardScratch<T> AllocateBackwardScratch(Arena& arena, const EncoderDecoderConfig& config,
                                           int64_t batch, int64_t source_len, int64_t target_len) {
  const Shape target{batch, target_len, config.width}, source{batch, source_len, config.width};
  BackwardScratch<T> s;
  s.d_decoder = arena.Allocate<T>(target);
  s.d_decoder_previous = arena.Allocate<T>(target);
  s.d_memory = arena.Allocate<T>(source);
  s.d_encoder = arena.Allocate<T>(source);
  s.d_encoder_previous = arena.Allocate<T>(source);
  return s;
}

template <typename T>
void CheckIds(const EncoderDecoderActivations<T>& acts, ConstTensorView<int32_t> source,
              ConstTensorView<int32_t> decoder_input, ConstTensorView<int32_t> labels) {
  ops::CheckShape("encoder-decoder", "source", source, Shape{acts.batch, acts.source_len});
  ops::CheckShape("encoder-decoder", "decoder input", decoder_input,
                  Shape{acts.batch, acts.target_len});
  if (!labels.empty()) ops::CheckShape("encoder-decoder", "labels", labels, decoder_input.shape());
}

}  // namespace

template <typename T>
void EmbedTokens(const EncoderDecoderConfig& config, ConstTensorView<T> shared,
                 ConstTensorView<T> positions, ConstTensorView<int32_t> ids, int64_t start_position,
                 TensorView<T> output, const ExecutionContext& ctx) {
  const int64_t rows = ids.size();
  ops::EmbeddingForward<T>(ids.Reshape(Shape{rows}), shared,
                           output.Reshape(Shape{rows, config.width}), ctx);
  Scale(output, EmbeddingScale<T>(config));
  if (config.position != PositionEncoding::kNone) {
    ops::AddPositionsForward<T>(output, positions, start_position, output, ctx);
  }
}

layers::BlockConfig EncoderBlockConfig(const EncoderDecoderConfig& config, int64_t seq_len) {
  return BlockConfigOf(config, seq_len, 0, /*decoder=*/false);
}

layers::BlockConfig DecoderBlockConfig(const EncoderDecoderConfig& config, int64_t seq_len,
                                       int64_t memory_len) {
  return BlockConfigOf(config, seq_len, memory_len, /*decoder=*/true);
}

template <typename T>
EncoderDecoderActivations<T> AllocateEncoderDecoderActivations(Arena& arena,
                                                               const EncoderDecoderConfig& config,
                                                               int64_t batch, int64_t source_len,
                                                               int64_t target_len,
                                                               ActivationUse use) {
  config.Validate();
  ops::CheckPositive("encoder-decoder", "batch", batch);
  ops::CheckPositive("encoder-decoder", "source length", source_len);
  ops::CheckPositive("encoder-decoder", "target length", target_len);
  QKV_CHECK(source_len <= config.max_positions && target_len <= config.max_positions,
            "encoder-decoder: source length ", source_len, " or target length ", target_len,
            " exceeds max_position_embeddings ", config.max_positions);
  const int64_t c = config.width;
  const Shape source{batch, source_len, c}, target{batch, target_len, c};
  const bool own_per_layer = use == ActivationUse::kTraining;
  const bool dropout = own_per_layer && config.dropout > 0.0f;
  EncoderDecoderActivations<T> acts;
  acts.use = use;
  acts.batch = batch;
  acts.source_len = source_len;
  acts.target_len = target_len;
  acts.encoder_config = EncoderBlockConfig(config, source_len);
  acts.decoder_config = DecoderBlockConfig(config, target_len, source_len);
  if (config.position == PositionEncoding::kSinusoidal) {
    acts.sinusoidal_table = arena.Allocate<T>(Shape{std::max(source_len, target_len), c});
    if (!arena.measure_only()) {
      ops::FillSinusoidalTable(acts.sinusoidal_table, ops::SinusoidalLayout::kHalves);
    }
  }
  acts.source_padding = arena.Allocate<uint8_t>(Shape{batch, source_len});
  for (int64_t l = 0; l <= config.encoder_layers; ++l) {
    acts.encoder_stream.push_back(arena.Allocate<T>(source));
  }
  for (int64_t l = 0; l <= config.decoder_layers; ++l) {
    acts.decoder_stream.push_back(arena.Allocate<T>(target));
  }
  if (dropout) {
    acts.encoder_embedding_keep = arena.Allocate<uint8_t>(source);
    acts.decoder_embedding_keep = arena.Allocate<uint8_t>(target);
  }
  for (int64_t l = 0; l < config.encoder_layers; ++l) {
    acts.encoder_blocks.push_back(
        own_per_layer || l == 0
            ? layers::AllocateBlockActivations<T>(arena, acts.encoder_config, batch, source_len,
                                                  layers::BlockPass::kTraining)
            : acts.encoder_blocks.front());
  }
  for (int64_t l = 0; l < config.decoder_layers; ++l) {
    acts.decoder_blocks.push_back(
        own_per_layer || l == 0
            ? layers::AllocateBlockActivations<T>(arena, acts.decoder_config, batch, target_len,
                                                  layers::BlockPass::kTraining, source_len)
            : acts.decoder_blocks.front());
  }
  if (config.norm_placement == NormPlacement::kPre) {
    acts.memory = arena.Allocate<T>(source);
    acts.encoder_norm = layers::AllocateNormSaved<T>(arena, batch * source_len);
    acts.decoder_out = arena.Allocate<T>(Shape{batch * target_len, c});
    acts.decoder_norm = layers::AllocateNormSaved<T>(arena, batch * target_len);
  } else {
    acts.memory = acts.encoder_stream.back();
    acts.decoder_out = acts.decoder_stream.back().Reshape(Shape{batch * target_len, c});
  }
  acts.logits = arena.Allocate<T>(Shape{batch * target_len, config.vocab_size});
  acts.logsumexp = arena.Allocate<T>(Shape{batch * target_len});
  return acts;
}

size_t EncoderDecoderScratchBytes(const EncoderDecoderConfig& config, int64_t batch,
                                  int64_t source_len, int64_t target_len, int num_threads,
                                  size_t element_size) {
  const size_t own = MeasureBytes(element_size, [&](Arena& arena, auto element) {
    AllocateBackwardScratch<decltype(element)>(arena, config, batch, source_len, target_len);
  });
  const layers::BlockConfig encoder = EncoderBlockConfig(config, source_len);
  const layers::BlockConfig decoder = DecoderBlockConfig(config, target_len, source_len);
  // One block at a time, forward (nothing of the model's own held) or backward.
  return std::max(
      {layers::BlockForwardScratchBytes(encoder, batch, source_len, num_threads, element_size),
       layers::BlockForwardScratchBytes(decoder, batch, target_len, num_threads, element_size),
       own +
           layers::BlockBackwardScratchBytes(encoder, batch, source_len, num_threads, element_size),
       own + layers::BlockBackwardScratchBytes(decoder, batch, target_len, num_threads,
                                               element_size, source_len)});
}

template <typename T>
void EncodeSource(const EncoderDecoderConfig& config, const EncoderDecoderParams<T>& params,
                  ConstTensorView<int32_t> source, bool training, Random* dropout_random,
                  const EncoderDecoderActivations<T>& acts, const ExecutionContext& ctx) {
  ops::CheckShape("encoder-decoder", "source", source, Shape{acts.batch, acts.source_len});
  QKV_CHECK(!training || acts.use == ActivationUse::kTraining,
            "encoder-decoder: a training pass needs activations allocated for training");
  const int64_t source_rows = acts.batch * acts.source_len;
  for (int64_t i = 0; i < source_rows; ++i) {
    acts.source_padding[i] = source[i] == config.pad_id ? 1 : 0;
  }
  Embed<T>(config, params, source, params.encoder_positions, acts, training, dropout_random,
           acts.encoder_stream[0], acts.encoder_embedding_keep, ctx);
  const layers::BlockContext<T> encoder_context{acts.source_padding, {}, {}};
  for (size_t l = 0; l < acts.encoder_blocks.size(); ++l) {
    layers::BlockForward<T>(acts.encoder_config, params.encoder_blocks[l], acts.encoder_stream[l],
                            encoder_context, training, dropout_random, acts.encoder_blocks[l],
                            acts.encoder_stream[l + 1], ctx);
  }
  const Shape source_row_shape{source_rows, config.width};
  if (config.norm_placement == NormPlacement::kPre) {
    layers::NormForward<T>(acts.encoder_config.norm, params.encoder_norm,
                           acts.encoder_stream.back().Reshape(source_row_shape),
                           acts.memory.Reshape(source_row_shape), acts.encoder_norm, ctx);
  }
}

template <typename T>
void OutputLogits(const EncoderDecoderConfig& config, const EncoderDecoderParams<T>& params,
                  ConstTensorView<T> hidden, TensorView<T> normed, layers::NormSaved<T> saved,
                  TensorView<T> logits, const ExecutionContext& ctx) {
  ConstTensorView<T> head_input = hidden;
  if (config.norm_placement == NormPlacement::kPre) {
    layers::NormForward<T>(DecoderBlockConfig(config).norm, params.decoder_norm, hidden, normed,
                           saved, ctx);
    head_input = normed;
  }
  ops::LinearForward<T>(head_input, params.shared, params.final_logits_bias, logits, ctx);
}

template <typename T>
T EncoderDecoderForward(const EncoderDecoderConfig& config, const EncoderDecoderParams<T>& params,
                        ConstTensorView<int32_t> source, ConstTensorView<int32_t> decoder_input,
                        ConstTensorView<int32_t> labels, bool training, Random* dropout_random,
                        const EncoderDecoderActivations<T>& acts, const ExecutionContext& ctx,
                        T label_smoothing) {
  CheckIds(acts, source, decoder_input, labels);
  const int64_t target_rows = acts.batch * acts.target_len;
  EncodeSource<T>(config, params, source, training, dropout_random, acts, ctx);

  Embed<T>(config, params, decoder_input, params.decoder_positions, acts, training, dropout_random,
           acts.decoder_stream[0], acts.decoder_embedding_keep, ctx);
  const layers::BlockContext<T> decoder_context{{}, acts.memory, acts.source_padding};
  for (size_t l = 0; l < acts.decoder_blocks.size(); ++l) {
    layers::BlockForward<T>(acts.decoder_config, params.decoder_blocks[l], acts.decoder_stream[l],
                            decoder_context, training, dropout_random, acts.decoder_blocks[l],
                            acts.decoder_stream[l + 1], ctx);
  }
  OutputLogits<T>(config, params,
                  acts.decoder_stream.back().Reshape(Shape{target_rows, config.width}),
                  acts.decoder_out, acts.decoder_norm, acts.logits, ctx);
  if (labels.empty()) return T(0);
  return ops::CrossEntropyForward<T>(acts.logits, labels.Reshape(Shape{target_rows}),
                                     ops::kDefaultIgnoreIndex, acts.logsumexp, ctx,
                                     label_smoothing);
}

template <typename T>
void EncoderDecoderBackward(const EncoderDecoderConfig& config,
                            const EncoderDecoderParams<T>& params, ConstTensorView<int32_t> source,
                            ConstTensorView<int32_t> decoder_input, ConstTensorView<int32_t> labels,
                            T loss_scale, const EncoderDecoderActivations<T>& acts,
                            const EncoderDecoderParams<T>& grads, const ExecutionContext& ctx,
                            T label_smoothing) {
  CheckIds(acts, source, decoder_input, labels);
  QKV_CHECK(!labels.empty(), "encoder-decoder: backward needs the labels");
  QKV_CHECK(acts.use == ActivationUse::kTraining,
            "encoder-decoder: backward needs activations allocated for training, not forward only");
  const int64_t source_rows = acts.batch * acts.source_len;
  const int64_t target_rows = acts.batch * acts.target_len;
  const Shape source_row_shape{source_rows, config.width};
  const Shape target_row_shape{target_rows, config.width};
  Arena& scratch = ctx.Scratch();
  ArenaScope release(scratch);
  BackwardScratch<T> s =
      AllocateBackwardScratch<T>(scratch, config, acts.batch, acts.source_len, acts.target_len);

  TensorView<T> d_logits = acts.logits;  // in place: the logits are not needed any more
  ops::CrossEntropyBackward<T>(loss_scale, acts.logits, labels.Reshape(Shape{target_rows}),
                               ops::kDefaultIgnoreIndex, acts.logsumexp, d_logits, ctx,
                               label_smoothing);
  const bool pre_norm = config.norm_placement == NormPlacement::kPre;
  // d of decoder_out; post-norm: that is the last stream, pre-norm: N_d's output.
  TensorView<T> d_decoder_out =
      (pre_norm ? s.d_decoder_previous : s.d_decoder).Reshape(target_row_shape);
  ops::LinearBackward<T>(d_logits, acts.decoder_out, params.shared, d_decoder_out, grads.shared,
                         grads.final_logits_bias, ctx);
  if (pre_norm) {
    layers::NormBackward<T>(acts.decoder_config.norm, params.decoder_norm, d_decoder_out,
                            acts.decoder_stream.back().Reshape(target_row_shape), acts.decoder_norm,
                            s.d_decoder.Reshape(target_row_shape), grads.decoder_norm, ctx);
  }
  std::fill(s.d_memory.begin(), s.d_memory.end(), T(0));
  const layers::BlockContext<T> decoder_context{{}, acts.memory, acts.source_padding};
  for (size_t l = acts.decoder_blocks.size(); l-- > 0;) {
    layers::BlockBackward<T>(acts.decoder_config, params.decoder_blocks[l], acts.decoder_stream[l],
                             decoder_context, acts.decoder_blocks[l], s.d_decoder,
                             s.d_decoder_previous, s.d_memory, grads.decoder_blocks[l], ctx);
    std::swap(s.d_decoder, s.d_decoder_previous);
  }
  EmbedBackward<T>(config, decoder_input, s.d_decoder, acts.decoder_embedding_keep,
                   grads.decoder_positions, grads.shared, ctx);

  if (pre_norm) {
    layers::NormBackward<T>(acts.encoder_config.norm, params.encoder_norm,
                            s.d_memory.Reshape(source_row_shape),
                            acts.encoder_stream.back().Reshape(source_row_shape), acts.encoder_norm,
                            s.d_encoder.Reshape(source_row_shape), grads.encoder_norm, ctx);
  } else {
    std::swap(s.d_encoder, s.d_memory);
  }
  const layers::BlockContext<T> encoder_context{acts.source_padding, {}, {}};
  for (size_t l = acts.encoder_blocks.size(); l-- > 0;) {
    layers::BlockBackward<T>(acts.encoder_config, params.encoder_blocks[l], acts.encoder_stream[l],
                             encoder_context, acts.encoder_blocks[l], s.d_encoder,
                             s.d_encoder_previous, {}, grads.encoder_blocks[l], ctx);
    std::swap(s.d_encoder, s.d_encoder_previous);
  }
  EmbedBackward<T>(config, source, s.d_encoder, acts.encoder_embedding_keep,
                   grads.encoder_positions, grads.shared, ctx);
}

template <typename T>
void InitializeParameters(const EncoderDecoderConfig& config, EncoderDecoderParams<T>& params,
                          Random& random) {
  ForEachParameter(config, params, [&](const layers::ParameterInfo& info, TensorView<T>& slot) {
    if (info.init == layers::ParameterInit::kNormal ||
        info.init == layers::ParameterInit::kNormalResidual) {
      random.FillNormal(slot, 0.0, 0.02);
    } else {
      const T constant = info.init == layers::ParameterInit::kOnes ? T(1) : T(0);
      for (T& value : slot) value = constant;
    }
  });
}

#define QKV_INSTANTIATE_ENCODER_DECODER(T)                                                        \
  template EncoderDecoderActivations<T> AllocateEncoderDecoderActivations<T>(                     \
      Arena&, const EncoderDecoderConfig&, int64_t, int64_t, int64_t, ActivationUse);             \
  template T EncoderDecoderForward<T>(                                                            \
      const EncoderDecoderConfig&, const EncoderDecoderParams<T>&, ConstTensorView<int32_t>,      \
      ConstTensorView<int32_t>, ConstTensorView<int32_t>, bool, Random*,                          \
      const EncoderDecoderActivations<T>&, const ExecutionContext&, T);                           \
  template void EncoderDecoderBackward<T>(                                                        \
      const EncoderDecoderConfig&, const EncoderDecoderParams<T>&, ConstTensorView<int32_t>,      \
      ConstTensorView<int32_t>, ConstTensorView<int32_t>, T, const EncoderDecoderActivations<T>&, \
      const EncoderDecoderParams<T>&, const ExecutionContext&, T);                                \
  template void InitializeParameters<T>(const EncoderDecoderConfig&, EncoderDecoderParams<T>&,    \
                                        Random&);                                                 \
  template void EmbedTokens<T>(const EncoderDecoderConfig&, ConstTensorView<T>,                   \
                               ConstTensorView<T>, ConstTensorView<int32_t>, int64_t,             \
                               TensorView<T>, const ExecutionContext&);                           \
  template void EncodeSource<T>(const EncoderDecoderConfig&, const EncoderDecoderParams<T>&,      \
                                ConstTensorView<int32_t>, bool, Random*,                          \
                                const EncoderDecoderActivations<T>&, const ExecutionContext&);    \
  template void OutputLogits<T>(const EncoderDecoderConfig&, const EncoderDecoderParams<T>&,      \
                                ConstTensorView<T>, TensorView<T>, layers::NormSaved<T>,          \
                                TensorView<T>, const ExecutionContext&);
QKV_INSTANTIATE_ENCODER_DECODER(float)
QKV_INSTANTIATE_ENCODER_DECODER(double)
#undef QKV_INSTANTIATE_ENCODER_DECODER

}  // namespace qkv::model
