#include "qkv/model/checkpoint.h"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "qkv/core/check.h"
#include "qkv/core/memory.h"
#include "qkv/io/checkpoint_directory.h"
#include "qkv/model/checkpoint_layout.h"

namespace qkv::model {

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
  return ParametersToFile(Gpt2Layout(), config, params);
}

void ParametersFromSafetensors(const io::SafetensorsFile& file, const ModelConfig& config,
                               ModelParams<float>& params, const std::string& source) {
  const std::vector<io::SafetensorsFile> files{file};
  ParametersFromFile(Gpt2Layout(), IndexTensors(Gpt2Layout(), files, source), config, params,
                     source);
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

void SaveModel(const std::string& dir, const Model& model, const nlohmann::json& extra,
               const std::string& float_dtype) {
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  QKV_CHECK(!error, dir, ": cannot create the directory: ", error.message());
  nlohmann::json config = model.config.ToJson();
  if (extra.is_object()) {
    for (const auto& [key, value] : extra.items()) config[key] = value;
  }
  // Tensors first: a config.json always describes a model.safetensors that is complete.
  const std::unique_ptr<CheckpointLayout> layout =
      MakeLayout(SaveFormatFor(model.config), model.config);
  io::SafetensorsFile tensors = ParametersToFile(*layout, model.config, model.params);
  io::SetFloatDtype(tensors, float_dtype);
  io::WriteSafetensors((std::filesystem::path(dir) / "model.safetensors").string(), tensors);
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
  // The files first: their size bounds what reading them allocates, and their tensors must
  // agree with config.json before the config is trusted to size the parameter arena.
  std::string source;
  const std::vector<io::SafetensorsFile> files = ReadCheckpointTensors(dir, &source);
  const std::unique_ptr<CheckpointLayout> layout = MakeLayout(FormatOfConfigJson(json), config);
  const std::map<std::string, const io::NamedTensor*> tensors =
      IndexTensors(*layout, files, source);
  CheckFileMatches(*layout, tensors, config, source);
  CheckFitsInMemory(ParameterBytes(config, sizeof(float)), dir + ": the model's parameters");
  Model model = CreateModel(config);
  ParametersFromFile(*layout, tensors, config, model.params, source);
  return model;
}

}  // namespace qkv::model
