#include "qkv/model/model_config.h"

#include <array>
#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

#include "qkv/core/check.h"
#include "qkv/model/config_json.h"

namespace qkv::model {

namespace {

using config_json::Describe;
using config_json::IntegerIn;
using config_json::OptionalBool;
using config_json::OptionalInteger;
using config_json::OptionalReal;
using config_json::OptionalString;
using config_json::Present;
using config_json::RequiredInteger;
using config_json::ThrowBadValue;

// One table per enum: the single place where names and values meet.
template <typename Enum, size_t N>
using NameTable = std::array<std::pair<Enum, const char*>, N>;

constexpr NameTable<PositionEncoding, 5> kPositionNames = {{
    {PositionEncoding::kLearned, "learned"},
    {PositionEncoding::kSinusoidal, "sinusoidal"},
    {PositionEncoding::kRope, "rope"},
    {PositionEncoding::kAlibi, "alibi"},
    {PositionEncoding::kNone, "none"},
}};
constexpr NameTable<NormKind, 2> kNormNames = {{
    {NormKind::kLayerNorm, "layernorm"},
    {NormKind::kRmsNorm, "rmsnorm"},
}};
// "gelu_new" is GPT-2's name for the tanh approximation; we accept it and the HF names.
constexpr NameTable<FfnKind, 5> kFfnNames = {{
    {FfnKind::kGeluTanh, "gelu-tanh"},
    {FfnKind::kGelu, "gelu"},
    {FfnKind::kRelu, "relu"},
    {FfnKind::kSilu, "silu"},
    {FfnKind::kSwiGlu, "swiglu"},
}};
constexpr NameTable<NormPlacement, 2> kPlacementNames = {{
    {NormPlacement::kPre, "pre"},
    {NormPlacement::kPost, "post"},
}};
constexpr NameTable<AttentionImpl, 3> kAttentionImplNames = {{
    {AttentionImpl::kAuto, "auto"},
    {AttentionImpl::kSimple, "simple"},
    {AttentionImpl::kFlash, "flash"},
}};
constexpr NameTable<ops::RopeStyle, 2> kRopeStyleNames = {{
    {ops::RopeStyle::kHalf, "half"},
    {ops::RopeStyle::kInterleaved, "interleaved"},
}};

constexpr NameTable<ops::RopeScaling, 6> kRopeScalingNames = {{
    {ops::RopeScaling::kNone, "none"},
    {ops::RopeScaling::kLinear, "linear"},
    {ops::RopeScaling::kNtk, "ntk"},
    {ops::RopeScaling::kDynamic, "dynamic"},
    {ops::RopeScaling::kYarn, "yarn"},
    {ops::RopeScaling::kLlama3, "llama3"},
}};

template <typename Enum, size_t N>
std::string NameOf(const NameTable<Enum, N>& table, Enum value) {
  for (const auto& [entry, name] : table) {
    if (entry == value) return name;
  }
  return "?";
}

template <typename Enum, size_t N>
Enum Parse(const NameTable<Enum, N>& table, const std::string& text, const char* what) {
  std::string allowed;
  for (const auto& [entry, name] : table) {
    if (text == name) return entry;
    if (!allowed.empty()) allowed.append(", ");
    allowed.append(name);
  }
  throw Error(internal::StrCat(what, " '", text, "' is not one of: ", allowed));
}

template <typename Enum, size_t N>
std::vector<std::string> NamesOf(const NameTable<Enum, N>& table) {
  std::vector<std::string> names;
  names.reserve(N);
  for (const auto& entry : table) names.emplace_back(entry.second);
  return names;
}

}  // namespace

std::string ToString(PositionEncoding value) { return NameOf(kPositionNames, value); }
std::string ToString(NormKind value) { return NameOf(kNormNames, value); }
std::string ToString(FfnKind value) { return NameOf(kFfnNames, value); }
std::string ToString(NormPlacement value) { return NameOf(kPlacementNames, value); }
std::string ToString(AttentionImpl value) { return NameOf(kAttentionImplNames, value); }
std::string ToString(ops::RopeStyle value) { return NameOf(kRopeStyleNames, value); }
std::string ToString(ops::RopeScaling value) { return NameOf(kRopeScalingNames, value); }
ops::RopeScaling ParseRopeScaling(const std::string& text) {
  return Parse(kRopeScalingNames, text, "rope scaling");
}

ops::RopeConfig RopeConfigFor(const ModelConfig& config) {
  ops::RopeConfig rope;
  rope.theta = config.rope_theta;
  rope.style = config.rope_style;
  rope.scaling = config.rope_scaling;
  rope.factor = config.rope_factor;
  rope.original_context =
      config.rope_original_context > 0 ? config.rope_original_context : config.context;
  // Hugging Face's dynamic NTK grows past max_position_embeddings, whatever rope_scaling says.
  if (config.rope_scaling == ops::RopeScaling::kDynamic) rope.original_context = config.context;
  rope.yarn_beta_fast = config.rope_beta_fast;
  rope.yarn_beta_slow = config.rope_beta_slow;
  rope.low_freq_factor = config.rope_low_freq_factor;
  rope.high_freq_factor = config.rope_high_freq_factor;
  rope.yarn_attention_factor = config.rope_attention_factor;
  return rope;
}
PositionEncoding ParsePositionEncoding(const std::string& text) {
  return Parse(kPositionNames, text, "position encoding");
}
NormKind ParseNormKind(const std::string& text) { return Parse(kNormNames, text, "norm"); }
FfnKind ParseFfnKind(const std::string& text) {
  if (text == "gelu_new" || text == "gelu_pytorch_tanh") return FfnKind::kGeluTanh;
  return Parse(kFfnNames, text, "feed-forward activation");
}
NormPlacement ParseNormPlacement(const std::string& text) {
  return Parse(kPlacementNames, text, "norm placement");
}
AttentionImpl ParseAttentionImpl(const std::string& text) {
  return Parse(kAttentionImplNames, text, "attention kernel");
}
ops::RopeStyle ParseRopeStyle(const std::string& text) {
  return Parse(kRopeStyleNames, text, "rope style");
}

std::vector<std::string> PositionEncodingNames() { return NamesOf(kPositionNames); }
std::vector<std::string> NormKindNames() { return NamesOf(kNormNames); }
std::vector<std::string> FfnKindNames() { return NamesOf(kFfnNames); }
std::vector<std::string> NormPlacementNames() { return NamesOf(kPlacementNames); }
std::vector<std::string> AttentionImplNames() { return NamesOf(kAttentionImplNames); }
std::vector<std::string> RopeStyleNames() { return NamesOf(kRopeStyleNames); }
std::vector<std::string> RopeScalingNames() { return NamesOf(kRopeScalingNames); }

void ModelConfig::Validate() const {
  QKV_CHECK(vocab_size > 0, "vocab_size must be > 0, got ", vocab_size);
  QKV_CHECK(vocab_size <= kMaxVocabSize, "vocab_size must be <= ", kMaxVocabSize, ", got ",
            vocab_size);
  QKV_CHECK(context > 0, "context (n_positions) must be > 0, got ", context);
  QKV_CHECK(context <= kMaxContext, "context (n_positions) must be <= ", kMaxContext, ", got ",
            context);
  QKV_CHECK(num_layers > 0, "the number of layers must be > 0, got ", num_layers);
  QKV_CHECK(num_layers <= kMaxLayers, "the number of layers (n_layer) must be <= ", kMaxLayers,
            ", got ", num_layers);
  QKV_CHECK(num_heads > 0, "the number of heads must be > 0, got ", num_heads);
  QKV_CHECK(width > 0, "the width (n_embd) must be > 0, got ", width);
  QKV_CHECK(width <= kMaxWidth, "the width (n_embd) must be <= ", kMaxWidth, ", got ", width);
  QKV_CHECK(head_size >= 0 && head_size <= kMaxWidth, "the head size must be in [1, ", kMaxWidth,
            "] (or 0 for width / heads), got ", head_size);
  QKV_CHECK(head_size > 0 || width % num_heads == 0, "the width ", width,
            " is not divisible by the ", num_heads, " heads");
  QKV_CHECK(num_kv_heads >= 0 && num_heads % kv_heads() == 0, "the ", kv_heads(),
            " key/value heads do not divide the ", num_heads, " heads");
  QKV_CHECK(ffn_dim >= 0, "the feed-forward size must be > 0 (or 0 for 4 x width), got ", ffn_dim);
  QKV_CHECK(ffn_dim <= kMaxFfnDim, "the feed-forward size (n_inner) must be <= ", kMaxFfnDim,
            ", got ", ffn_dim);
  QKV_CHECK(rope_original_context >= 0 && rope_original_context <= kMaxContext,
            "the original RoPE context must be in [0, ", kMaxContext, "], got ",
            rope_original_context);
  if (position == PositionEncoding::kRope) {
    QKV_CHECK(head_dim() % 2 == 0, "RoPE needs an even head size, but width ", width, " / ",
              num_heads, " heads = ", head_dim());
    QKV_CHECK(rope_theta > 0 && std::isfinite(rope_theta), "rope_theta must be > 0, got ",
              rope_theta);
    RopeConfigFor(*this).Validate(head_dim());
  } else {
    QKV_CHECK(rope_scaling == ops::RopeScaling::kNone, "rope scaling (", ToString(rope_scaling),
              ") needs a RoPE model, but positions are ", ToString(position));
  }
  QKV_CHECK(norm_eps > 0 && std::isfinite(norm_eps), "the norm epsilon must be > 0, got ",
            norm_eps);
  QKV_CHECK(dropout >= 0 && dropout < 1, "dropout must be in [0, 1), got ", dropout);
}

bool ModelConfig::LlamaShaped() const {
  return position == PositionEncoding::kRope && rope_style == ops::RopeStyle::kHalf &&
         norm == NormKind::kRmsNorm && norm_placement == NormPlacement::kPre &&
         ffn == FfnKind::kSwiGlu && !bias;
}

namespace {

// config.json's "rope_scaling" (both dialects), or null for none.
nlohmann::json RopeScalingJson(const ModelConfig& config) {
  if (config.position != PositionEncoding::kRope ||
      config.rope_scaling == ops::RopeScaling::kNone) {
    return nullptr;
  }
  nlohmann::json json = {{"rope_type", ToString(config.rope_scaling)},
                         {"factor", config.rope_factor}};
  if (config.rope_scaling != ops::RopeScaling::kDynamic) {  // dynamic grows past the context
    json["original_max_position_embeddings"] =
        config.rope_original_context > 0 ? config.rope_original_context : config.context;
  }
  if (config.rope_scaling == ops::RopeScaling::kLlama3) {
    json["low_freq_factor"] = config.rope_low_freq_factor;
    json["high_freq_factor"] = config.rope_high_freq_factor;
  }
  if (config.rope_scaling == ops::RopeScaling::kYarn) {
    json["beta_fast"] = config.rope_beta_fast;
    json["beta_slow"] = config.rope_beta_slow;
    if (config.rope_attention_factor > 0) json["attention_factor"] = config.rope_attention_factor;
  }
  return json;
}

void ReadRopeScaling(const nlohmann::json& json, ModelConfig& config) {
  if (!json.contains("rope_scaling") || json["rope_scaling"].is_null()) return;
  const nlohmann::json& scaling = json["rope_scaling"];
  QKV_CHECK(scaling.is_object(), "config.json: rope_scaling must be an object");
  // Hugging Face wrote "type" before it wrote "rope_type", and calls plain RoPE "default".
  const std::string type =
      OptionalString(scaling, "rope_type", OptionalString(scaling, "type", "none"));
  config.rope_scaling = ParseRopeScaling(type == "default" ? "none" : type);
  config.rope_factor = OptionalReal(scaling, "factor", 1.0);
  config.rope_original_context =
      OptionalInteger(scaling, "original_max_position_embeddings", 0, 0, kMaxContext);
  config.rope_low_freq_factor = OptionalReal(scaling, "low_freq_factor", 1.0);
  config.rope_high_freq_factor = OptionalReal(scaling, "high_freq_factor", 4.0);
  config.rope_attention_factor = OptionalReal(scaling, "attention_factor", 0.0);
  config.rope_beta_fast = OptionalReal(scaling, "beta_fast", 32.0);
  config.rope_beta_slow = OptionalReal(scaling, "beta_slow", 1.0);
}

nlohmann::json LlamaJson(const ModelConfig& config) {
  return {
      {"model_type", "llama"},
      {"architectures", {"LlamaForCausalLM"}},
      {"vocab_size", config.vocab_size},
      {"hidden_size", config.width},
      {"intermediate_size", config.ffn_hidden()},
      {"num_hidden_layers", config.num_layers},
      {"num_attention_heads", config.num_heads},
      {"num_key_value_heads", config.kv_heads()},
      {"head_dim", config.head_dim()},
      {"hidden_act", "silu"},
      {"max_position_embeddings", config.context},
      {"rms_norm_eps", config.norm_eps},
      {"rope_theta", config.rope_theta},
      {"rope_scaling", RopeScalingJson(config)},
      {"tie_word_embeddings", config.tie_embeddings},
      {"attention_bias", false},
      {"mlp_bias", false},
      {"attention_dropout", 0.0},
      {"torch_dtype", "float32"},
      {"resid_pdrop", config.dropout},  // qkv's training setting; transformers ignores it
  };
}

ModelConfig LlamaFromJson(const nlohmann::json& json) {
  ModelConfig config;
  config.vocab_size = RequiredInteger(json, "vocab_size", 1, kMaxVocabSize);
  config.width = RequiredInteger(json, "hidden_size", 1, kMaxWidth);
  config.ffn_dim = RequiredInteger(json, "intermediate_size", 1, kMaxFfnDim);
  config.num_layers = RequiredInteger(json, "num_hidden_layers", 1, kMaxLayers);
  config.num_heads = RequiredInteger(json, "num_attention_heads", 1, kMaxWidth);
  config.num_kv_heads =
      OptionalInteger(json, "num_key_value_heads", config.num_heads, 1, config.num_heads);
  QKV_CHECK(config.num_heads % config.num_kv_heads == 0, "config.json: num_key_value_heads ",
            config.num_kv_heads, " does not divide num_attention_heads ", config.num_heads);
  config.head_size = OptionalInteger(json, "head_dim", 0, 1, kMaxWidth);
  QKV_CHECK(config.head_size > 0 || config.width % config.num_heads == 0,
            "config.json: hidden_size ", config.width, " is not divisible by num_attention_heads ",
            config.num_heads, " and there is no head_dim");
  config.context = OptionalInteger(json, "max_position_embeddings", 2048, 1, kMaxContext);
  config.norm_eps = OptionalReal(json, "rms_norm_eps", 1e-6);
  config.position = PositionEncoding::kRope;
  config.rope_style = ops::RopeStyle::kHalf;
  config.rope_theta = OptionalReal(json, "rope_theta", 10000.0);
  ReadRopeScaling(json, config);
  config.norm = NormKind::kRmsNorm;
  config.norm_placement = NormPlacement::kPre;
  const std::string activation = OptionalString(json, "hidden_act", "silu");
  QKV_CHECK(activation == "silu", "config.json: hidden_act '", activation,
            "' is not supported (a Llama model's feed-forward network is SwiGLU: silu)");
  config.ffn = FfnKind::kSwiGlu;
  QKV_CHECK(!OptionalBool(json, "attention_bias", false),
            "config.json: attention_bias = true is not supported (qkv's Llama layout has no "
            "biases)");
  QKV_CHECK(!OptionalBool(json, "mlp_bias", false),
            "config.json: mlp_bias = true is not supported (qkv's Llama layout has no biases)");
  config.bias = false;
  // LlamaConfig's default is an output head of its own.
  config.tie_embeddings = OptionalBool(json, "tie_word_embeddings", false);
  const double dropout = OptionalReal(json, "resid_pdrop", 0.0);
  QKV_CHECK(dropout >= 0 && dropout < 1, "config.json: 'resid_pdrop' must be in [0, 1), got ",
            dropout);
  config.dropout = static_cast<float>(dropout);
  config.Validate();
  return config;
}

}  // namespace

nlohmann::json ModelConfig::ToJson() const {
  if (LlamaShaped()) return LlamaJson(*this);
  nlohmann::json json = {
      {"model_type", "gpt2"},
      {"architectures", {"GPT2LMHeadModel"}},
      {"vocab_size", vocab_size},
      {"n_positions", context},
      {"n_ctx", context},
      {"n_layer", num_layers},
      {"n_head", num_heads},
      {"n_embd", width},
      {"n_inner", ffn_dim > 0 ? nlohmann::json(ffn_dim) : nlohmann::json(nullptr)},
      {"layer_norm_epsilon", norm_eps},
      {"activation_function", ffn == FfnKind::kGeluTanh ? "gelu_new" : ToString(ffn)},
      {"resid_pdrop", dropout},
      {"embd_pdrop", dropout},
      {"attn_pdrop", 0.0},
      {"tie_word_embeddings", tie_embeddings},
      {"position_encoding", ToString(position)},
      {"norm", ToString(norm)},
      {"norm_placement", ToString(norm_placement)},
      {"ffn", ToString(ffn)},
      {"bias", bias},
  };
  if (num_kv_heads > 0 && num_kv_heads != num_heads) json["n_kv_head"] = num_kv_heads;
  if (head_size > 0) json["head_dim"] = head_size;
  if (position == PositionEncoding::kRope) {
    json["rope_theta"] = rope_theta;
    json["rope_style"] = ToString(rope_style);
    if (rope_scaling != ops::RopeScaling::kNone) json["rope_scaling"] = RopeScalingJson(*this);
  }
  return json;
}

ModelConfig ModelConfig::FromJson(const nlohmann::json& json) {
  QKV_CHECK(json.is_object(), "config.json must hold a JSON object");
  if (OptionalString(json, "model_type", "gpt2") == "llama") return LlamaFromJson(json);
  ModelConfig config;
  config.vocab_size = RequiredInteger(json, "vocab_size", 1, kMaxVocabSize);
  config.context = RequiredInteger(json, "n_positions", 1, kMaxContext);
  config.num_layers = RequiredInteger(json, "n_layer", 1, kMaxLayers);
  config.num_heads = RequiredInteger(json, "n_head", 1, kMaxWidth);
  config.width = RequiredInteger(json, "n_embd", 1, kMaxWidth);
  config.ffn_dim = OptionalInteger(json, "n_inner", 0, 0, kMaxFfnDim);
  config.num_kv_heads = OptionalInteger(json, "n_kv_head", 0, 1, config.num_heads);
  QKV_CHECK(config.num_kv_heads == 0 || config.num_heads % config.num_kv_heads == 0,
            "config.json: n_kv_head ", config.num_kv_heads, " does not divide n_head ",
            config.num_heads);
  config.head_size = OptionalInteger(json, "head_dim", 0, 1, kMaxWidth);
  QKV_CHECK(config.head_size > 0 || config.width % config.num_heads == 0, "config.json: n_embd ",
            config.width, " is not divisible by n_head ", config.num_heads, " (the width ",
            config.width, " is not divisible by the ", config.num_heads, " heads)");
  config.norm_eps = OptionalReal(json, "layer_norm_epsilon", 1e-5);
  config.position = ParsePositionEncoding(OptionalString(json, "position_encoding", "learned"));
  config.rope_theta = OptionalReal(json, "rope_theta", 10000.0);
  config.rope_style = ParseRopeStyle(OptionalString(json, "rope_style", "half"));
  ReadRopeScaling(json, config);
  config.norm = ParseNormKind(OptionalString(json, "norm", "layernorm"));
  config.norm_placement = ParseNormPlacement(OptionalString(json, "norm_placement", "pre"));
  // qkv's "ffn" key wins; otherwise Hugging Face's activation_function.
  config.ffn = ParseFfnKind(
      OptionalString(json, "ffn", OptionalString(json, "activation_function", "gelu_new")));
  config.bias = OptionalBool(json, "bias", true);
  const double dropout = OptionalReal(json, "resid_pdrop", 0.0);
  QKV_CHECK(dropout >= 0 && dropout < 1, "config.json: 'resid_pdrop' must be in [0, 1), got ",
            dropout);
  config.dropout = static_cast<float>(dropout);
  config.tie_embeddings = OptionalBool(json, "tie_word_embeddings", true);
  config.Validate();
  return config;
}

}  // namespace qkv::model
