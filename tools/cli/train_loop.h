// `qkv train`'s step loop: optimizer steps until --steps, --stop-at or Ctrl-C / SIGTERM, with an
// evaluation on the validation split every --eval-every steps (and at the last), a line per
// step in train_log.jsonl, the progress line, and a checkpoint every --save-every steps and
// wherever the run stops.
#pragma once

#include "qkv/runtime/communicator.h"
#include "qkv/train/trainer.h"
#include "tools/cli/train_checkpoints.h"
#include "tools/cli/train_command.h"
#include "tools/cli/train_log.h"

namespace qkv::cli {

// Trains from the trainer's step on and returns the exit status: 0 at --steps (after the final
// checkpoint, and the losses on stdout) or at --stop-at, 130 after a SIGINT or SIGTERM (a
// second one during the save is caught too). With several ranks each one runs it, and they
// stop at the same step.
int RunTrainLoop(const TrainCommandOptions& options, train::Trainer& trainer, TrainLog& log,
                 CheckpointWriter& checkpoints, const Communicator& comm);

}  // namespace qkv::cli
