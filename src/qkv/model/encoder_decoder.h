// The encoder-decoder Transformer of machine translation (Marian, Hugging Face's
// MarianMTModel; ../shared/SPEC.md §4): forward and backward over a batch of padded pairs.
//
//   encoder: x_0 = shared[source]·s + PE;  x' = EncoderBlock_l(x) (padded source keys masked)
//            m = x_Le (pre-norm: N_e(x_Le))
//   decoder: y_0 = shared[decoder_input]·s + PE;  y' = DecoderBlock_l(y, m) (causal self-
//            attention, cross-attention to m with the source padding masked)
//            logits = y_Ld (pre-norm: N_d(y_Ld)) · sharedᵀ + final_logits_bias
//   loss = mean cross-entropy over the labels that are not ignored (padding)
// with s = sqrt(C) when scale_embedding (Marian) and PE the sinusoidal table in Marian's layout
// (sines, then cosines), a learned table per stack, or nothing. Every block is the one
// Transformer block (layers/transformer_block.h); the decoder's carries cross-attention.
//
// Legend: B batch, S source length, T target length, C width, V vocabulary, P positions.
// Parameters, gradients and activations live in arenas the caller owns.
#pragma once

#include <cstdint>
#include <vector>

#include "qkv/core/random.h"
#include "qkv/layers/transformer_block.h"
#include "qkv/model/model_config.h"
#include "qkv/runtime/execution_context.h"

namespace qkv::model {

struct EncoderDecoderConfig {
  int64_t vocab_size = 0;       // V: both sides share one vocabulary (one SentencePiece model)
  int64_t width = 256;          // C = d_model
  int64_t num_heads = 4;        // H, in every attention of both stacks
  int64_t ffn_dim = 0;          // F; 0 means 4 * C
  int64_t encoder_layers = 3;   // Le
  int64_t decoder_layers = 3;   // Ld
  int64_t max_positions = 256;  // P: the longest source or target sequence
  // kSinusoidal (Marian's layout), kLearned (one table per stack) or kNone. RoPE and ALiBi
  // need relative positions across two sequences for cross-attention and are not offered.
  PositionEncoding position = PositionEncoding::kSinusoidal;
  FfnKind ffn = FfnKind::kRelu;
  NormPlacement norm_placement = NormPlacement::kPost;  // Marian's and BART's
  bool scale_embedding = true;                          // embeddings times sqrt(C)
  double norm_eps = 1e-5;
  float dropout = 0.0f;  // after the embeddings and on every sublayer's output, in training
  int32_t pad_id = 0;    // padding of the source and of the decoder input (never a label)
  int32_t eos_id = 1;    // `</s>`: ends every source and every label sequence
  // The decoder's first input: Marian starts from the padding token.
  int32_t decoder_start_id = 0;
  AttentionImpl attention = AttentionImpl::kAuto;

