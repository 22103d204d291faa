// Checkpoint layouts: the one mapping between the tensors of a checkpoint format and qkv's
// parameter slots (model/parameters.h). A layout says, for each parameter, which file
// tensors hold it and how: a slot is the concatenation, along its first dimension, of one or
// more file tensors, each stored as is or transposed. That covers
//   - renaming (GPT-2's "h.0.ln_1.weight" for "blocks.0.norm1.weight"),
//   - transposes (GPT-2's Conv1D weights are stored (in, out)),
//   - fused slots split into several file tensors (Llama's q_proj/k_proj/v_proj for qkv's
//     fused (3C, C) projection; gate_proj/up_proj for SwiGLU's (2F, C) up-projection),
// plus the file tensors a format carries besides parameters (ignored buffers, name aliases,
// tied copies such as an lm_head equal to the embedding). Checkpoints of several files
// (model.safetensors.index.json) are read by ReadCheckpointTensors. GPT-2 is the first layout
// (../shared/SPEC.md §2); Marian's and Llama's (SPEC §4, §5) are further instances.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "qkv/io/safetensors.h"
#include "qkv/model/model_config.h"
#include "qkv/model/parameters.h"

namespace qkv::model {

// One file tensor and the rows of a slot it fills.
struct TensorPiece {
  std::string file_name;
  int64_t row_begin = 0;  // rows [row_begin, row_begin + rows) of the slot's first dimension
  int64_t rows = 0;
  bool transposed = false;  // stored (cols, rows) instead of (rows, cols); 2-D slots only
};

class CheckpointLayout {
 public:
  virtual ~CheckpointLayout() = default;
  virtual std::string name() const = 0;
  // The file tensors of one parameter, covering its rows in order.
  virtual std::vector<TensorPiece> PiecesOf(const ParameterInfo& info) const = 0;
  // The name a file tensor is known by in this layout (e.g. without an optional prefix).
  virtual std::string Canonical(const std::string& file_name) const { return file_name; }
  // Whether a file tensor is not a parameter and is skipped on load (e.g. mask buffers).
  virtual bool IsIgnored(const std::string& /*canonical_name*/) const { return false; }
  // File tensors that, when present, must equal a parameter: {file name, parameter name}
  // (e.g. a tied output head).
  virtual std::vector<std::pair<std::string, std::string>> TiedCopies() const { return {}; }
  // The shape of a piece as stored in the file.
  static std::vector<int64_t> StoredShape(const ParameterInfo& info, const TensorPiece& piece);
};

// Hugging Face GPT-2 (transformers' GPT2Model names, with or without the "transformer."
// prefix; Conv1D weights transposed; lm_head tied to wte unless config.json unties it;
// attention-mask buffers ignored). Holds every architecture qkv builds (qkv's config keys say
// which); qkv's names for the parameters map here one to one.
const CheckpointLayout& Gpt2Layout();

// The layouts a model directory can be in.
enum class CheckpointFormat {
  kGpt2,   // Gpt2Layout
  kLlama,  // Hugging Face LlamaForCausalLM: model.layers.<i>.self_attn.{q,k,v,o}_proj, ...
};

// The format of a directory from its config.json (model_type "llama" is Llama's).
CheckpointFormat FormatOfConfigJson(const nlohmann::json& json);
// The format qkv saves a model in: Llama's for LlamaShaped() configs, GPT-2's otherwise.
CheckpointFormat SaveFormatFor(const ModelConfig& config);
// The layout of a format for this config (Llama's needs the sizes of the split projections).
std::unique_ptr<CheckpointLayout> MakeLayout(CheckpointFormat format, const ModelConfig& config);

// The parameters as file tensors of `layout`, in parameter order.
io::SafetensorsFile ParametersToFile(const CheckpointLayout& layout, const ModelConfig& config,
                                     const ModelParams<float>& params);

// Checks, without touching parameter memory, that the tensors hold exactly what config needs
// in this layout: every piece present with its stored shape and a float dtype, nothing unknown
// but ignored buffers and tied copies. Errors name the tensor and both shapes.
void CheckFileMatches(const CheckpointLayout& layout,
                      const std::map<std::string, const io::NamedTensor*>& tensors,
                      const ModelConfig& config, const std::string& source);

// Fills params from the tensors (after CheckFileMatches), and checks tied copies.
void ParametersFromFile(const CheckpointLayout& layout,
                        const std::map<std::string, const io::NamedTensor*>& tensors,
                        const ModelConfig& config, ModelParams<float>& params,
                        const std::string& source);

// The tensors of the checkpoint files, by canonical name; errors for a name seen twice.
std::map<std::string, const io::NamedTensor*> IndexTensors(
    const CheckpointLayout& layout, const std::vector<io::SafetensorsFile>& files,
    const std::string& source);

// The safetensors files of a model directory: model.safetensors, or the files a
// model.safetensors.index.json's weight_map names (each read once). Errors name the file.
std::vector<io::SafetensorsFile> ReadCheckpointTensors(const std::string& dir, std::string* source);

}  // namespace qkv::model
