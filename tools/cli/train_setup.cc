#include "tools/cli/train_setup.h"

#include <cstdio>
#include <iostream>

#include "qkv/core/check.h"
#include "qkv/core/random.h"
#include "qkv/io/checkpoint_directory.h"
#include "qkv/io/text_file.h"
#include "tools/cli/commands.h"
#include "tools/cli/common_flags.h"
#include "tools/cli/model_flags.h"
#include "tools/cli/progress.h"
#include "tools/cli/train_resume.h"
#include "tools/cli/training_flags.h"
#include "tools/cli/translation_model.h"

namespace qkv::cli {

namespace {

// work(), with a tokenizer's error about the text (e.g. invalid UTF-8, a character outside the
// vocabulary) prefixed by the file the text came from.
template <typename Work>
auto WithFileName(const std::string& path, Work&& work) {
  try {
    return work();
  } catch (const Error& error) {
    const std::string message = error.what();
    if (message.starts_with(path)) throw;
    throw Error(path + ": " + message, error.location());
  }
}

// The model of the checkpoint a resumed run continues from: its one folder holds the config,
// weights, tokenizer and training state of one step.
TrainStart ResumedModel(const TrainCommandOptions& o, const CLI::App& command) {
  TrainStart start;
  start.resume_dir = io::ResolveModelDirectory(o.out);
  start.model = model::LoadModel(start.resume_dir);
  start.tokenizer = tokenizer::LoadTokenizerFromModelDir(start.resume_dir);
  CheckModelFlagsAgree(o, command, start.model.config, *start.tokenizer);
  return start;
}

// The model a fine-tuning run starts from: --init-from's architecture, weights and tokenizer.
TrainStart InitializedFrom(const TrainCommandOptions& o, const CLI::App& command) {
  if (IsEncoderDecoderConfig(model::ReadConfigJson(o.init_from))) {
    throw UsageError("--init-from " + o.init_from +
                     " is an encoder-decoder (a translation model): fine-tune it with --arch "
                     "encoder-decoder --pairs FILE");
  }
  TrainStart start;
  start.model = model::LoadModel(o.init_from);
  start.tokenizer = tokenizer::LoadTokenizerFromModelDir(io::ResolveModelDirectory(o.init_from));
  CheckModelFlagsAgree(o, command, start.model.config, *start.tokenizer, ModelSource::kInitFrom);
  if (command.count("--dropout") > 0) start.model.config.dropout = o.model.dropout;
  return start;
}

TrainStart NewModel(const TrainCommandOptions& o, const std::string& text) {
  TrainStart start;
  // The character vocabulary covers the whole file, as nanoGPT's does, so the validation
  // split never holds an unknown character.
  start.tokenizer = WithFileName(o.data, [&] {
    return tokenizer::TrainTokenizer(o.tokenizer, text, o.quiet ? nullptr : &std::cerr);
  });
  start.model = model::CreateModel(ConfigFromFlags(o.model, start.tokenizer->vocab_size()));
  Random init_random(o.seed);
  model::InitializeParameters(start.model.config, start.model.params, init_random);
  return start;
}

}  // namespace

TrainStart StartModel(const TrainCommandOptions& o, const CLI::App& command,
                      const std::string& text) {
  const bool resuming = o.resume && ClassifyRunDirectory(o.out) == RunDirectoryState::kCheckpointed;
  if (o.resume && !resuming && !o.quiet) {
    std::fprintf(stderr,
                 "qkv train: %s was stopped before its first checkpoint; starting it again "
                 "from step 0\n",
                 o.out.c_str());
  }
  TrainStart start = resuming               ? ResumedModel(o, command)
                     : !o.init_from.empty() ? InitializedFrom(o, command)
                                            : NewModel(o, text);
  start.model.config.attention = model::ParseAttentionImpl(o.attention);
  return start;
}

TrainTokens TokenizeSplits(const TrainCommandOptions& o, const tokenizer::Tokenizer& tokenizer,
                           const std::string& text, int64_t context) {
  // Tokenizing takes seconds from a few megabytes on (BPE): then it shows its progress.
  constexpr size_t kLargeText = size_t{1} << 20;
  TrainTokens tokens;
  tokens.train = WithFileName(o.data, [&] {
    return EncodeWithProgress(tokenizer, text, "tokenizing " + o.data,
                              !o.quiet && text.size() >= kLargeText);
  });
  if (!o.val_data.empty()) {
    const std::string val_text = io::ReadTextFile(o.val_data);
    tokens.val = WithFileName(o.val_data, [&] {
      return EncodeWithProgress(tokenizer, val_text, "tokenizing " + o.val_data,
                                !o.quiet && val_text.size() >= kLargeText);
    });
  } else {
    const size_t split = tokens.train.size() * 9 / 10;
    tokens.val.assign(tokens.train.begin() + static_cast<std::ptrdiff_t>(split),
                      tokens.train.end());
    tokens.train.resize(split);
  }
  const int64_t window = context + 1;
  QKV_CHECK(static_cast<int64_t>(tokens.train.size()) >= window, o.data,
            ": the training split has ", tokens.train.size(), " tokens, fewer than one window of ",
            window, " (--context ", context, " + 1)");
  QKV_CHECK(static_cast<int64_t>(tokens.val.size()) >= window,
            o.val_data.empty() ? o.data : o.val_data, ": the validation split has ",
            tokens.val.size(), " tokens, fewer than one window of ", window, " (--context ",
            context, " + 1)");
  return tokens;
}

train::TrainOptions TrainOptionsFor(const TrainCommandOptions& o) {
  train::TrainOptions options = TrainOptionsFromFlags(o.training);
  options.seed = o.seed;
  options.shard_optimizer = o.shard_optimizer;
  options.checksum_every = o.checksum_every;
  return options;
}

void PrintRunSummary(const TrainCommandOptions& o, const TrainStart& start,
                     const TrainTokens& tokens, const ThreadPool& threads,
                     const Communicator& comm) {
  const model::ModelConfig& config = start.model.config;
  const std::string ranks = comm.distributed()
                                ? " per rank; " + std::to_string(comm.size()) + " ranks x batch " +
                                      std::to_string(o.training.batch) +
                                      (o.shard_optimizer ? ", sharded optimizer" : "")
                                : "";
  std::fprintf(stderr,
               "qkv train: %lld parameters, %lld layers x %lld heads (%lld key/value) x width "
               "%lld, context %lld, %s tokenizer (%lld tokens); %zu train / %zu validation "
               "tokens; %d threads%s; %s\n",
               static_cast<long long>(model::CountParameters(config)),
               static_cast<long long>(config.num_layers), static_cast<long long>(config.num_heads),
               static_cast<long long>(config.kv_heads()), static_cast<long long>(config.width),
               static_cast<long long>(config.context), start.tokenizer->name().c_str(),
               static_cast<long long>(config.vocab_size), tokens.train.size(), tokens.val.size(),
               threads.num_threads(), ranks.c_str(),
               PrecisionSummary(ParsePrecision(o.training.precision)).c_str());
}

}  // namespace qkv::cli
