#include "qkv/model/checkpoint.h"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "qkv/core/check.h"
#include "qkv/core/memory.h"
#include "qkv/io/checkpoint_directory.h"

namespace qkv::model {

namespace {

// The shape a parameter has in the file: (in, out) for GPT-2's Conv1D weights.
std::vector<int64_t> StoredShape(const ParameterInfo& info) {
  if (info.stored_transposed) return {info.shape[1], info.shape[0]};
  std::vector<int64_t> shape;
  for (int i = 0; i < info.shape.rank(); ++i) shape.push_back(info.shape[i]);
  return shape;
}

bool IsIgnoredBuffer(std::string name) {
  if (name.rfind("transformer.", 0) == 0) name = name.substr(std::strlen("transformer."));
  const auto ends_with = [&](const std::string& suffix) {
    return name.size() >= suffix.size() &&
           name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  return ends_with(".attn.bias") || ends_with(".attn.masked_bias");
}

}  // namespace

Model CreateModel(const ModelConfig& config) {
  config.Validate();
  Model model;
  model.config = config;
  model.arena = Arena(ParameterBytes(config, sizeof(float)));
  model.params = AllocateModelParams<float>(model.arena, config);
  return model;
}

io::SafetensorsFile ParametersToSafetensors(const ModelConfig& config,
                                            const ModelParams<float>& params) {
  io::SafetensorsFile file;
  file.metadata["format"] = "pt";  // what transformers expects to find
  ModelParams<float> views = params;
  ForEachParameter(config, views, [&](const ParameterInfo& info, TensorView<float>& slot) {
    io::NamedTensor tensor;
    tensor.name = info.name;
    tensor.shape = StoredShape(info);
    tensor.f32.resize(static_cast<size_t>(slot.size()));
    if (info.stored_transposed) {
      const int64_t rows = info.shape[0], cols = info.shape[1];  // qkv: (out, in)
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t c = 0; c < cols; ++c) tensor.f32[c * rows + r] = slot[r * cols + c];
      }
    } else {
      std::memcpy(tensor.f32.data(), slot.data(), tensor.f32.size() * sizeof(float));
    }
    file.tensors.push_back(std::move(tensor));
  });
  return file;
}

namespace {

// Everything ParametersFromSafetensors needs of the file, checked without touching any
// parameter memory: LoadModel runs it before allocating, so a config.json that contradicts the
// tensors is an error naming the tensor, not an allocation the config alone sized.
std::map<std::string, const io::NamedTensor*> CheckParametersMatch(const io::SafetensorsFile& file,
                                                                   const ModelConfig& config,
                                                                   const std::string& source) {
  std::map<std::string, const io::NamedTensor*> by_name;
  for (const io::NamedTensor& tensor : file.tensors) {
    std::string name = tensor.name;
    if (name.rfind("transformer.", 0) == 0) name = name.substr(std::strlen("transformer."));
    QKV_CHECK((!tensor.is_int32 && tensor.opaque_dtype.empty()) || IsIgnoredBuffer(name), source,
              ": tensor '", tensor.name, "' has dtype ",
              tensor.is_int32 ? "I32" : tensor.opaque_dtype,
              "; parameters must be F32, F16 or BF16");
    QKV_CHECK(by_name.emplace(name, &tensor).second, source, ": tensor '", name,
              "' appears twice (with and without the transformer. prefix)");
  }
  std::map<std::string, const io::NamedTensor*> unused = by_name;
  ModelParams<float> no_memory;
  ForEachParameter(config, no_memory, [&](const ParameterInfo& info, TensorView<float>&) {
    auto found = unused.find(info.name);
    QKV_CHECK(found != unused.end(), source, ": tensor '", info.name,
              "' is missing, but config.json describes a model that needs it");
    const std::vector<int64_t> expected = StoredShape(info);
    QKV_CHECK(found->second->shape == expected, source, ": tensor '", info.name, "' has shape ",
              io::ShapeText(found->second->shape), " but config.json implies ",
              io::ShapeText(expected));
    unused.erase(found);
  });
  if (auto head = unused.find("lm_head.weight"); head != unused.end()) {
    const std::vector<int64_t> wte = {config.vocab_size, config.width};
    QKV_CHECK(head->second->shape == wte, source, ": lm_head.weight has shape ",
              io::ShapeText(head->second->shape), " but wte.weight has ", io::ShapeText(wte),
              "; qkv needs a tied output head");
    unused.erase(head);
  }
  for (const auto& [name, tensor] : unused) {
    QKV_CHECK(IsIgnoredBuffer(name), source, ": tensor '", name,
              "' is not part of the model config.json describes (wrong config?)");
  }
  return by_name;
}

}  // namespace

