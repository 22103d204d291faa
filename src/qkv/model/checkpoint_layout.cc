#include "qkv/model/checkpoint_layout.h"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "qkv/core/check.h"

namespace qkv::model {

namespace {

bool StartsWith(const std::string& text, const std::string& prefix) {
  return text.compare(0, prefix.size(), prefix) == 0;
}

bool EndsWith(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() &&
         text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The columns of a slot: the product of every dimension but the first (1 for a vector).
int64_t SlotColumns(const ParameterInfo& info) {
  int64_t columns = 1;
  for (int i = 1; i < info.shape.rank(); ++i) columns *= info.shape[i];
  return columns;
}

class Gpt2 final : public CheckpointLayout {
 public:
  std::string name() const override { return "gpt2"; }

  std::vector<TensorPiece> PiecesOf(const ParameterInfo& info) const override {
    const std::string& n = info.name;
    TensorPiece piece{"", 0, info.shape[0], false};
    if (n == "token_embedding") {
      piece.file_name = "wte.weight";
    } else if (n == "position_embedding") {
      piece.file_name = "wpe.weight";
    } else if (StartsWith(n, "final_norm.")) {
      piece.file_name = "ln_f." + n.substr(std::strlen("final_norm."));
    } else if (n == "output_head") {
      piece.file_name = "lm_head.weight";  // an untied head, stored (V, C) as transformers does
    } else if (StartsWith(n, "blocks.")) {
      // blocks.<i>.<part>.<weight|bias> -> h.<i>.<gpt2 part>.<weight|bias>
      const size_t layer_end = n.find('.', std::strlen("blocks."));
      const std::string layer =
          n.substr(std::strlen("blocks."), layer_end - std::strlen("blocks."));
      const std::string rest = n.substr(layer_end + 1);
      const size_t kind_at = rest.rfind('.');
      const std::string part = rest.substr(0, kind_at), kind = rest.substr(kind_at + 1);
      static const std::map<std::string, std::string> kParts = {{"norm1", "ln_1"},
                                                                {"norm2", "ln_2"},
                                                                {"attention.qkv", "attn.c_attn"},
                                                                {"attention.out", "attn.c_proj"},
                                                                {"ffn.up", "mlp.c_fc"},
                                                                {"ffn.down", "mlp.c_proj"}};
      const auto found = kParts.find(part);
      QKV_CHECK(found != kParts.end(), "the GPT-2 layout has no tensor for parameter '", n, "'");
      piece.file_name = "h." + layer + "." + found->second + "." + kind;
      // Conv1D: every projection weight is stored (in, out).
      piece.transposed = kind == "weight" && !StartsWith(part, "norm");
    } else {
      QKV_CHECK(false, "the GPT-2 layout has no tensor for parameter '", n, "'");
    }
    return {piece};
  }

  std::string Canonical(const std::string& file_name) const override {
    return StartsWith(file_name, "transformer.") ? file_name.substr(std::strlen("transformer."))
                                                 : file_name;
  }

  bool IsIgnored(const std::string& name) const override {
    return EndsWith(name, ".attn.bias") || EndsWith(name, ".attn.masked_bias");
  }

  std::vector<std::pair<std::string, std::string>> TiedCopies() const override {
    return {{"lm_head.weight", "token_embedding"}};
  }
};

// "blocks.<i>.<rest>" -> {"<i>", "<rest>"}; {"", ""} for other names.
std::pair<std::string, std::string> SplitBlockName(const std::string& name) {
  if (!StartsWith(name, "blocks.")) return {"", ""};
  const size_t begin = std::strlen("blocks."), end = name.find('.', begin);
  return {name.substr(begin, end - begin), name.substr(end + 1)};
}

// Hugging Face LlamaForCausalLM (SPEC §5): q/k/v/o and gate/up/down stored separately as
// nn.Linear weights (out, in), so qkv's fused slots are split by rows and nothing is transposed.
class Llama final : public CheckpointLayout {
 public:
  explicit Llama(const ModelConfig& config)
      : q_rows_(config.num_heads * config.head_dim()),
        kv_rows_(config.kv_width()),
        ffn_hidden_(config.ffn_hidden()) {}

  std::string name() const override { return "llama"; }

  std::vector<TensorPiece> PiecesOf(const ParameterInfo& info) const override {
    const std::string& n = info.name;
    const int64_t rows = info.shape[0];
    if (n == "token_embedding") return {{"model.embed_tokens.weight", 0, rows, false}};
    if (n == "final_norm.weight") return {{"model.norm.weight", 0, rows, false}};
    if (n == "output_head") return {{"lm_head.weight", 0, rows, false}};
    const auto [layer, rest] = SplitBlockName(n);
    const std::string prefix = "model.layers." + layer + ".";
    if (rest == "norm1.weight") return {{prefix + "input_layernorm.weight", 0, rows, false}};
    if (rest == "norm2.weight") {
      return {{prefix + "post_attention_layernorm.weight", 0, rows, false}};
    }
    if (rest == "attention.qkv.weight") {
      return {{prefix + "self_attn.q_proj.weight", 0, q_rows_, false},
              {prefix + "self_attn.k_proj.weight", q_rows_, kv_rows_, false},
              {prefix + "self_attn.v_proj.weight", q_rows_ + kv_rows_, kv_rows_, false}};
    }
    if (rest == "attention.out.weight")
      return {{prefix + "self_attn.o_proj.weight", 0, rows, false}};
    if (rest == "ffn.up.weight") {  // qkv's SwiGLU gates with rows [0, F)
      return {{prefix + "mlp.gate_proj.weight", 0, ffn_hidden_, false},
              {prefix + "mlp.up_proj.weight", ffn_hidden_, ffn_hidden_, false}};
    }
    if (rest == "ffn.down.weight") return {{prefix + "mlp.down_proj.weight", 0, rows, false}};
    QKV_CHECK(false, "the Llama layout has no tensor for parameter '", n,
              "' (it holds RMSNorm + SwiGLU + RoPE models without biases)");
    return {};
  }

  // Older checkpoints carry each layer's RoPE frequencies as a buffer.
  bool IsIgnored(const std::string& name) const override {
    return EndsWith(name, ".self_attn.rotary_emb.inv_freq");
  }

  std::vector<std::pair<std::string, std::string>> TiedCopies() const override {
    return {{"lm_head.weight", "token_embedding"}};
  }

 private:
  int64_t q_rows_, kv_rows_, ffn_hidden_;
};

// The file names of every piece of every parameter.
std::set<std::string> PieceNames(const CheckpointLayout& layout, const ModelConfig& config) {
  std::set<std::string> names;
  ModelParams<float> no_memory;
  ForEachParameter(config, no_memory, [&](const ParameterInfo& info, TensorView<float>&) {
    for (const TensorPiece& piece : layout.PiecesOf(info)) names.insert(piece.file_name);
  });
  return names;
}

}  // namespace

CheckpointFormat FormatOfConfigJson(const nlohmann::json& json) {
  return json.is_object() && json.contains("model_type") && json["model_type"] == "llama"
             ? CheckpointFormat::kLlama
             : CheckpointFormat::kGpt2;
}

CheckpointFormat SaveFormatFor(const ModelConfig& config) {
  return config.LlamaShaped() ? CheckpointFormat::kLlama : CheckpointFormat::kGpt2;
}

std::unique_ptr<CheckpointLayout> MakeLayout(CheckpointFormat format, const ModelConfig& config) {
  if (format == CheckpointFormat::kLlama) {
    QKV_CHECK(config.LlamaShaped(),
              "the Llama layout holds RMSNorm + SwiGLU + RoPE (half style) pre-norm models "
              "without biases; this config is not one");
    return std::make_unique<Llama>(config);
  }
  return std::make_unique<Gpt2>();
}

std::vector<int64_t> CheckpointLayout::StoredShape(const ParameterInfo& info,
                                                   const TensorPiece& piece) {
  if (info.shape.rank() == 1) return {piece.rows};
  std::vector<int64_t> shape{piece.rows};
  for (int i = 1; i < info.shape.rank(); ++i) shape.push_back(info.shape[i]);
  if (piece.transposed) return {SlotColumns(info), piece.rows};
  return shape;
}

const CheckpointLayout& Gpt2Layout() {
  static const Gpt2 layout;
  return layout;
}

io::SafetensorsFile ParametersToFile(const CheckpointLayout& layout, const ModelConfig& config,
                                     const ModelParams<float>& params) {
  io::SafetensorsFile file;
  file.metadata["format"] = "pt";  // what transformers expects to find
  ModelParams<float> views = params;
  ForEachParameter(config, views, [&](const ParameterInfo& info, TensorView<float>& slot) {
    const int64_t columns = SlotColumns(info);
    for (const TensorPiece& piece : layout.PiecesOf(info)) {
      io::NamedTensor tensor;
      tensor.name = piece.file_name;
      tensor.shape = CheckpointLayout::StoredShape(info, piece);
      tensor.f32.resize(static_cast<size_t>(piece.rows * columns));
      const float* rows = slot.data() + piece.row_begin * columns;
      if (piece.transposed) {
        for (int64_t r = 0; r < piece.rows; ++r) {
          for (int64_t c = 0; c < columns; ++c) {
            tensor.f32[static_cast<size_t>(c * piece.rows + r)] = rows[r * columns + c];
          }
        }
      } else {
        std::memcpy(tensor.f32.data(), rows, tensor.f32.size() * sizeof(float));
      }
      file.tensors.push_back(std::move(tensor));
    }
  });
  return file;
}

std::map<std::string, const io::NamedTensor*> IndexTensors(
    const CheckpointLayout& layout, const std::vector<io::SafetensorsFile>& files,
    const std::string& source) {
  std::map<std::string, const io::NamedTensor*> by_name;
  for (const io::SafetensorsFile& file : files) {
    for (const io::NamedTensor& tensor : file.tensors) {
      const std::string name = layout.Canonical(tensor.name);
      QKV_CHECK(by_name.emplace(name, &tensor).second, source, ": tensor '", name,
                "' appears twice (under two names, or in two files)");
    }
  }
  return by_name;
}

void CheckFileMatches(const CheckpointLayout& layout,
                      const std::map<std::string, const io::NamedTensor*>& tensors,
                      const ModelConfig& config, const std::string& source) {
  std::set<std::string> unused;
  for (const auto& [name, tensor] : tensors) {
    QKV_CHECK((!tensor->is_int32 && tensor->opaque_dtype.empty()) || layout.IsIgnored(name), source,
              ": tensor '", tensor->name, "' has dtype ",
              tensor->is_int32 ? "I32" : tensor->opaque_dtype,
              "; parameters must be F32, F16 or BF16");
    unused.insert(name);
  }
  ModelParams<float> no_memory;
  std::map<std::string, std::vector<int64_t>> parameter_shapes;
  std::map<std::string, std::string> file_names;  // of one-piece parameters, for messages
  ForEachParameter(config, no_memory, [&](const ParameterInfo& info, TensorView<float>&) {
    file_names[info.name] = layout.PiecesOf(info).front().file_name;
    std::vector<int64_t>& shape = parameter_shapes[info.name];
    for (int i = 0; i < info.shape.rank(); ++i) shape.push_back(info.shape[i]);
    for (const TensorPiece& piece : layout.PiecesOf(info)) {
      const auto found = tensors.find(piece.file_name);
      QKV_CHECK(found != tensors.end(), source, ": tensor '", piece.file_name,
                "' is missing, but config.json describes a model that needs it");
      const std::vector<int64_t> expected = CheckpointLayout::StoredShape(info, piece);
      QKV_CHECK(found->second->shape == expected, source, ": tensor '", piece.file_name,
                "' has shape ", io::ShapeText(found->second->shape), " but config.json implies ",
                io::ShapeText(expected));
      unused.erase(piece.file_name);
    }
  });
  const std::set<std::string> piece_names = PieceNames(layout, config);
  for (const auto& [file_name, parameter] : layout.TiedCopies()) {
    const auto found = tensors.find(file_name);
    // An untied model's head is a parameter of its own under that name.
    if (found == tensors.end() || piece_names.count(file_name) != 0) continue;
    const std::vector<int64_t>& expected = parameter_shapes.at(parameter);
    QKV_CHECK(found->second->shape == expected, source, ": ", file_name, " has shape ",
              io::ShapeText(found->second->shape), " but ", file_names.at(parameter), " has ",
              io::ShapeText(expected), "; config.json says the output head is tied");
    unused.erase(file_name);
  }
  for (const std::string& name : unused) {
    QKV_CHECK(layout.IsIgnored(name), source, ": tensor '", name,
              "' is not part of the model config.json describes (wrong config?)");
  }
}

void ParametersFromFile(const CheckpointLayout& layout,
                        const std::map<std::string, const io::NamedTensor*>& tensors,
                        const ModelConfig& config, ModelParams<float>& params,
                        const std::string& source) {
  CheckFileMatches(layout, tensors, config, source);
  std::map<std::string, TensorView<float>> slots;
  std::map<std::string, std::string> file_names;
  ForEachParameter(config, params, [&](const ParameterInfo& info, TensorView<float>& slot) {
    file_names[info.name] = layout.PiecesOf(info).front().file_name;
    const int64_t columns = SlotColumns(info);
    for (const TensorPiece& piece : layout.PiecesOf(info)) {
      const io::NamedTensor& tensor = *tensors.at(piece.file_name);
      QKV_CHECK(static_cast<int64_t>(tensor.f32.size()) == piece.rows * columns, source,
                ": tensor '", piece.file_name, "' holds ", tensor.f32.size(), " values for ",
                piece.rows * columns, " slots");
      float* rows = slot.data() + piece.row_begin * columns;
      if (piece.transposed) {
        for (int64_t r = 0; r < piece.rows; ++r) {
          for (int64_t c = 0; c < columns; ++c) {
            rows[r * columns + c] = tensor.f32[static_cast<size_t>(c * piece.rows + r)];
          }
        }
      } else {
        std::memcpy(rows, tensor.f32.data(), tensor.f32.size() * sizeof(float));
      }
    }
    slots[info.name] = slot;
  });
  const std::set<std::string> piece_names = PieceNames(layout, config);
  for (const auto& [file_name, parameter] : layout.TiedCopies()) {
    const auto found = tensors.find(file_name);
    if (found == tensors.end() || piece_names.count(file_name) != 0) continue;
    // transformers ties lm_head to wte; a file whose head differs is not a tied model.
    const TensorView<float> slot = slots.at(parameter);
    QKV_CHECK(found->second->f32.size() == static_cast<size_t>(slot.size()) &&
                  std::memcmp(found->second->f32.data(), slot.data(),
                              found->second->f32.size() * sizeof(float)) == 0,
              source, ": ", file_name, " differs from ", file_names.at(parameter),
              ", but config.json says the output head is tied (tie_word_embeddings)");
  }
}

std::vector<io::SafetensorsFile> ReadCheckpointTensors(const std::string& dir,
                                                       std::string* source) {
  namespace fs = std::filesystem;
  const fs::path single = fs::path(dir) / "model.safetensors";
  const fs::path index = fs::path(dir) / "model.safetensors.index.json";
  std::vector<io::SafetensorsFile> files;
  if (fs::exists(single) || !fs::exists(index)) {
    *source = single.string();
    files.push_back(io::ReadSafetensors(single.string()));
    return files;
  }
  *source = index.string();
  std::ifstream in(index);
  QKV_CHECK(in.good(), index.string(), ": cannot open");
  std::stringstream text;
  text << in.rdbuf();
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(text.str());
  } catch (const nlohmann::json::exception& error) {
    throw Error(internal::StrCat(index.string(), ": not valid JSON: ", error.what()));
  }
  QKV_CHECK(json.is_object() && json.contains("weight_map") && json["weight_map"].is_object(),
            index.string(), ": no \"weight_map\" object");
  std::set<std::string> shards;
  for (const auto& [tensor, shard] : json["weight_map"].items()) {
    QKV_CHECK(shard.is_string(), index.string(), ": the file of tensor '", tensor,
              "' is not a string");
    const std::string file = shard.get<std::string>();
    QKV_CHECK(!file.empty() && file.find('/') == std::string::npos && file != "." && file != "..",
              index.string(), ": shard '", file, "' of tensor '", tensor,
              "' is not a file name in the model directory");
    shards.insert(file);
  }
  QKV_CHECK(!shards.empty(), index.string(), ": the weight_map is empty");
  for (const std::string& shard : shards) {
    files.push_back(io::ReadSafetensors((fs::path(dir) / shard).string()));
    // Every tensor of a shard must be the one the index places there.
    for (const io::NamedTensor& tensor : files.back().tensors) {
      const auto& map = json["weight_map"];
      QKV_CHECK(map.contains(tensor.name) && map[tensor.name] == shard, index.string(),
                ": tensor '", tensor.name, "' is in ", shard,
                map.contains(tensor.name)
                    ? ", but the index places it in " + map[tensor.name].get<std::string>()
                    : ", but the index does not list it");
    }
  }
  return files;
}

}  // namespace qkv::model
