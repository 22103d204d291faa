// What `qkv train --resume` checks before it continues a run: that the command line agrees
// with the checkpoint (every flag may be repeated; only a different value is refused), and
// what state the --out directory is in.
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <string>

#include "qkv/model/model_config.h"
#include "qkv/tokenizer/tokenizer.h"
#include "tools/cli/train_command.h"

namespace qkv::cli {

// The state of a training run's --out directory.
enum class RunDirectoryState {
  kAbsent,        // does not exist, or holds none of the files a run writes
  kCheckpointed,  // holds a complete checkpoint (a model and its training state)
  kStarted,       // a run began here but was stopped before its first checkpoint
  kModelOnly,     // holds a model but no training state (not a resumable run)
};
RunDirectoryState ClassifyRunDirectory(const std::string& dir);

// Where the model of a run that does not create one comes from, for CheckModelFlagsAgree's
// messages.
enum class ModelSource {
  kResumedCheckpoint,  // --resume: the checkpoint in --out
  kInitFrom,           // --init-from DIR
};

// Throws UsageError "FLAG GIVEN differs from the checkpoint's (or the --init-from model's)
// SAVED; ..." unless the two values are the same.
void RequireEqualTo(ModelSource source, const char* flag, const std::string& saved,
                    const std::string& given);

// Throws UsageError naming the first flag given on the command line whose value differs from
// the saved model (or tokenizer), with both values.
void CheckModelFlagsAgree(const TrainCommandOptions& options, const CLI::App& command,
                          const model::ModelConfig& saved, const tokenizer::Tokenizer& tokenizer,
                          ModelSource source = ModelSource::kResumedCheckpoint);

// Throws UsageError naming the flag of the first training setting (batch, learning rate, ...)
// that differs between the checkpoint's training state (`saved`, as TrainOptions::ResumeKey
// wrote it) and this command line (`given`); only --steps may change.
void CheckTrainingFlagsAgree(const nlohmann::json& saved, const nlohmann::json& given);

}  // namespace qkv::cli
