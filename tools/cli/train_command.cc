// `qkv train`: data -> tokenizer -> model -> AdamW steps, with evaluation, logging, a
// progress line, checkpoints that survive crashes and Ctrl-C, and exact resumption.
#include "tools/cli/train_command.h"

#include <exception>
#include <filesystem>
#include <memory>
#include <optional>

#include "qkv/io/checkpoint_directory.h"
#include "qkv/io/text_file.h"
#include "qkv/runtime/communicator.h"
#include "qkv/train/language_model_task.h"
#include "qkv/train/trainer.h"
#include "tools/cli/commands.h"
#include "tools/cli/common_flags.h"
#include "tools/cli/flag_checks.h"
#include "tools/cli/memory_check.h"
#include "tools/cli/train_checkpoints.h"
#include "tools/cli/train_log.h"
#include "tools/cli/train_loop.h"
#include "tools/cli/train_resume.h"
#include "tools/cli/train_setup.h"
#include "tools/cli/train_translation.h"

namespace qkv::cli {

namespace {

namespace fs = std::filesystem;

constexpr const char* kTrainGroup = "Training";

void AddDataFlags(CLI::App* c, TrainCommandOptions& o) {
  c->add_option("--arch", o.arch,
                "decoder: a language model on --data; encoder-decoder: a translation model "
                "(Marian's) on --pairs")
      ->capture_default_str()
      ->check(CLI::IsMember({"decoder", "encoder-decoder"}));
  c->add_option("--data", o.data,
                "Training text (split 90/10 into train/validation unless "
                "--val-data is given); required for --arch decoder")
      ->check(CLI::ExistingFile);
  c->add_option("--val-data", o.val_data, "Validation text")->check(CLI::ExistingFile);
  c->add_option("--out", o.out,
                "Model directory to write (config.json, model.safetensors, "
                "tokenizer, train_log.jsonl, loss_curve.svg)")
      ->required()
      ->check(OutputDirectory());
  c->add_option("--tokenizer", o.tokenizer,
                "char | byte | bpe:N (N tokens); encoder-decoder: spm:N (SentencePiece on both "
                "sides, default spm:8000) | byte")
      ->capture_default_str()
      ->check(TokenizerSpec());
}

// The encoder-decoder's own flags (train_translation.h).
void AddTranslationFlags(CLI::App* c, TrainCommandOptions& o) {
  const std::string group = "Encoder-decoder (--arch encoder-decoder)";
  c->add_option("--pairs", o.pairs,
                "Training pairs, source<TAB>target per line (the last 10% validate unless "
                "--val-pairs is given)")
      ->group(group)
      ->check(CLI::ExistingFile);
  c->add_option("--val-pairs", o.val_pairs, "Validation pairs")
      ->group(group)
      ->check(CLI::ExistingFile);
  c->add_option("--batch-tokens", o.batch_tokens,
                "Tokens per batch (pairs of similar length, padded: B x max(S, T + 1))")
      ->group(group)
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 30));
  c->add_option("--label-smoothing", o.label_smoothing,
                "Label smoothing of the training loss (validation loss is unsmoothed)")
      ->group(group)
      ->capture_default_str()
      ->check(FiniteNumber(0.0, 0.99));
  c->add_option("--encoder-layers", o.encoder_layers, "Encoder blocks (0: --layers)")
      ->group(group)
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1024}));
  c->add_option("--decoder-layers", o.decoder_layers, "Decoder blocks (0: --layers)")
      ->group(group)
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1024}));
  c->add_option("--max-positions", o.max_positions,
                "Longest source or target in tokens (with </s>); longer pairs are left out")
      ->group(group)
      ->capture_default_str()
      ->check(CLI::Range(int64_t{2}, int64_t{1} << 20));
}

