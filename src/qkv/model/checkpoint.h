// Model directories (../shared/SPEC.md §2, §5): config.json + model.safetensors (or shards
// with model.safetensors.index.json) + tokenizer files, in one of the layouts of
// model/checkpoint_layout.h: Hugging Face GPT-2's (tensor names as in transformers' GPT2Model,
// Conv1D weights stored (in, out), the output head tied to wte.weight unless config.json
// unties it), or LlamaForCausalLM's, which qkv writes for Llama-shaped models and reads when
// config.json's model_type is "llama". Loading accepts F32/F16/BF16 data and ignores what
// checkpoints carry besides parameters (GPT-2's attention-mask buffers, Llama's rotary
// inv_freq buffers, a tied lm_head.weight, which must equal the embedding).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "qkv/core/arena.h"
#include "qkv/io/safetensors.h"
#include "qkv/model/model_config.h"
#include "qkv/model/parameters.h"

namespace qkv::model {

// A model's parameters with the arena that holds them. Move-only.
struct Model {
  ModelConfig config;
  Arena arena{0};
  ModelParams<float> params;
};

// Allocates zeroed parameters for config (validated).
Model CreateModel(const ModelConfig& config);

// The parameters as safetensors tensors in GPT-2 layout (every architecture has one), and back.
// FromSafetensors checks that every tensor the config needs is present with the right shape and
// that nothing unknown is there; errors name the tensor and both shapes.
io::SafetensorsFile ParametersToSafetensors(const ModelConfig& config,
                                            const ModelParams<float>& params);
void ParametersFromSafetensors(const io::SafetensorsFile& file, const ModelConfig& config,
                               ModelParams<float>& params, const std::string& source);

// Writes dir/config.json (config plus `extra`, e.g. the tokenizer entry) and
// dir/model.safetensors, each atomically, in the layout SaveFormatFor picks, its values in
// float_dtype ("F32" or "BF16", rounded to nearest even); creates dir if needed.
void SaveModel(const std::string& dir, const Model& model, const nlohmann::json& extra = {},
               const std::string& float_dtype = "F32");

// Reads config.json and model.safetensors from dir. Errors name the file and the problem.
Model LoadModel(const std::string& dir);

// config.json of dir as JSON (for the tokenizer entry and other extras).
nlohmann::json ReadConfigJson(const std::string& dir);

}  // namespace qkv::model
