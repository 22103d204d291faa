// `qkv train --arch encoder-decoder`: an encoder-decoder (model/encoder_decoder.h) trained on
// sentence pairs (--pairs, a TSV of source<TAB>target) by the same Trainer, step loop, logs and
// checkpoints as a language model, with the pairs' own task (train/translation_task.h). The
// model directory is Hugging Face's MarianMTModel layout (model/marian_checkpoint.h) with its
// vocabulary (tokenizer/translation_vocabulary.h).
#pragma once

#include <CLI/CLI.hpp>

#include "qkv/runtime/communicator.h"
#include "tools/cli/train_command.h"

namespace qkv::cli {

// Throws CLI::ValidationError naming a flag that does not apply to an encoder-decoder or a
// value it cannot take. Called once every flag is parsed.
void CheckTranslationFlags(const TrainCommandOptions& options, const CLI::App& command);

// Throws CLI::ValidationError naming an encoder-decoder flag given to a decoder-only run.
void CheckDecoderOnlyFlags(const CLI::App& command);

// The run on this rank; as RunTrainOnRanks for a language model.
int RunTranslationTrainOnRanks(const TrainCommandOptions& options, const CLI::App& command,
                               const Communicator& comm);

}  // namespace qkv::cli