// Evaluation, checkpoints, seed, threads: what the run does besides the optimizer's steps.
void AddRunFlags(CLI::App* c, TrainCommandOptions& o) {
  c->add_option("--eval-every", o.eval_every, "Evaluate on the validation split every N steps")
      ->group(kTrainGroup)
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 40));
  c->add_option("--eval-batches", o.eval_batches, "Batches per evaluation")
      ->group(kTrainGroup)
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  c->add_option("--save-every", o.save_every, "Write a checkpoint every N steps (0: at the end)")
      ->group(kTrainGroup)
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 40));
  c->add_option("--keep-checkpoints", o.keep_checkpoints,
                "Complete checkpoints kept in --out/checkpoints (the newest N; older ones are "
                "removed after each save)")
      ->group(kTrainGroup)
      ->capture_default_str()
      ->check(CLI::Range(1, 1000000));
  c->add_option("--save-dtype", o.save_dtype,
                "Values of the saved model.safetensors: fp32, or bf16 (rounded to nearest even: "
                "half the bytes; the training state keeps float32 weights for --resume)")
      ->group(kTrainGroup)
      ->capture_default_str()
      ->check(CLI::IsMember({"fp32", "bf16"}));
  c->add_option("--stop-at", o.stop_at,
                "Save and stop after this step, as if interrupted "
                "(continue later with --resume)")
      ->group(kTrainGroup)
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 40));
  c->add_option("--time-limit", o.time_limit,
                "End the run at the last step that fits in this wall-clock time of training "
                "(600, 90s, 10m, 1.5h), as if --steps were reached: final evaluation and "
                "checkpoint; --resume continues towards --steps")
      ->group(kTrainGroup)
      ->transform(Duration());
  AddSeedFlag(c, o.seed, "Seed of initialisation, batches and dropout")->group(kTrainGroup);
  AddAttentionFlag(c, o.attention);
  AddThreadsFlag(c, o.threads)->group(kTrainGroup);
  c->add_flag("--resume", o.resume,
              "Continue the run in --out from its last complete checkpoint (weights, "
              "optimizer, data order, random state); the other flags may be repeated, and only "
              "--steps may change")
      ->group(kTrainGroup);
  c->add_option("--init-from", o.init_from,
                "Start from this model directory (qkv's, Hugging Face GPT-2 or "
                "LlamaForCausalLM; with --arch encoder-decoder qkv's or MarianMTModel): its "
                "architecture, weights and tokenizer; model flags may be repeated but must agree "
                "with it (--dropout may change); --out gets the same layout")
      ->group(kTrainGroup)
      ->check(CLI::ExistingDirectory)
      ->excludes("--resume");
  c->add_flag("--quiet", o.quiet, "No progress line")->group(kTrainGroup);
}

void AddDataParallelFlags(CLI::App* c, TrainCommandOptions& o) {
  const std::string group = "Data parallel (under mpirun -np N; --batch is per rank)";
  c->add_flag("--shard-optimizer", o.shard_optimizer,
              "Each rank keeps and updates 1/N of the AdamW moments and parameters")
      ->group(group);
  c->add_option("--mpi-timeout", o.mpi_timeout,
                "Seconds a collective may wait for the other ranks before the job is stopped")
      ->group(group)
      ->capture_default_str()
      ->check(FiniteNumber(0.0, 1e6, /*min_exclusive=*/true));
  c->add_option("--checksum-every", o.checksum_every,
                "Check that the ranks' parameters agree every N steps (0: only at the end)")
      ->group(group)
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 40));
}

// Combinations of the flags of a new model, checked once every flag is parsed (so that the
// message names them) and before anything is allocated (a model too big for the machine is
// refused here, not after its parameters have been filled). Throws CLI::ValidationError.
void CheckNewModelFlags(const TrainCommandOptions& o) {
  const ModelFlags& m = o.model;
  const bool rope = m.position == model::ToString(model::PositionEncoding::kRope);
  const std::string shape_problem =
      ShapeProblem(m.dim, m.heads, rope ? "--pos rope" : nullptr, m.head_dim, m.kv_heads);
  if (!shape_problem.empty()) throw CLI::ValidationError(shape_problem);
  // The vocabulary is known only once the tokenizer is trained; a char one has >= 1 token.
  const int64_t vocab_size = o.tokenizer == "byte"             ? 256
                             : o.tokenizer.starts_with("bpe:") ? std::stoll(o.tokenizer.substr(4))
                                                               : 1;
  model::ModelConfig config;
  try {
    config = ConfigFromFlags(m, vocab_size);
    config.attention = model::ParseAttentionImpl(o.attention);
  } catch (const std::exception& error) {  // UsageError, or qkv::Error from Validate
    throw CLI::ValidationError(error.what());
  }
  const std::string problem = TrainingMemoryProblem(config, o.training.batch);
  if (!problem.empty()) {
    throw CLI::ValidationError("--layers " + std::to_string(m.layers) + " --dim " +
                               std::to_string(m.dim) + " --ffn-dim " + std::to_string(m.ffn_dim) +
                               " --context " + std::to_string(m.context) + " --batch " +
                               std::to_string(o.training.batch) + ": training needs " + problem);
  }
}