void ParametersFromSafetensors(const io::SafetensorsFile& file, const ModelConfig& config,
                               ModelParams<float>& params, const std::string& source) {
  std::map<std::string, const io::NamedTensor*> by_name =
      CheckParametersMatch(file, config, source);
  ForEachParameter(config, params, [&](const ParameterInfo& info, TensorView<float>& slot) {
    const io::NamedTensor& tensor = *by_name.at(info.name);
    QKV_CHECK(static_cast<int64_t>(tensor.f32.size()) == slot.size(), source, ": tensor '",
              info.name, "' holds ", tensor.f32.size(), " values for ", slot.size(), " slots");
    if (info.stored_transposed) {
      const int64_t rows = info.shape[0], cols = info.shape[1];
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t c = 0; c < cols; ++c) slot[r * cols + c] = tensor.f32[c * rows + r];
      }
    } else {
      std::memcpy(slot.data(), tensor.f32.data(), tensor.f32.size() * sizeof(float));
    }
  });
  if (auto head = by_name.find("lm_head.weight"); head != by_name.end()) {
    // transformers ties lm_head to wte; a file whose head differs is not a tied model.
    QKV_CHECK(head->second->f32.size() == static_cast<size_t>(params.token_embedding.size()) &&
                  std::memcmp(head->second->f32.data(), params.token_embedding.data(),
                              head->second->f32.size() * sizeof(float)) == 0,
              source, ": lm_head.weight differs from wte.weight; qkv needs a tied output head");
  }
}

nlohmann::json ReadConfigJson(const std::string& model_dir) {
  const std::string dir = io::ResolveModelDirectory(model_dir);
  const std::string path = (std::filesystem::path(dir) / "config.json").string();
  std::ifstream in(path);
  QKV_CHECK(in.good(), path, ": cannot open (is ", dir, " a model directory?)");
  std::stringstream text;
  text << in.rdbuf();
  try {
    return nlohmann::json::parse(text.str());
  } catch (const nlohmann::json::exception& error) {
    throw Error(internal::StrCat(path, ": not valid JSON: ", error.what()));
  }
}

void SaveModel(const std::string& dir, const Model& model, const nlohmann::json& extra) {
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  QKV_CHECK(!error, dir, ": cannot create the directory: ", error.message());
  nlohmann::json config = model.config.ToJson();
  if (extra.is_object()) {
    for (const auto& [key, value] : extra.items()) config[key] = value;
  }
  // Tensors first: a config.json always describes a model.safetensors that is complete.
  io::WriteSafetensors((std::filesystem::path(dir) / "model.safetensors").string(),
                       ParametersToSafetensors(model.config, model.params));
  io::WriteFileAtomically((std::filesystem::path(dir) / "config.json").string(),
                          config.dump(2) + "\n");
}

Model LoadModel(const std::string& model_dir) {
  const std::string dir = io::ResolveModelDirectory(model_dir);
  const nlohmann::json json = ReadConfigJson(dir);
  ModelConfig config;
  try {
    config = ModelConfig::FromJson(json);
  } catch (const Error& error) {
    throw Error(internal::StrCat(dir, "/config.json: ", error.what()));
  }
  // The file first: its size bounds what reading it allocates, and its tensors must agree with
  // config.json before the config is trusted to size the parameter arena.
  const std::string path = (std::filesystem::path(dir) / "model.safetensors").string();
  const io::SafetensorsFile file = io::ReadSafetensors(path);
  CheckParametersMatch(file, config, path);
  CheckFitsInMemory(ParameterBytes(config, sizeof(float)), dir + ": the model's parameters");
  Model model = CreateModel(config);
  ParametersFromSafetensors(file, config, model.params, path);
  return model;
}

}  // namespace qkv::model
