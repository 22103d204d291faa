// ModelConfig: the blueprint of a decoder-only Transformer language model. Stored in a model
// directory's config.json in one of two dialects:
//   - Hugging Face GPT-2's keys (n_layer, n_head, n_embd, n_positions, vocab_size,
//     layer_norm_epsilon, activation_function, n_inner) plus qkv's optional keys
//     (position_encoding, rope_theta, rope_style, norm, ffn, bias, norm_placement, n_kv_head,
//     head_dim); each optional key defaults to GPT-2's behaviour (../shared/SPEC.md §2);
//   - Hugging Face LlamaConfig's keys (model_type "llama": hidden_size, num_attention_heads,
//     num_key_value_heads, rope_scaling, tie_word_embeddings, ...; SPEC §5), the dialect of
//     models that are Llama-shaped (LlamaShaped below).
// The architecture is never inferred from which tensors a checkpoint holds.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "qkv/layers/transformer_block.h"
#include "qkv/ops/rope.h"

namespace qkv::model {

enum class PositionEncoding { kLearned, kSinusoidal, kRope, kAlibi, kNone };
// The layers' own choices, named here as the config keys them.
using layers::FfnKind;
using layers::NormKind;
using layers::NormPlacement;
// Which attention kernel a forward/backward pass uses (layers/self_attention.h): the simple
// one keeps the (B, H, T, T) probabilities, which attention maps need; flash keeps memory
// linear in T. kAuto picks flash from kFlashAttentionFromLength tokens on, where it is as fast
// or faster (bench/attention) and the probabilities would dominate memory.
enum class AttentionImpl { kAuto, kSimple, kFlash };
inline constexpr int64_t kFlashAttentionFromLength = 256;

// Bounds on the sizes a config may declare. They are far above any model qkv can train or run
// on a CPU (GPT-2 XL: V 50257, L 1024, 48 layers, C 1600) but low enough that every product
// of them used for a tensor size fits comfortably in 64 bits; a config.json past them is an
// error naming the key, before anything is allocated.
inline constexpr int64_t kMaxVocabSize = int64_t{1} << 24;
inline constexpr int64_t kMaxContext = int64_t{1} << 24;
inline constexpr int64_t kMaxLayers = 1024;
inline constexpr int64_t kMaxWidth = int64_t{1} << 16;
inline constexpr int64_t kMaxFfnDim = int64_t{1} << 20;

struct ModelConfig {
  int64_t vocab_size = 0;    // V
  int64_t context = 256;     // n_positions: the longest sequence the model is trained on
  int64_t num_layers = 4;    // L
  int64_t num_heads = 4;     // H
  int64_t num_kv_heads = 0;  // KV: key/value heads, dividing H (grouped-query attention); 0: H
  int64_t head_size = 0;     // D; 0: C / H
  int64_t width = 128;       // C = n_embd
  int64_t ffn_dim = 0;       // F; 0 means 4 * C
  PositionEncoding position = PositionEncoding::kLearned;
  double rope_theta = 10000.0;
  ops::RopeStyle rope_style = ops::RopeStyle::kHalf;
  // RoPE past the training context (config.json "rope_scaling": {"rope_type", "factor",
  // "original_max_position_embeddings"}, as Hugging Face writes it). Usually set at evaluation
  // or sampling time, not for training.
  ops::RopeScaling rope_scaling = ops::RopeScaling::kNone;
  double rope_factor = 1.0;
  int64_t rope_original_context = 0;   // 0: context; dynamic scaling grows from context
  double rope_low_freq_factor = 1.0;   // llama3 scaling
  double rope_high_freq_factor = 4.0;  // llama3 scaling
  double rope_attention_factor = 0.0;  // YaRN's temperature; 0: 0.1 ln(factor) + 1
  double rope_beta_fast = 32.0;        // YaRN's ramp (ops/rope.h)
  double rope_beta_slow = 1.0;
  NormKind norm = NormKind::kLayerNorm;
  NormPlacement norm_placement = NormPlacement::kPre;
  FfnKind ffn = FfnKind::kGeluTanh;
  bool bias = true;
  // The output head is the token embedding (GPT-2), or a matrix of its own ("lm_head").
  bool tie_embeddings = true;
  double norm_eps = 1e-5;
  float dropout = 0.0f;  // a training setting, kept in config.json as resid_pdrop/embd_pdrop
  AttentionImpl attention = AttentionImpl::kAuto;  // a run-time choice, not kept in config.json

  int64_t head_dim() const { return head_size > 0 ? head_size : width / num_heads; }
  int64_t kv_heads() const { return num_kv_heads > 0 ? num_kv_heads : num_heads; }
  int64_t kv_width() const { return kv_heads() * head_dim(); }  // one token's cached keys
  // RMSNorm before each sublayer, SwiGLU, RoPE in the half style, no biases: the architecture
  // of Llama, saved in Hugging Face's LlamaForCausalLM layout (model/checkpoint_layout.h).
  bool LlamaShaped() const;
  int64_t ffn_hidden() const { return ffn_dim > 0 ? ffn_dim : 4 * width; }
  // Throws qkv::Error naming the first bad value.
  void Validate() const;

  // config.json: LlamaConfig's keys when LlamaShaped(), else GPT-2's.
  nlohmann::json ToJson() const;
  // Either dialect (model_type "llama" picks Llama's). Throws qkv::Error naming the key for a
  // missing required key or a bad value.
  static ModelConfig FromJson(const nlohmann::json& json);
};

// Names as they appear in flags and config.json, and their inverses (throwing qkv::Error that
// lists the allowed names).
std::string ToString(PositionEncoding value);
std::string ToString(NormKind value);
std::string ToString(FfnKind value);
std::string ToString(NormPlacement value);
std::string ToString(AttentionImpl value);
std::string ToString(ops::RopeStyle value);
std::string ToString(ops::RopeScaling value);
PositionEncoding ParsePositionEncoding(const std::string& text);
NormKind ParseNormKind(const std::string& text);
FfnKind ParseFfnKind(const std::string& text);
NormPlacement ParseNormPlacement(const std::string& text);
AttentionImpl ParseAttentionImpl(const std::string& text);
ops::RopeStyle ParseRopeStyle(const std::string& text);
ops::RopeScaling ParseRopeScaling(const std::string& text);
// Every name of each concept, in the order of the table ToString and Parse* use: what a flag
// accepts and its --help lists. (ParseFfnKind also accepts Hugging Face's aliases gelu_new and
// gelu_pytorch_tanh, which are not listed.)
std::vector<std::string> PositionEncodingNames();
std::vector<std::string> NormKindNames();
std::vector<std::string> FfnKindNames();
std::vector<std::string> NormPlacementNames();
std::vector<std::string> AttentionImplNames();
std::vector<std::string> RopeStyleNames();
std::vector<std::string> RopeScalingNames();

// The RoPE settings of a RoPE model (position == kRope).
ops::RopeConfig RopeConfigFor(const ModelConfig& config);

}  // namespace qkv::model
