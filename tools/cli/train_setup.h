// `qkv train`, before the first step: the model a run starts from (a new one with a tokenizer
// trained on --data, or the checkpoint it resumes, checked against the command line), the
// token streams it trains and evaluates on, and the trainer's options.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "qkv/model/checkpoint.h"
#include "qkv/model/transformer.h"
#include "qkv/runtime/communicator.h"
#include "qkv/tokenizer/tokenizer.h"
#include "qkv/train/trainer.h"
#include "tools/cli/train_command.h"

namespace qkv::cli {

struct TrainStart {
  model::Model model;
  std::unique_ptr<tokenizer::Tokenizer> tokenizer;
  std::string resume_dir;  // the checkpoint folder the run continues from; empty for a new run
  bool resuming() const { return !resume_dir.empty(); }
};

// The model and tokenizer of a run: with --resume, those of the current checkpoint in --out
// (after checking that the model flags given agree with them); otherwise a tokenizer trained
// on `text` (the whole of --data) and a new, initialised model. A --resume of a run stopped
// before its first checkpoint starts it again, with a notice. Sets the --attention kernel.
TrainStart StartModel(const TrainCommandOptions& options, const CLI::App& command,
                      const std::string& text);

struct TrainTokens {
  std::vector<int32_t> train, val;
};

// The tokens of `text` (--data) and of --val-data, or the first 90% and the last 10% of
// text's. Throws qkv::Error naming the file when either has less than one window of
// context + 1 tokens.
TrainTokens TokenizeSplits(const TrainCommandOptions& options,
                           const tokenizer::Tokenizer& tokenizer, const std::string& text,
                           int64_t context);

// The trainer's options: those of the flags.
train::TrainOptions TrainOptionsFor(const TrainCommandOptions& options);

// The line on stderr that says what is about to be trained, on what, with what.
void PrintRunSummary(const TrainCommandOptions& options, const TrainStart& start,
                     const TrainTokens& tokens, const ThreadPool& threads,
                     const Communicator& comm);

}  // namespace qkv::cli
