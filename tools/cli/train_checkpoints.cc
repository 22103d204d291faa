#include "tools/cli/train_checkpoints.h"

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <span>

#include "qkv/core/check.h"
#include "qkv/io/safetensors.h"
#include "tools/cli/commands.h"
#include "tools/cli/train_resume.h"

namespace qkv::cli {

namespace fs = std::filesystem;

void RemoveSaveLeftovers(const io::CheckpointDirectory& checkpoints, const Communicator& comm) {
  // Only the writer cleans up after an interrupted save, before any rank reads.
  if (comm.is_root()) checkpoints.RemoveLeftovers();
  uint64_t cleaned = 1;  // a barrier: no rank reads before the clean-up is done
  comm.AllreduceMax(std::span<uint64_t>(&cleaned, 1), "the checkpoint clean-up");
}

void RestoreTrainingState(train::Trainer& trainer, const std::string& resume_dir,
                          const TrainCommandOptions& o) {
  const std::string state_path = (fs::path(resume_dir) / kStateFile).string();
  const io::SafetensorsFile state = io::ReadSafetensors(state_path);
  if (auto saved = state.metadata.find("options"); saved != state.metadata.end()) {
    nlohmann::json saved_options;
    try {
      saved_options = nlohmann::json::parse(saved->second);
    } catch (const nlohmann::json::exception&) {
      throw Error(state_path + ": malformed options metadata");
    }
    CheckTrainingFlagsAgree(saved_options, trainer.ResumeKey());
  }
  trainer.LoadState(state, state_path);
  const nlohmann::json saved_config = model::ReadConfigJson(resume_dir);
  QKV_CHECK(saved_config.value("qkv_training_step", int64_t{-1}) == trainer.step(), o.out,
            ": config.json and ", kStateFile, " are from different steps (",
            saved_config.value("qkv_training_step", int64_t{-1}), " and ", trainer.step(),
            "); was a save interrupted?");
  if (trainer.step() >= o.training.steps) {
    throw UsageError("--steps " + std::to_string(o.training.steps) + ": " + o.out +
                     " is already trained for " + std::to_string(trainer.step()) +
                     " steps; raise --steps to train further");
  }
}

std::string SafetensorsDtype(const std::string& save_dtype) {
  if (save_dtype == "fp32") return "F32";
  if (save_dtype == "bf16") return "BF16";
  throw UsageError("--save-dtype " + save_dtype + ": expected fp32 or bf16");
}

SaveModelFunction SaveLanguageModel(const model::Model& model,
                                    const tokenizer::Tokenizer& tokenizer,
                                    const std::string& save_dtype) {
  return [&model, &tokenizer, dtype = SafetensorsDtype(save_dtype)](
             const std::string& folder, const nlohmann::json& run_keys) {
    nlohmann::json extra = run_keys;
    extra["tokenizer"] = tokenizer::SaveTokenizer(tokenizer, folder);
    model::SaveModel(folder, model, extra, dtype);
  };
}

void CheckpointWriter::Save() {
  io::SafetensorsFile state = trainer_.SaveState(weights_in_state_);
  if (!comm_.is_root()) return;
  const int64_t step = trainer_.step();
  checkpoints_.Save(
      step,
      [&](const std::string& folder) {
        io::WriteSafetensors((fs::path(folder) / kStateFile).string(), state);
        save_model_(folder, {{"qkv_training_step", step}});
      },
      keep_);
  log_.WriteLossCurve();
}

}  // namespace qkv::cli
