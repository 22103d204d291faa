#include "qkv/model/marian_checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <set>
#include <vector>

#include "qkv/core/check.h"
#include "qkv/core/memory.h"
#include "qkv/core/tensor.h"
#include "qkv/io/checkpoint_directory.h"
#include "qkv/io/safetensors.h"
#include "qkv/model/checkpoint.h"
#include "qkv/model/checkpoint_layout.h"
#include "qkv/model/config_json.h"
#include "qkv/ops/sinusoidal.h"

namespace qkv::model {

namespace {

namespace fs = std::filesystem;

using layers::ParameterInfo;

constexpr const char* kShared = "model.shared.weight";
// What transformers may store besides model.shared.weight for the same matrix.
constexpr const char* kTiedCopies[] = {"model.encoder.embed_tokens.weight",
                                       "model.decoder.embed_tokens.weight", "lm_head.weight"};
constexpr const char* kPositionTables[] = {"model.encoder.embed_positions.weight",
                                           "model.decoder.embed_positions.weight"};
// nn.LayerNorm's default, which MarianMTModel never changes (there is no config key for it).
constexpr double kMarianNormEps = 1e-5;

// ---------------------------------------------------------------------------------------------
// config.json values: the strict readers every dialect shares (model/config_json.h).

using config_json::Describe;
using config_json::IntegerIn;
using config_json::OptionalBool;
using config_json::OptionalInteger;
using config_json::OptionalReal;
using config_json::OptionalString;
using config_json::Present;
using config_json::RequiredInteger;
using config_json::ThrowBadValue;

// Hugging Face's ACT2FN names for the activations qkv's FFN has: "gelu" is the exact (erf)
// GELU, "gelu_new" the tanh approximation, "swish" (OPUS-MT's) and "silu" the same SiLU.
std::string ActivationName(FfnKind kind) {
  switch (kind) {
    case FfnKind::kRelu:
      return "relu";
    case FfnKind::kGelu:
      return "gelu";
    case FfnKind::kGeluTanh:
      return "gelu_new";
    case FfnKind::kSilu:
      return "swish";
    case FfnKind::kSwiGlu:
      break;
  }
  QKV_CHECK(false, "a MarianMTModel has no activation_function for the swiglu FFN");
  return "";
}

FfnKind ParseActivation(const std::string& name) {
  if (name == "relu") return FfnKind::kRelu;
  if (name == "gelu") return FfnKind::kGelu;
  if (name == "gelu_new" || name == "gelu_pytorch_tanh") return FfnKind::kGeluTanh;
  if (name == "swish" || name == "silu") return FfnKind::kSilu;
  ThrowBadValue("activation_function", name, "want relu, gelu, gelu_new, swish or silu");
}

// ---------------------------------------------------------------------------------------------
// The tensors: each qkv parameter is one or more file tensors, each a run of the slot's rows.

struct Piece {
  std::string file_name;
  int64_t row_begin = 0;  // rows [row_begin, row_begin + rows) of the slot's first dimension
  int64_t rows = 0;
  std::vector<int64_t> stored_shape;  // as the file stores it
};

int64_t SlotColumns(const ParameterInfo& info) {
  int64_t columns = 1;
  for (int i = 1; i < info.shape.rank(); ++i) columns *= info.shape[i];
  return columns;
}

bool StartsWith(const std::string& text, const std::string& prefix) {
  return text.compare(0, prefix.size(), prefix) == 0;
}

// The parts of a block as Marian names them, several for the fused projections, whose rows
// split evenly: qkv (3C, C) is q, k, v; cross-attention's kv (2C, C) is k, v.
const std::map<std::string, std::vector<std::string>>& BlockParts() {
  static const std::map<std::string, std::vector<std::string>> parts = {
      {"norm1", {"self_attn_layer_norm"}},
      {"attention.qkv", {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"}},
      {"attention.out", {"self_attn.out_proj"}},
      {"cross_norm", {"encoder_attn_layer_norm"}},
      {"cross_attention.q", {"encoder_attn.q_proj"}},
      {"cross_attention.kv", {"encoder_attn.k_proj", "encoder_attn.v_proj"}},
      {"cross_attention.out", {"encoder_attn.out_proj"}},
      {"norm2", {"final_layer_norm"}},
      {"ffn.up", {"fc1"}},
      {"ffn.down", {"fc2"}},
  };
  return parts;
}

// shared_name: the file tensor that holds the shared embedding (model.shared.weight, or on
// load one of its tied copies when a file lacks it).
std::vector<Piece> PiecesOf(const ParameterInfo& info, const std::string& shared_name = kShared) {
  const std::string& n = info.name;
  const int64_t rows = info.shape[0];
  std::vector<int64_t> shape(static_cast<size_t>(info.shape.rank()));
  for (int i = 0; i < info.shape.rank(); ++i) shape[static_cast<size_t>(i)] = info.shape[i];
  auto whole = [&](const std::string& name) { return std::vector<Piece>{{name, 0, rows, shape}}; };
  if (n == "shared") return whole(shared_name);
  if (n == "encoder.positions") return whole(kPositionTables[0]);
  if (n == "decoder.positions") return whole(kPositionTables[1]);
  if (n == "final_logits_bias") return {{"final_logits_bias", 0, rows, {1, rows}}};  // a buffer
  for (const std::string stack : {"encoder", "decoder"}) {
    const std::string prefix = stack + ".";
    if (!StartsWith(n, prefix)) continue;
    const std::string rest = n.substr(prefix.size());
    if (StartsWith(rest, "norm.")) {  // pre-norm's final norm, mBART's name
      return whole("model." + stack + ".layer_norm." + rest.substr(std::strlen("norm.")));
    }
    if (!StartsWith(rest, "blocks.")) break;
    const size_t layer_end = rest.find('.', std::strlen("blocks."));
    const size_t kind_at = rest.rfind('.');
    if (layer_end == std::string::npos || kind_at <= layer_end) break;
    const std::string layer =
        rest.substr(std::strlen("blocks."), layer_end - std::strlen("blocks."));
    const std::string part = rest.substr(layer_end + 1, kind_at - layer_end - 1);
    const std::string kind = rest.substr(kind_at + 1);
    const auto found = BlockParts().find(part);
    if (found == BlockParts().end()) break;
    const int64_t count = static_cast<int64_t>(found->second.size()), each = rows / count;
    std::vector<Piece> pieces;
    for (int64_t i = 0; i < count; ++i) {
      std::vector<int64_t> piece_shape = shape;
      piece_shape[0] = each;
      pieces.push_back({internal::StrCat("model.", stack, ".layers.", layer, ".",
                                         found->second[static_cast<size_t>(i)], ".", kind),
                        i * each, each, piece_shape});
    }
    return pieces;
  }
  QKV_CHECK(false, "the Marian layout has no tensor for parameter '", n, "'");
  return {};
}

// Marian's fixed position table (P, C): sines, then cosines.
Tensor<float> SinusoidalTable(const EncoderDecoderConfig& config) {
  Tensor<float> table(Shape{config.max_positions, config.width});
  ops::FillSinusoidalTable(table.view(), ops::SinusoidalLayout::kHalves);
  return table;
}

io::SafetensorsFile MarianTensors(const EncoderDecoderConfig& config,
                                  const EncoderDecoderParams<float>& params) {
  io::SafetensorsFile file;
  file.metadata["format"] = "pt";  // what transformers expects to find
  EncoderDecoderParams<float> views = params;
  ForEachParameter(config, views, [&](const ParameterInfo& info, TensorView<float>& slot) {
    const int64_t columns = SlotColumns(info);
    for (const Piece& piece : PiecesOf(info)) {
      io::NamedTensor tensor;
      tensor.name = piece.file_name;
      tensor.shape = piece.stored_shape;
      const float* begin = slot.data() + piece.row_begin * columns;
      tensor.f32.assign(begin, begin + piece.rows * columns);
      file.tensors.push_back(std::move(tensor));
    }
  });
  if (config.position == PositionEncoding::kSinusoidal) {
    // So that transformers versions which load these tables from the file find them.
    const Tensor<float> table = SinusoidalTable(config);
    for (const char* name : kPositionTables) {
      io::NamedTensor tensor;
      tensor.name = name;
      tensor.shape = {config.max_positions, config.width};
      tensor.f32.assign(table.data(), table.data() + table.size());
      file.tensors.push_back(std::move(tensor));
    }
  }
  return file;
}

void WriteModelFiles(const std::string& dir, const EncoderDecoderConfig& config,
                     const EncoderDecoderParams<float>& params, const nlohmann::json& extra,
                     const std::string& float_dtype) {
  nlohmann::json json = MarianConfigJson(config);
  if (extra.is_object()) {
    for (const auto& [key, value] : extra.items()) json[key] = value;
  }
  // Tensors first: a config.json always describes a model.safetensors that is complete.
  io::SafetensorsFile tensors = MarianTensors(config, params);
  io::SetFloatDtype(tensors, float_dtype);
  io::WriteSafetensors((fs::path(dir) / "model.safetensors").string(), tensors);
  io::WriteFileAtomically((fs::path(dir) / "config.json").string(), json.dump(2) + "\n");
}

// Best effort, as io::WriteFileAtomically does for the files: makes a rename in dir durable.
void SyncDirectory(const fs::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

size_t EncoderDecoderParameterBytes(const EncoderDecoderConfig& config) {
  Arena measure = Arena::MeasureOnly();
  EncoderDecoderParams<float> params;
  ForEachParameter(config, params, layers::AllocateFrom<float>(measure));
  return measure.used_bytes();
}

// The largest rounding error of a value in [-1, 1] stored in a file's dtype: a sinusoidal table
// transformers saved in half precision is Marian's table rounded.
double TableTolerance(const std::string& stored_dtype) {
  if (stored_dtype == "F16") return std::ldexp(1.0, -11);
  if (stored_dtype == "BF16") return std::ldexp(1.0, -8);
  return 1e-6;
}

bool SameValues(const io::NamedTensor& tensor, TensorView<float> slot) {
  return tensor.f32.size() == static_cast<size_t>(slot.size()) &&
         std::memcmp(tensor.f32.data(), slot.data(), tensor.f32.size() * sizeof(float)) == 0;
}

}  // namespace

nlohmann::json MarianConfigJson(const EncoderDecoderConfig& config) {
  config.Validate();
  QKV_CHECK(config.norm_eps == kMarianNormEps,
            "a MarianMTModel's LayerNorm epsilon is fixed at 1e-5, but this model's is ",
            config.norm_eps);
  return {
      {"model_type", "marian"},
      {"architectures", {"MarianMTModel"}},
      {"vocab_size", config.vocab_size},
      {"decoder_vocab_size", config.vocab_size},
      {"d_model", config.width},
      {"encoder_layers", config.encoder_layers},
      {"decoder_layers", config.decoder_layers},
      {"num_hidden_layers", config.encoder_layers},  // what MarianConfig sets it to
      {"encoder_attention_heads", config.num_heads},
      {"decoder_attention_heads", config.num_heads},
      {"encoder_ffn_dim", config.ffn_hidden()},
      {"decoder_ffn_dim", config.ffn_hidden()},
      {"activation_function", ActivationName(config.ffn)},
      {"max_position_embeddings", config.max_positions},
      {"scale_embedding", config.scale_embedding},
      {"pad_token_id", config.pad_id},
      {"eos_token_id", config.eos_id},
      {"decoder_start_token_id", config.decoder_start_id},
      // Generation as OPUS-MT's configs set it up: never produce padding, end with </s>.
      {"forced_eos_token_id", config.eos_id},
      {"bad_words_ids", {{config.pad_id}}},
      {"share_encoder_decoder_embeddings", true},
      {"tie_word_embeddings", true},
      {"is_encoder_decoder", true},
      {"dropout", config.dropout},  // qkv's training setting, where Marian applies it too
      {"attention_dropout", 0.0},
      {"activation_dropout", 0.0},
      {"encoder_layerdrop", 0.0},
      {"decoder_layerdrop", 0.0},
      {"init_std", 0.02},
      {"use_cache", true},
      {"torch_dtype", "float32"},
      // qkv's options; transformers ignores them (it has sinusoidal post-norm models only).
      {"position_encoding", ToString(config.position)},
      {"normalize_before", config.norm_placement == NormPlacement::kPre},
  };
}

EncoderDecoderConfig EncoderDecoderConfigFromMarianJson(const nlohmann::json& json) {
  QKV_CHECK(json.is_object(), "config.json must hold a JSON object");
  QKV_CHECK(Present(json, "model_type"), "config.json: the required key 'model_type' is missing");
  const std::string model_type = OptionalString(json, "model_type", "");
  QKV_CHECK(model_type == "marian", "config.json: 'model_type' is \"", model_type,
            "\", but a MarianMTModel directory has \"marian\"");
  EncoderDecoderConfig config;
  config.vocab_size = RequiredInteger(json, "vocab_size", 1, kMaxVocabSize);
  const int64_t decoder_vocab =
      OptionalInteger(json, "decoder_vocab_size", config.vocab_size, 1, kMaxVocabSize);
  QKV_CHECK(decoder_vocab == config.vocab_size, "config.json: 'decoder_vocab_size' is ",
            decoder_vocab, " but 'vocab_size' is ", config.vocab_size,
            "; qkv's encoder-decoder has one vocabulary for both sides");
  config.width = RequiredInteger(json, "d_model", 1, kMaxWidth);
  config.encoder_layers = RequiredInteger(json, "encoder_layers", 1, kMaxLayers);
  config.decoder_layers = RequiredInteger(json, "decoder_layers", 1, kMaxLayers);
  const int64_t encoder_heads = RequiredInteger(json, "encoder_attention_heads", 1, kMaxWidth);
  const int64_t decoder_heads = RequiredInteger(json, "decoder_attention_heads", 1, kMaxWidth);
  QKV_CHECK(encoder_heads == decoder_heads, "config.json: 'encoder_attention_heads' is ",
            encoder_heads, " but 'decoder_attention_heads' is ", decoder_heads,
            "; qkv's encoder-decoder has one head count for both stacks");
  config.num_heads = encoder_heads;
  QKV_CHECK(config.width % config.num_heads == 0, "config.json: d_model ", config.width,
            " is not divisible by encoder_attention_heads ", config.num_heads);
  const int64_t encoder_ffn = RequiredInteger(json, "encoder_ffn_dim", 1, kMaxFfnDim);
  const int64_t decoder_ffn = RequiredInteger(json, "decoder_ffn_dim", 1, kMaxFfnDim);
  QKV_CHECK(encoder_ffn == decoder_ffn, "config.json: 'encoder_ffn_dim' is ", encoder_ffn,
            " but 'decoder_ffn_dim' is ", decoder_ffn,
            "; qkv's encoder-decoder has one feed-forward size for both stacks");
  config.ffn_dim = encoder_ffn;
  config.max_positions = RequiredInteger(json, "max_position_embeddings", 1, kMaxContext);
  // The defaults are MarianConfig's where it has one.
  config.ffn = ParseActivation(OptionalString(json, "activation_function", "gelu"));
  config.scale_embedding = OptionalBool(json, "scale_embedding", false);
  config.pad_id = static_cast<int32_t>(RequiredInteger(json, "pad_token_id", 0, kMaxVocabSize));
  config.eos_id = static_cast<int32_t>(RequiredInteger(json, "eos_token_id", 0, kMaxVocabSize));
  config.decoder_start_id = static_cast<int32_t>(
      OptionalInteger(json, "decoder_start_token_id", config.pad_id, 0, kMaxVocabSize));
  QKV_CHECK(OptionalBool(json, "share_encoder_decoder_embeddings", true),
            "config.json: 'share_encoder_decoder_embeddings' is false, but qkv's encoder-decoder "
            "has one embedding for the encoder, the decoder and the output head");
  QKV_CHECK(OptionalBool(json, "tie_word_embeddings", true),
            "config.json: 'tie_word_embeddings' is false, but qkv's encoder-decoder ties the "
            "output head to the shared embedding");
  const std::string position = OptionalString(json, "position_encoding", "sinusoidal");
  if (position == "sinusoidal") {
    config.position = PositionEncoding::kSinusoidal;
  } else if (position == "learned") {
    config.position = PositionEncoding::kLearned;
  } else if (position == "none") {
    config.position = PositionEncoding::kNone;
  } else {
    ThrowBadValue("position_encoding", position, "want sinusoidal, learned or none");
  }
  config.norm_placement =
      OptionalBool(json, "normalize_before", false) ? NormPlacement::kPre : NormPlacement::kPost;
  config.norm_eps = kMarianNormEps;
  const double dropout = OptionalReal(json, "dropout", 0.1);
  QKV_CHECK(dropout >= 0 && dropout < 1, "config.json: 'dropout' must be in [0, 1), got ", dropout);
  config.dropout = static_cast<float>(dropout);
  config.Validate();
  return config;
}

LoadedEncoderDecoder AllocateEncoderDecoder(const EncoderDecoderConfig& config) {
  config.Validate();
  LoadedEncoderDecoder model;
  model.config = config;
  model.arena = Arena(EncoderDecoderParameterBytes(config));
  ForEachParameter(config, model.params, layers::AllocateFrom<float>(model.arena));
  return model;
}

void SaveEncoderDecoder(const std::string& dir, const EncoderDecoderConfig& config,
                        const EncoderDecoderParams<float>& params, const nlohmann::json& extra,
                        const std::string& float_dtype) {
  fs::path target = fs::path(dir).lexically_normal();
  if (!target.has_filename()) target = target.parent_path();  // "out/"
  std::error_code error;
  if (fs::exists(target, error)) {
    QKV_CHECK(fs::is_directory(target, error), dir, ": exists and is not a directory");
    WriteModelFiles(target.string(), config, params, extra, float_dtype);
    return;
  }
  // A new directory: written under a temporary name beside it, then renamed, so that a crash
  // never leaves a directory called `dir` that lacks a file.
  const fs::path parent = target.has_parent_path() ? target.parent_path() : fs::path(".");
  fs::create_directories(parent, error);
  QKV_CHECK(!error, parent.string(), ": cannot create the directory: ", error.message());
  const fs::path staging =
      parent / ("." + target.filename().string() + ".staging." + std::to_string(::getpid()));
  fs::remove_all(staging, error);
  fs::create_directory(staging, error);
  QKV_CHECK(!error, staging.string(), ": cannot create the directory: ", error.message());
  try {
    WriteModelFiles(staging.string(), config, params, extra, float_dtype);
    fs::rename(staging, target, error);
    QKV_CHECK(!error, dir, ": cannot move the written model into place: ", error.message());
  } catch (...) {
    fs::remove_all(staging, error);
    throw;
  }
  SyncDirectory(parent);
}

LoadedEncoderDecoder LoadEncoderDecoder(const std::string& model_dir) {
  const std::string dir = io::ResolveModelDirectory(model_dir);
  EncoderDecoderConfig config;
  try {
    config = EncoderDecoderConfigFromMarianJson(ReadConfigJson(dir));
  } catch (const Error& error) {
    throw Error(internal::StrCat(dir, ": ", error.what()));
  }
  // Every tensor is checked against config.json before config.json is trusted to size the
  // parameter arena (the files' size bounds what reading them allocated).
  std::string source;
  const std::vector<io::SafetensorsFile> files = ReadCheckpointTensors(dir, &source);
  std::map<std::string, const io::NamedTensor*> tensors;
  for (const io::SafetensorsFile& file : files) {
    for (const io::NamedTensor& tensor : file.tensors) {
      QKV_CHECK(tensors.emplace(tensor.name, &tensor).second, source, ": tensor '", tensor.name,
                "' appears twice (in two files)");
      QKV_CHECK(!tensor.is_int32 && tensor.opaque_dtype.empty(), source, ": tensor '", tensor.name,
                "' has dtype ", tensor.is_int32 ? "I32" : tensor.opaque_dtype,
                "; parameters must be F32, F16 or BF16");
    }
  }
  // The shared embedding under its own name or, in a file without it, under a tied copy's.
  std::string shared_name = kShared;
  if (tensors.count(shared_name) == 0) {
    for (const char* copy : kTiedCopies) {
      if (tensors.count(copy) != 0) {
        shared_name = copy;
        break;
      }
    }
  }
  std::set<std::string> unused;
  for (const auto& [name, tensor] : tensors) unused.insert(name);
  auto check_shape = [&](const std::string& name, const std::vector<int64_t>& expected) {
    const io::NamedTensor& tensor = *tensors.at(name);
    QKV_CHECK(tensor.shape == expected, source, ": tensor '", name, "' has shape ",
              io::ShapeText(tensor.shape), " but config.json implies ", io::ShapeText(expected));
    unused.erase(name);
  };
  EncoderDecoderParams<float> no_memory;
  ForEachParameter(config, no_memory, [&](const ParameterInfo& info, TensorView<float>&) {
    for (const Piece& piece : PiecesOf(info, shared_name)) {
      QKV_CHECK(tensors.count(piece.file_name) != 0, source, ": tensor '", piece.file_name,
                "' is missing, but config.json describes a model that needs it");
      check_shape(piece.file_name, piece.stored_shape);
    }
  });
  const std::vector<int64_t> embedding_shape{config.vocab_size, config.width};
  std::vector<std::string> copies;
  for (const char* copy : kTiedCopies) {
    if (copy == shared_name || tensors.count(copy) == 0) continue;
    check_shape(copy, embedding_shape);
    copies.push_back(copy);
  }
  if (config.position == PositionEncoding::kSinusoidal) {
    // Fixed tables, which transformers saves or not depending on its version: when present,
    // they must be the table qkv adds.
    const Tensor<float> expected = SinusoidalTable(config);
    for (const char* name : kPositionTables) {
      if (tensors.count(name) == 0) continue;
      check_shape(name, {config.max_positions, config.width});
      const io::NamedTensor& table = *tensors.at(name);
      double worst = 0.0;
      int64_t worst_at = 0;
      for (int64_t i = 0; i < expected.size(); ++i) {
        const double difference =
            std::fabs(static_cast<double>(table.f32[static_cast<size_t>(i)]) - expected[i]);
        if (!(difference <= worst)) {  // NaN counts as the worst
          worst = std::isnan(difference) ? std::numeric_limits<double>::infinity() : difference;
          worst_at = i;
        }
      }
      QKV_CHECK(worst <= TableTolerance(table.stored_dtype), source, ": tensor '", name,
                "' is not Marian's sinusoidal position table (at position ",
                worst_at / config.width, ", column ", worst_at % config.width, " it differs by ",
                worst, "), but config.json's position_encoding is sinusoidal");
    }
  }
  for (const std::string& name : unused) {
    QKV_CHECK(false, source, ": tensor '", name,
              "' is not part of the model config.json describes (wrong config?)");
  }
  CheckFitsInMemory(EncoderDecoderParameterBytes(config), dir + ": the model's parameters");

  LoadedEncoderDecoder model = AllocateEncoderDecoder(config);
  ForEachParameter(config, model.params, [&](const ParameterInfo& info, TensorView<float>& slot) {
    const int64_t columns = SlotColumns(info);
    for (const Piece& piece : PiecesOf(info, shared_name)) {
      const io::NamedTensor& tensor = *tensors.at(piece.file_name);
      QKV_CHECK(static_cast<int64_t>(tensor.f32.size()) == piece.rows * columns, source,
                ": tensor '", piece.file_name, "' holds ", tensor.f32.size(), " values for ",
                piece.rows * columns, " slots");
      std::memcpy(slot.data() + piece.row_begin * columns, tensor.f32.data(),
                  tensor.f32.size() * sizeof(float));
    }
  });
  for (const std::string& copy : copies) {
    QKV_CHECK(SameValues(*tensors.at(copy), model.params.shared), source, ": tensor '", copy,
              "' differs from '", shared_name,
              "', but a MarianMTModel ties its embeddings and output head to one matrix");
  }
  return model;
}

}  // namespace qkv::model
