#include "tools/cli/train_translation.h"

#include <cstdio>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "qkv/core/check.h"
#include "qkv/core/random.h"
#include "qkv/io/checkpoint_directory.h"
#include "qkv/io/sentence_pairs.h"
#include "qkv/model/checkpoint.h"
#include "qkv/model/marian_checkpoint.h"
#include "qkv/tokenizer/translation_vocabulary.h"
#include "qkv/train/trainer.h"
#include "qkv/train/translation_task.h"
#include "tools/cli/commands.h"
#include "tools/cli/common_flags.h"
#include "tools/cli/train_checkpoints.h"
#include "tools/cli/train_log.h"
#include "tools/cli/train_loop.h"
#include "tools/cli/train_resume.h"
#include "tools/cli/train_setup.h"
#include "tools/cli/translation_model.h"

namespace qkv::cli {

namespace {

using model::EncoderDecoderConfig;

constexpr const char* kDefaultVocabulary = "spm:8000";

// The decoder-only flags an encoder-decoder has no use for, and what to use instead.
struct NotForEncoderDecoder {
  const char* flag;
  const char* instead;
};
constexpr NotForEncoderDecoder kDecoderOnlyFlags[] = {
    {"--data", "give the sentence pairs with --pairs"},
    {"--val-data", "give validation pairs with --val-pairs"},
    {"--context", "the longest sequence is --max-positions"},
    {"--batch", "batches are formed by token count: --batch-tokens"},
    {"--kv-heads", "every attention has --heads heads for keys and values"},
    {"--head-dim", "the head size is --dim / --heads"},
    {"--norm", "the encoder-decoder uses LayerNorm"},
    {"--bias", "linear layers and LayerNorm always have biases"},
    {"--no-bias", "linear layers and LayerNorm always have biases"},
    {"--tie-embeddings", "the embeddings are always shared with the output head"},
    {"--no-tie-embeddings", "the embeddings are always shared with the output head"},
    {"--rope-theta", "positions are sinusoidal, learned or none"},
    {"--rope-style", "positions are sinusoidal, learned or none"},
    {"--rope-scaling", "positions are sinusoidal, learned or none"},
    {"--rope-factor", "positions are sinusoidal, learned or none"},
};

// The flags that only the encoder-decoder takes.
constexpr const char* kEncoderDecoderOnlyFlags[] = {
    "--pairs",          "--val-pairs",      "--batch-tokens", "--label-smoothing",
    "--encoder-layers", "--decoder-layers", "--max-positions"};

std::string VocabularySpec(const TrainCommandOptions& o, const CLI::App& command) {
  return command.count("--tokenizer") > 0 ? o.tokenizer : kDefaultVocabulary;
}

// The vocabulary size a spec will have (spm:N has N pieces and <pad>).
int64_t PlannedVocabularySize(const std::string& spec) {
  if (spec == "byte") return 259;
  if (spec.starts_with("spm:")) return std::stoll(spec.substr(4)) + 1;
  throw CLI::ValidationError("--tokenizer " + spec +
                             ": the encoder-decoder takes spm:N (SentencePiece, trained on both "
                             "sides of --pairs) or byte; char and bpe:N serve decoder-only models");
}

// The model of the flags, Marian's choices where a flag is not given.
EncoderDecoderConfig ConfigFromFlags(const TrainCommandOptions& o, const CLI::App& command,
                                     int64_t vocab_size) {
  const ModelFlags& m = o.model;
  const auto given = [&](const char* flag) { return command.count(flag) > 0; };
  EncoderDecoderConfig config;
  config.vocab_size = vocab_size;
  config.width = m.dim;
  config.num_heads = m.heads;
  config.ffn_dim = m.ffn_dim;
  config.encoder_layers = o.encoder_layers > 0 ? o.encoder_layers : m.layers;
  config.decoder_layers = o.decoder_layers > 0 ? o.decoder_layers : m.layers;
  config.max_positions = o.max_positions;
  config.position = given("--pos") ? model::ParsePositionEncoding(m.position)
                                   : model::PositionEncoding::kSinusoidal;
  config.ffn = given("--ffn") ? model::ParseFfnKind(m.ffn) : model::FfnKind::kRelu;
  config.norm_placement = given("--norm-placement") ? model::ParseNormPlacement(m.norm_placement)
                                                    : model::NormPlacement::kPost;
  config.dropout = m.dropout;
  config.eos_id = 0;
  config.pad_id = static_cast<int32_t>(vocab_size - 1);
  config.decoder_start_id = config.pad_id;
  config.attention = model::ParseAttentionImpl(o.attention);
  return config;
}

// The training and validation pairs: --val-pairs, or the last 10% of --pairs.
struct PairSets {
  std::vector<io::SentencePair> train, val;
  std::string train_source, val_source;  // where they came from, for messages
};

PairSets ReadPairSets(const TrainCommandOptions& o) {
  PairSets sets;
  sets.train = io::ReadSentencePairs(o.pairs);
  sets.train_source = o.pairs;
  if (!o.val_pairs.empty()) {
    sets.val = io::ReadSentencePairs(o.val_pairs);
    sets.val_source = o.val_pairs;
    return sets;
  }
  QKV_CHECK(sets.train.size() >= 2, o.pairs, ": ", sets.train.size(),
            " pair cannot be split into training and validation pairs; give --val-pairs");
  const size_t split = sets.train.size() - std::max<size_t>(1, sets.train.size() / 10);
  sets.val.assign(sets.train.begin() + static_cast<std::ptrdiff_t>(split), sets.train.end());
  sets.train.resize(split);
  sets.val_source = o.pairs + " (its last 10%)";
  return sets;
}

// The pairs as ids; pairs longer than the model's positions (or than one batch) are left out,
// as Marian's --max-length does, and counted.
struct TokenizedSet {
  std::vector<train::TokenizedPair> pairs;
  int64_t dropped = 0;
};

TokenizedSet Tokenize(const std::vector<io::SentencePair>& pairs, const std::string& source,
                      const tokenizer::TranslationVocabulary& vocabulary,
                      const EncoderDecoderConfig& config, int64_t batch_tokens) {
  TokenizedSet set;
  for (size_t i = 0; i < pairs.size(); ++i) {
    train::TokenizedPair pair;
    try {
      pair.source = vocabulary.EncodeSource(pairs[i].source);
      pair.target = vocabulary.EncodeTarget(pairs[i].target);
    } catch (const Error& error) {
      throw Error(internal::StrCat(source, ": pair ", i + 1, ": ", error.what()));
    }
    const int64_t longest = std::max<int64_t>(static_cast<int64_t>(pair.source.size()),
                                              static_cast<int64_t>(pair.target.size()) + 1);
    if (longest > config.max_positions || train::PairTokens(pair) > batch_tokens) {
      ++set.dropped;
      continue;
    }
    set.pairs.push_back(std::move(pair));
  }
  QKV_CHECK(!set.pairs.empty(), source, ": every one of its ", pairs.size(),
            " pairs is longer than --max-positions ", config.max_positions, " or --batch-tokens ",
            batch_tokens, " tokens");
  return set;
}

struct TranslationStart {
  std::unique_ptr<tokenizer::TranslationVocabulary> vocabulary;
  model::LoadedEncoderDecoder model;
  std::string resume_dir;  // empty for a new run
};

// Throws UsageError naming the first model flag given whose value differs from the saved
// model's. A fine-tuning run (--init-from) may change --dropout.
void CheckFlagsAgree(const TrainCommandOptions& o, const CLI::App& command,
                     const EncoderDecoderConfig& saved,
                     const tokenizer::TranslationVocabulary& vocabulary, ModelSource source) {
  const EncoderDecoderConfig flags = ConfigFromFlags(o, command, saved.vocab_size);
  const auto check = [&](const char* flag, const std::string& saved_value,
                         const std::string& given_value) {
    if (command.count(flag) > 0) RequireEqualTo(source, flag, saved_value, given_value);
  };
  check("--tokenizer", vocabulary.name(), o.tokenizer);
  const auto text = [](int64_t value) { return std::to_string(value); };
  check("--dim", text(saved.width), text(flags.width));
  check("--heads", text(saved.num_heads), text(flags.num_heads));
  check("--ffn-dim", text(saved.ffn_hidden()), text(flags.ffn_hidden()));
  check("--layers", text(saved.encoder_layers), text(flags.encoder_layers));
  check("--encoder-layers", text(saved.encoder_layers), text(flags.encoder_layers));
  check("--decoder-layers", text(saved.decoder_layers), text(flags.decoder_layers));
  check("--max-positions", text(saved.max_positions), text(flags.max_positions));
  check("--pos", model::ToString(saved.position), model::ToString(flags.position));
  check("--ffn", model::ToString(saved.ffn), model::ToString(flags.ffn));
  check("--norm-placement", model::ToString(saved.norm_placement),
        model::ToString(flags.norm_placement));
  if (source == ModelSource::kResumedCheckpoint) {
    check("--dropout", std::to_string(saved.dropout), std::to_string(flags.dropout));
  }
}

TranslationStart StartModel(const TrainCommandOptions& o, const CLI::App& command,
                            const PairSets& sets) {
  TranslationStart start;
  const bool resuming = o.resume && ClassifyRunDirectory(o.out) == RunDirectoryState::kCheckpointed;
  if (o.resume && !resuming && !o.quiet) {
    std::fprintf(stderr,
                 "qkv train: %s was stopped before its first checkpoint; starting it again "
                 "from step 0\n",
                 o.out.c_str());
  }
  if (resuming) {
    start.resume_dir = io::ResolveModelDirectory(o.out);
    start.model = model::LoadEncoderDecoder(start.resume_dir);
    start.vocabulary = tokenizer::LoadTranslationVocabulary(
        start.resume_dir, model::ReadConfigJson(start.resume_dir));
    CheckFlagsAgree(o, command, start.model.config, *start.vocabulary,
                    ModelSource::kResumedCheckpoint);
  } else if (!o.init_from.empty()) {
    // Fine-tuning: the architecture, weights and vocabulary of a qkv or MarianMTModel
    // directory; the optimizer starts afresh.
    const std::string dir = io::ResolveModelDirectory(o.init_from);
    if (!IsEncoderDecoderConfig(model::ReadConfigJson(dir))) {
      throw UsageError("--init-from " + o.init_from +
                       " is a decoder-only model: fine-tune it without --arch encoder-decoder, "
                       "on --data FILE");
    }
    start.model = model::LoadEncoderDecoder(dir);
    start.vocabulary = tokenizer::LoadTranslationVocabulary(dir, model::ReadConfigJson(dir));
    CheckFlagsAgree(o, command, start.model.config, *start.vocabulary, ModelSource::kInitFrom);
    if (command.count("--dropout") > 0) start.model.config.dropout = o.model.dropout;
  } else {
    const std::string spec = VocabularySpec(o, command);
    if (!o.quiet) {
      std::fprintf(stderr, "qkv train: training the %s vocabulary on %zu pairs\n", spec.c_str(),
                   sets.train.size());
    }
    try {
      start.vocabulary = tokenizer::TrainTranslationVocabulary(spec, sets.train);
    } catch (const Error& error) {
      throw Error(internal::StrCat(sets.train_source, ": ", error.what()));
    }
    start.model =
        model::AllocateEncoderDecoder(ConfigFromFlags(o, command, start.vocabulary->vocab_size()));
    Random init_random(o.seed);
    model::InitializeParameters(start.model.config, start.model.params, init_random);
  }
  start.model.config.attention = model::ParseAttentionImpl(o.attention);
  return start;
}

void PrintSummary(const TrainCommandOptions& o, const TranslationStart& start,
                  const train::TranslationTask& task, const TokenizedSet& train,
                  const TokenizedSet& val, const ThreadPool& threads, const Communicator& comm) {
  const EncoderDecoderConfig& c = start.model.config;
  const std::string ranks =
      comm.distributed() ? "; " + std::to_string(comm.size()) + " ranks share each batch" : "";
  std::fprintf(stderr,
               "qkv train: encoder-decoder, %lld parameters, %lld + %lld layers x %lld heads x "
               "width %lld (FFN %lld, %s, %s-norm), %lld positions, %s vocabulary (%lld "
               "tokens); %zu training / %zu validation pairs (%lld / %lld longer than the "
               "positions or a batch left out); batches of <= %lld tokens, label smoothing %g; "
               "%d threads%s; %s\n",
               static_cast<long long>(train::CountElements(task.parameters())),
               static_cast<long long>(c.encoder_layers), static_cast<long long>(c.decoder_layers),
               static_cast<long long>(c.num_heads), static_cast<long long>(c.width),
               static_cast<long long>(c.ffn_hidden()), model::ToString(c.ffn).c_str(),
               model::ToString(c.norm_placement).c_str(), static_cast<long long>(c.max_positions),
               start.vocabulary->name().c_str(), static_cast<long long>(c.vocab_size),
               train.pairs.size(), val.pairs.size(), static_cast<long long>(train.dropped),
               static_cast<long long>(val.dropped), static_cast<long long>(o.batch_tokens),
               o.label_smoothing, threads.num_threads(), ranks.c_str(),
               PrecisionSummary(ParsePrecision(o.training.precision)).c_str());
}

}  // namespace

void CheckTranslationFlags(const TrainCommandOptions& o, const CLI::App& command) {
  for (const auto& [flag, instead] : kDecoderOnlyFlags) {
    if (command.count(flag) > 0) {
      throw CLI::ValidationError(std::string(flag) +
                                 " does not apply to --arch encoder-decoder: " + instead);
    }
  }
  if (o.pairs.empty()) {
    throw CLI::ValidationError("--arch encoder-decoder needs --pairs FILE (source<TAB>target)");
  }
  if (o.model.position == "rope" || o.model.position == "alibi") {
    if (command.count("--pos") > 0) {
      throw CLI::ValidationError("--pos " + o.model.position +
                                 ": the encoder-decoder takes sinusoidal, learned or none (RoPE "
                                 "and ALiBi would need positions shared by source and target)");
    }
  }
  if (o.model.ffn == "swiglu" && command.count("--ffn") > 0) {
    throw CLI::ValidationError(
        "--ffn swiglu: the encoder-decoder takes relu, gelu or silu (Marian's activations)");
  }
  if (o.resume || !o.init_from.empty()) return;  // the model comes from a directory
  EncoderDecoderConfig config;
  try {
    config = ConfigFromFlags(o, command, PlannedVocabularySize(VocabularySpec(o, command)));
    config.Validate();
  } catch (const CLI::ValidationError&) {
    throw;
  } catch (const std::exception& error) {
    throw CLI::ValidationError(error.what());
  }
}

void CheckDecoderOnlyFlags(const CLI::App& command) {
  for (const char* flag : kEncoderDecoderOnlyFlags) {
    if (command.count(flag) > 0) {
      throw CLI::ValidationError(std::string(flag) + " needs --arch encoder-decoder");
    }
  }
}

int RunTranslationTrainOnRanks(const TrainCommandOptions& options, const CLI::App& command,
                               const Communicator& comm) {
  TrainCommandOptions o = options;
  o.quiet = o.quiet || !comm.is_root();  // only rank 0 talks
  ThreadPool threads(o.threads > 0 ? o.threads : ThreadPool::HardwareThreads());
  const PairSets sets = ReadPairSets(o);
  io::CheckpointDirectory checkpoints(o.out);
  RemoveSaveLeftovers(checkpoints, comm);
  TranslationStart start = StartModel(o, command, sets);
  const tokenizer::TranslationVocabulary& vocabulary = *start.vocabulary;
  const TokenizedSet train =
      Tokenize(sets.train, sets.train_source, vocabulary, start.model.config, o.batch_tokens);
  const TokenizedSet val =
      Tokenize(sets.val, sets.val_source, vocabulary, start.model.config, o.batch_tokens);
  train::TranslationTask task(start.model, train.pairs, val.pairs,
                              {o.batch_tokens, o.label_smoothing});
  train::Trainer trainer(task, TrainOptionsFor(o), threads, &comm);
  std::optional<int64_t> resumed_step;
  if (!start.resume_dir.empty()) {
    RestoreTrainingState(trainer, start.resume_dir, o);
    resumed_step = trainer.step();
  }
  TrainLog log(o.out, comm.is_root(), resumed_step);
  const model::LoadedEncoderDecoder& model = start.model;
  CheckpointWriter writer(
      checkpoints,
      [&model, &vocabulary, &o](const std::string& folder, const nlohmann::json& run_keys) {
        nlohmann::json extra = run_keys;
        extra.update(vocabulary.Save(folder));
        model::SaveEncoderDecoder(folder, model.config, model.params, extra,
                                  SafetensorsDtype(o.save_dtype));
      },
      trainer, log, o, comm);
  if (!o.quiet) PrintSummary(o, start, task, train, val, threads, comm);
  return RunTrainLoop(o, trainer, log, writer, comm);
}

}  // namespace qkv::cli