  int64_t ffn_hidden() const { return ffn_dim > 0 ? ffn_dim : 4 * width; }
  // Throws qkv::Error naming the first bad value.
  void Validate() const;
};

// The block configurations of either stack for sequences of seq_len tokens, the decoder's
// attending to a memory of memory_len (kAuto picks the flash kernel for an attention sublayer
// whose query or key length reaches kFlashAttentionFromLength; 0: the simple kernel).
layers::BlockConfig EncoderBlockConfig(const EncoderDecoderConfig& config, int64_t seq_len = 0);
layers::BlockConfig DecoderBlockConfig(const EncoderDecoderConfig& config, int64_t seq_len = 0,
                                       int64_t memory_len = 0);

template <typename T>
struct EncoderDecoderParams {
  TensorView<T> shared;             // (V, C): both embeddings and the output head
  TensorView<T> encoder_positions;  // (P, C), learned positions only
  TensorView<T> decoder_positions;  // (P, C), learned positions only
  std::vector<layers::BlockParams<T>> encoder_blocks;  // Le
  std::vector<layers::BlockParams<T>> decoder_blocks;  // Ld, with cross-attention
  layers::NormParams<T> encoder_norm;  // pre-norm only: after the last encoder block
  layers::NormParams<T> decoder_norm;  // pre-norm only: after the last decoder block
  TensorView<T> final_logits_bias;     // (V)
};

// Calls visit(const ParameterInfo&, TensorView<T>& slot) for every parameter in a fixed order:
// "shared", "encoder.positions", "decoder.positions" (learned only), "encoder.blocks.<i>.*",
// "decoder.blocks.<i>.*", "encoder.norm.*", "decoder.norm.*" (pre-norm only),
// "final_logits_bias".
template <typename T, typename Visitor>
void ForEachParameter(const EncoderDecoderConfig& config, EncoderDecoderParams<T>& params,
                      Visitor&& visit) {
  using layers::ParameterInfo;
  using layers::ParameterInit;
  const int64_t c = config.width;
  params.encoder_blocks.resize(static_cast<size_t>(config.encoder_layers));
  params.decoder_blocks.resize(static_cast<size_t>(config.decoder_layers));
  visit(ParameterInfo{"shared", Shape{config.vocab_size, c}, true, ParameterInit::kNormal},
        params.shared);
  if (config.position == PositionEncoding::kLearned) {
    const Shape table{config.max_positions, c};
    visit(ParameterInfo{"encoder.positions", table, true, ParameterInit::kNormal},
          params.encoder_positions);
    visit(ParameterInfo{"decoder.positions", table, true, ParameterInit::kNormal},
          params.decoder_positions);
  }
  const layers::BlockConfig encoder = EncoderBlockConfig(config);
  const layers::BlockConfig decoder = DecoderBlockConfig(config);
  for (int64_t l = 0; l < config.encoder_layers; ++l) {
    layers::ForEachBlockParameter(
        encoder, params.encoder_blocks[static_cast<size_t>(l)],
        layers::Prefixed("encoder.blocks." + std::to_string(l) + ".", visit));
  }
  for (int64_t l = 0; l < config.decoder_layers; ++l) {
    layers::ForEachBlockParameter(
        decoder, params.decoder_blocks[static_cast<size_t>(l)],
        layers::Prefixed("decoder.blocks." + std::to_string(l) + ".", visit));
  }
  if (config.norm_placement == NormPlacement::kPre) {
    layers::ForEachNormParameter(encoder.norm, params.encoder_norm,
                                 layers::Prefixed("encoder.norm.", visit));
    layers::ForEachNormParameter(decoder.norm, params.decoder_norm,
                                 layers::Prefixed("decoder.norm.", visit));
  }
  visit(ParameterInfo{"final_logits_bias", Shape{config.vocab_size}, false, ParameterInit::kZeros},
        params.final_logits_bias);
}

// What the activations are kept for. kForwardOnly (evaluation, translation): nothing runs
// backward, so a layer's saved tensors are dead once the next layer has run, and all layers of
// a stack share one block's bytes (their BlockActivations are views of the same memory). For
// the bench model at 32 sentences of 32 tokens that is 32 MB instead of 86, and every byte
// saved is a page fault saved per batch. kTraining keeps each layer's own, for the backward
// pass and for attention maps of every layer.
enum class ActivationUse { kTraining, kForwardOnly };

template <typename T>
struct EncoderDecoderActivations {
  int64_t batch = 0, source_len = 0, target_len = 0;
  ActivationUse use = ActivationUse::kTraining;
  layers::BlockConfig encoder_config, decoder_config;  // resolved at these lengths
  TensorView<T> sinusoidal_table;                      // (max(S, T), C), sinusoidal only
  TensorView<uint8_t> source_padding;                  // (B, S) 1 where the source is pad_id
  std::vector<TensorView<T>> encoder_stream;           // Le + 1 views of (B, S, C)
  std::vector<TensorView<T>> decoder_stream;           // Ld + 1 views of (B, T, C)
  TensorView<uint8_t> encoder_embedding_keep;          // (B, S, C) dropout mask
  TensorView<uint8_t> decoder_embedding_keep;          // (B, T, C) dropout mask
  std::vector<layers::BlockActivations<T>> encoder_blocks, decoder_blocks;
  TensorView<T> memory;               // (B, S, C): pre-norm N_e(x_Le), else x_Le itself
  layers::NormSaved<T> encoder_norm;  // (B*S) each, pre-norm only
  TensorView<T> decoder_out;          // (B*T, C): pre-norm N_d(y_Ld), else y_Ld itself
  layers::NormSaved<T> decoder_norm;  // (B*T) each, pre-norm only
  TensorView<T> logits;               // (B*T, V); backward turns it into d_logits
  TensorView<T> logsumexp;            // (B*T)
};

template <typename T>
EncoderDecoderActivations<T> AllocateEncoderDecoderActivations(
    Arena& arena, const EncoderDecoderConfig& config, int64_t batch, int64_t source_len,
    int64_t target_len, ActivationUse use = ActivationUse::kTraining);

// Bytes ctx.scratch needs for EncoderDecoderForward and EncoderDecoderBackward at this size.
size_t EncoderDecoderScratchBytes(const EncoderDecoderConfig& config, int64_t batch,
                                  int64_t source_len, int64_t target_len, int num_threads,
                                  size_t element_size);

// source: (B, S) ids, padded with pad_id after each source's `</s>`; decoder_input: (B, T)
// [decoder_start_id] + target, padded; labels: (B, T) target + `</s>`, ops::kDefaultIgnoreIndex
// at padding, or empty (logits only; returns 0). Returns the mean cross-entropy per label,
// against targets smoothed by label_smoothing (ops/cross_entropy.h; training only: evaluation
// and perplexity use 0).
template <typename T>
T EncoderDecoderForward(const EncoderDecoderConfig& config, const EncoderDecoderParams<T>& params,
                        ConstTensorView<int32_t> source, ConstTensorView<int32_t> decoder_input,
                        ConstTensorView<int32_t> labels, bool training, Random* dropout_random,
                        const EncoderDecoderActivations<T>& acts, const ExecutionContext& ctx,
                        T label_smoothing = T(0));

// Accumulates every parameter gradient (+=) for d(loss_scale * loss), after the forward pass
// with labels (and the label_smoothing) just before; overwrites acts.logits with d_logits.
template <typename T>
void EncoderDecoderBackward(const EncoderDecoderConfig& config,
                            const EncoderDecoderParams<T>& params, ConstTensorView<int32_t> source,
                            ConstTensorView<int32_t> decoder_input, ConstTensorView<int32_t> labels,
                            T loss_scale, const EncoderDecoderActivations<T>& acts,
                            const EncoderDecoderParams<T>& grads, const ExecutionContext& ctx,
                            T label_smoothing = T(0));

// The pieces a decoder reuses (infer/translator.h):
// output (B, T, C) = shared[ids (B, T)]·s + positions[start_position + t]; positions is the
// learned table of the stack or the sinusoidal table (empty without positions).
template <typename T>
void EmbedTokens(const EncoderDecoderConfig& config, ConstTensorView<T> shared,
                 ConstTensorView<T> positions, ConstTensorView<int32_t> ids, int64_t start_position,
                 TensorView<T> output, const ExecutionContext& ctx);

// The encoder half of EncoderDecoderForward: acts.source_padding and acts.memory from source.
template <typename T>
void EncodeSource(const EncoderDecoderConfig& config, const EncoderDecoderParams<T>& params,
                  ConstTensorView<int32_t> source, bool training, Random* dropout_random,
                  const EncoderDecoderActivations<T>& acts, const ExecutionContext& ctx);

// logits (rows, V) from the last decoder block's output hidden (rows, C); pre-norm models
// normalise it first into normed (rows, C) with saved (rows) statistics (both unused
// post-norm).
template <typename T>
void OutputLogits(const EncoderDecoderConfig& config, const EncoderDecoderParams<T>& params,
                  ConstTensorView<T> hidden, TensorView<T> normed, layers::NormSaved<T> saved,
                  TensorView<T> logits, const ExecutionContext& ctx);

// Normal(0, 0.02) for the matrices and tables (Hugging Face's init_std for Marian), zeros for
// biases and final_logits_bias, ones for norm gains.
template <typename T>
void InitializeParameters(const EncoderDecoderConfig& config, EncoderDecoderParams<T>& params,
                          Random& random);

}  // namespace qkv::model
