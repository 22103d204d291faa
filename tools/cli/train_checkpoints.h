// `qkv train`'s checkpoints in --out/checkpoints (io/checkpoint_directory.h): each one a folder
// with the model (config.json, model.safetensors), its tokenizer and the trainer's state
// (training_state.safetensors), written by rank 0 after a collective that gathers the state;
// and the way back from one when a run resumes.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>

#include "qkv/io/checkpoint_directory.h"
#include "qkv/model/checkpoint.h"
#include "qkv/runtime/communicator.h"
#include "qkv/tokenizer/tokenizer.h"
#include "qkv/train/trainer.h"
#include "tools/cli/train_command.h"
#include "tools/cli/train_log.h"

namespace qkv::cli {

inline constexpr const char* kStateFile = "training_state.safetensors";

// Rank 0 removes what interrupted saves left in the directory; then every rank passes a
// barrier, so that none reads it before the clean-up is done. A collective.
void RemoveSaveLeftovers(const io::CheckpointDirectory& checkpoints, const Communicator& comm);

// Loads the training state of the checkpoint folder `resume_dir` into trainer, after checking
// that its training options agree with the trainer's (this command line's) and that it is from
// the same step as the folder's config.json. Throws UsageError when the run already has
// --steps.
void RestoreTrainingState(train::Trainer& trainer, const std::string& resume_dir,
                          const TrainCommandOptions& options);

// Writes a model with its tokenizer into a checkpoint folder; `extra` holds config.json keys
// of the run (the step) to add.
using SaveModelFunction =
    std::function<void(const std::string& folder, const nlohmann::json& extra)>;

// "F32" or "BF16": the safetensors dtype of --save-dtype fp32|bf16.
std::string SafetensorsDtype(const std::string& save_dtype);

// The SaveModelFunction of a decoder-only model: its layout and tokenizer, the values in
// --save-dtype.
SaveModelFunction SaveLanguageModel(const model::Model& model,
                                    const tokenizer::Tokenizer& tokenizer,
                                    const std::string& save_dtype);

// Saves checkpoints of one run.
class CheckpointWriter {
 public:
  // Keeps o's --keep-checkpoints newest; with --save-dtype bf16 the training state holds the
  // float32 weights.
  CheckpointWriter(io::CheckpointDirectory& checkpoints, SaveModelFunction save_model,
                   const train::Trainer& trainer, const TrainLog& log, const TrainCommandOptions& o,
                   const Communicator& comm)
      : checkpoints_(checkpoints),
        save_model_(std::move(save_model)),
        trainer_(trainer),
        log_(log),
        keep_(o.keep_checkpoints),
        weights_in_state_(o.save_dtype != "fp32"),
        comm_(comm) {}

  // A collective with several ranks (the optimizer state may be sharded): rank 0 then writes
  // one complete checkpoint folder of the trainer's current step, switches to it, keeps the
  // newest `keep` and redraws the loss curve.
  void Save();

 private:
  io::CheckpointDirectory& checkpoints_;
  SaveModelFunction save_model_;
  const train::Trainer& trainer_;
  const TrainLog& log_;
  int keep_;
  bool weights_in_state_;
  const Communicator& comm_;
};

}  // namespace qkv::cli