// Throws UsageError when --out cannot take this run (a file; a model without --resume; no run
// to continue with --resume), --stop-at / --min-lr contradict --steps / --lr, or --precision
// bf16 cannot run on this CPU (before any data is read or a vocabulary trained).
void CheckRunFlags(const TrainCommandOptions& o) {
  PrecisionOrRefuse(o.training.precision);
  std::error_code ignored;
  if (fs::exists(o.out, ignored) && !fs::is_directory(o.out, ignored)) {
    throw UsageError("--out " + o.out + " is a file, not a directory");
  }
  const RunDirectoryState state = ClassifyRunDirectory(o.out);
  if (o.resume) {
    if (state == RunDirectoryState::kModelOnly) {
      throw UsageError("--resume: " + o.out + " holds a model but no training state (" +
                       kStateFile + "), so there is no run to continue");
    }
    if (state == RunDirectoryState::kAbsent) {
      throw UsageError("--resume: " + o.out + " holds no run to continue (no checkpoint, no " +
                       kLogFile + ")");
    }
  } else if (state == RunDirectoryState::kCheckpointed || state == RunDirectoryState::kModelOnly) {
    throw UsageError(o.out +
                     " already holds a model; pass --resume to continue training it, "
                     "or choose another --out");
  }
  if (o.stop_at > 0 && o.stop_at > o.training.steps) {
    throw UsageError("--stop-at " + std::to_string(o.stop_at) + " is past --steps " +
                     std::to_string(o.training.steps));
  }
  if (o.training.min_lr > o.training.lr) {
    throw UsageError("--min-lr " + std::to_string(o.training.min_lr) + " is above --lr " +
                     std::to_string(o.training.lr));
  }
}

// The run on this rank (of one or more): setup, resumption, the loop. Rank 0 alone prints and
// writes files; every rank takes part in the collectives, in the same order.
int RunTrainOnRanks(const TrainCommandOptions& options, const CLI::App& command,
                    const Communicator& comm) {
  if (options.arch == "encoder-decoder") return RunTranslationTrainOnRanks(options, command, comm);
  TrainCommandOptions o = options;
  o.quiet = o.quiet || !comm.is_root();  // only rank 0 talks
  ThreadPool threads(o.threads > 0 ? o.threads : ThreadPool::HardwareThreads());
  const std::string text = io::ReadTextFile(o.data);
  io::CheckpointDirectory checkpoints(o.out);
  RemoveSaveLeftovers(checkpoints, comm);
  TrainStart start = StartModel(o, command, text);
  const int64_t context = start.model.config.context;
  const TrainTokens tokens = TokenizeSplits(o, *start.tokenizer, text, context);
  train::LanguageModelTask task(start.model, o.training.batch, context, tokens.train, tokens.val);
  train::Trainer trainer(task, TrainOptionsFor(o), threads, &comm);
  std::optional<int64_t> resumed_step;
  if (start.resuming()) {
    RestoreTrainingState(trainer, start.resume_dir, o);
    resumed_step = trainer.step();
  }
  TrainLog log(o.out, comm.is_root(), resumed_step);
  CheckpointWriter writer(checkpoints,
                          SaveLanguageModel(start.model, *start.tokenizer, o.save_dtype), trainer,
                          log, o, comm);
  if (!o.quiet) PrintRunSummary(o, start, tokens, threads, comm);
  return RunTrainLoop(o, trainer, log, writer, comm);
}

}  // namespace

CLI::App* AddTrainCommand(CLI::App& app, TrainCommandOptions& o) {
  CLI::App* c = app.add_subcommand("train", "Train a language model on a text file");
  AddDataFlags(c, o);
  AddModelFlags(c, o.model);
  AddTrainingFlags(c, o.training, kTrainGroup);
  AddRunFlags(c, o);
  AddDataParallelFlags(c, o);
  AddTranslationFlags(c, o);
  // With --resume the model comes from --out (with --init-from from that directory), and
  // CheckModelFlagsAgree checks the flags given.
  c->callback([&o, c] {
    if (o.arch == "encoder-decoder") return CheckTranslationFlags(o, *c);
    CheckDecoderOnlyFlags(*c);
    if (o.data.empty()) throw CLI::ValidationError("--data is required (the training text)");
    if (!o.resume && o.init_from.empty()) CheckNewModelFlags(o);
  });
  return c;
}

int RunTrain(const TrainCommandOptions& o, const CLI::App& command) {
  CheckRunFlags(o);
  const std::unique_ptr<Communicator> comm = Communicator::FromEnvironment(o.mpi_timeout);
  if (!comm->distributed()) return RunTrainOnRanks(o, command, *comm);
  // An error on one rank must stop them all (the others would wait in a collective until the
  // timeout); an error every rank meets is printed by each.
  try {
    return RunTrainOnRanks(o, command, *comm);
  } catch (const UsageError& error) {
    comm->Abort(error.what(), 2);
  } catch (const std::exception& error) {
    comm->Abort(error.what(), 1);
  }
  return 1;  // not reached: Abort ends the process
}

}  // namespace qkv::cli
