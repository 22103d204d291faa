// `qkv train`: data -> tokenizer -> model -> AdamW steps, with evaluation, logging, a
// progress line, checkpoints that survive crashes and Ctrl-C, and exact resumption.
#include "tools/cli/train_command.h"

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>

#include "qkv/core/check.h"
#include "qkv/inspect/line_plot.h"
#include "qkv/io/checkpoint_directory.h"
#include "qkv/io/safetensors.h"
#include "qkv/io/text_file.h"
#include "qkv/model/checkpoint.h"
#include "qkv/tokenizer/tokenizer.h"
#include "qkv/train/distributed.h"
#include "qkv/train/trainer.h"
#include "tools/cli/commands.h"
#include "tools/cli/common_flags.h"
#include "tools/cli/flag_checks.h"
#include "tools/cli/memory_check.h"
#include "tools/cli/progress.h"
#include "tools/cli/train_resume.h"

namespace qkv::cli {

namespace {

namespace fs = std::filesystem;

constexpr const char* kTrainGroup = "Training";

constexpr const char* kStateFile = "training_state.safetensors";
constexpr const char* kLogFile = "train_log.jsonl";
constexpr const char* kCurveFile = "loss_curve.svg";

std::atomic<bool> interrupted{false};

extern "C" void OnInterrupt(int) { interrupted.store(true); }

// Installs OnInterrupt for SIGINT and SIGTERM while alive; the previous handlers come back
// afterwards (a second Ctrl-C during the final save is still caught, not fatal).
class InterruptGuard {
 public:
  InterruptGuard() {
    struct sigaction action {};
    action.sa_handler = OnInterrupt;
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, &previous_int_);
    sigaction(SIGTERM, &action, &previous_term_);
  }
  ~InterruptGuard() {
    sigaction(SIGINT, &previous_int_, nullptr);
    sigaction(SIGTERM, &previous_term_, nullptr);
  }
  InterruptGuard(const InterruptGuard&) = delete;
  InterruptGuard& operator=(const InterruptGuard&) = delete;

 private:
  struct sigaction previous_int_ {};
  struct sigaction previous_term_ {};
};

struct LogEntry {
  int64_t step;
  double loss, learning_rate, tokens_per_s;
  std::optional<double> val_loss;
};

std::string ToJsonLine(const LogEntry& entry) {
  nlohmann::json json = {{"step", entry.step},
                         {"loss", entry.loss},
                         {"lr", entry.learning_rate},
                         {"tokens_per_s", entry.tokens_per_s}};
  if (entry.val_loss) json["val_loss"] = *entry.val_loss;
  return json.dump();
}

// The lines of an existing log up to and including `last_step` (those past it were written
// after the checkpoint we resume from). A last line without its newline was cut short by a
// crash and is dropped.
std::vector<LogEntry> ReadLog(const fs::path& path, int64_t last_step) {
  std::vector<LogEntry> entries;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || in.eof()) continue;
    nlohmann::json json;
    try {
      json = nlohmann::json::parse(line);
      LogEntry entry{json.at("step").get<int64_t>(), json.at("loss").get<double>(),
                     json.at("lr").get<double>(), json.at("tokens_per_s").get<double>(),
                     std::nullopt};
      if (json.contains("val_loss")) entry.val_loss = json["val_loss"].get<double>();
      if (entry.step <= last_step) entries.push_back(entry);
    } catch (const nlohmann::json::exception&) {
      throw Error(internal::StrCat(path.string(), ": malformed line: ", line));
    }
  }
  return entries;
}

void WriteLossCurve(const fs::path& path, const std::vector<LogEntry>& entries) {
  inspect::Series train{"train loss", "#1f77b4", {}, false};
  inspect::Series val{"validation loss", "#d62728", {}, true};
  for (const LogEntry& entry : entries) {
    train.points.emplace_back(static_cast<double>(entry.step), entry.loss);
    if (entry.val_loss) val.points.emplace_back(static_cast<double>(entry.step), *entry.val_loss);
  }
  inspect::LinePlot plot{"qkv training: " + path.parent_path().filename().string(),
                         "step",
                         "cross-entropy loss (nats/token)",
                         {train, val}};
  io::WriteFileAtomically(path.string(), inspect::RenderSvg(plot));
}

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

std::string FormatDuration(double seconds) {
  const int64_t total = static_cast<int64_t>(seconds + 0.5);
  char buffer[32];
  if (total >= 3600) {
    std::snprintf(buffer, sizeof(buffer), "%lldh%02lldm", static_cast<long long>(total / 3600),
                  static_cast<long long>(total % 3600 / 60));
  } else {
    std::snprintf(buffer, sizeof(buffer), "%lldm%02llds", static_cast<long long>(total / 60),
                  static_cast<long long>(total % 60));
  }
  return buffer;
}

void AddDataFlags(CLI::App* c, TrainCommandOptions& o) {
  c->add_option("--data", o.data,
                "Training text (split 90/10 into train/validation unless "
                "--val-data is given)")
      ->required()
      ->check(CLI::ExistingFile);
  c->add_option("--val-data", o.val_data, "Validation text")->check(CLI::ExistingFile);
  c->add_option("--out", o.out,
                "Model directory to write (config.json, model.safetensors, "
                "tokenizer, train_log.jsonl, loss_curve.svg)")
      ->required()
      ->check(OutputDirectory());
  c->add_option("--tokenizer", o.tokenizer, "char | byte | bpe:N (N tokens)")
      ->capture_default_str()
      ->check(TokenizerSpec());
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
  c->add_option("--stop-at", o.stop_at,
                "Save and stop after this step, as if interrupted "
                "(continue later with --resume)")
      ->group(kTrainGroup)
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 40));
  AddSeedFlag(c, o.seed, "Seed of initialisation, batches and dropout")->group(kTrainGroup);
  AddAttentionFlag(c, o.attention);
  AddThreadsFlag(c, o.threads)->group(kTrainGroup);
  c->add_flag("--resume", o.resume,
              "Continue the run in --out from its last complete checkpoint (weights, "
              "optimizer, data order, random state); the other flags may be repeated, and only "
              "--steps may change")
      ->group(kTrainGroup);
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
  const std::string shape_problem = ShapeProblem(m.dim, m.heads, rope ? "--pos rope" : nullptr);
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
// to continue with --resume) or --stop-at / --min-lr contradict --steps / --lr.
void CheckRunFlags(const TrainCommandOptions& o) {
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

int RunTrainOnRanks(const TrainCommandOptions& options, const CLI::App& command,
                    const train::Communicator& comm) {
  const bool root = comm.is_root();
  // Only rank 0 talks.
  TrainCommandOptions o = options;
  o.quiet = o.quiet || !root;
  const fs::path dir(o.out);
  ThreadPool threads(o.threads > 0 ? o.threads : ThreadPool::HardwareThreads());
  const std::string text = io::ReadTextFile(o.data);
  io::CheckpointDirectory checkpoints(o.out);
  // Only the writer cleans up after an interrupted save, before any rank reads.
  if (root) checkpoints.RemoveLeftovers();
  uint64_t cleaned = 1;  // a barrier: no rank reads before the clean-up is done
  comm.AllreduceMax(std::span<uint64_t>(&cleaned, 1), "the checkpoint clean-up");
  // The one folder this run resumes from: config, weights, tokenizer and training state of
  // one checkpoint.
  const std::string resume_dir = io::ResolveModelDirectory(o.out);
  const bool resuming = o.resume && ClassifyRunDirectory(o.out) == RunDirectoryState::kCheckpointed;
  if (o.resume && !resuming && !o.quiet) {
    std::fprintf(stderr,
                 "qkv train: %s was stopped before its first checkpoint; starting it again "
                 "from step 0\n",
                 o.out.c_str());
  }
  std::unique_ptr<tokenizer::Tokenizer> tokens_of;
  model::Model model;
  if (resuming) {
    model = model::LoadModel(resume_dir);
    tokens_of = tokenizer::LoadTokenizerFromModelDir(resume_dir);
    CheckModelFlagsAgree(o, command, model.config, *tokens_of);
  } else {
    // The character vocabulary covers the whole file, as nanoGPT's does, so the validation
    // split never holds an unknown character.
    tokens_of = WithFileName(o.data, [&] {
      return tokenizer::TrainTokenizer(o.tokenizer, text, o.quiet ? nullptr : &std::cerr);
    });
    model = model::CreateModel(ConfigFromFlags(o.model, tokens_of->vocab_size()));
    Random init_random(o.seed);
    model::InitializeParameters(model.config, model.params, init_random);
  }
  model.config.attention = model::ParseAttentionImpl(o.attention);
  const model::ModelConfig& config = model.config;

  // Tokenizing takes seconds from a few megabytes on (BPE): then it shows its progress.
  constexpr size_t kLargeText = size_t{1} << 20;
  std::vector<int32_t> train_tokens = WithFileName(o.data, [&] {
    return EncodeWithProgress(*tokens_of, text, "tokenizing " + o.data,
                              !o.quiet && text.size() >= kLargeText);
  });
  std::vector<int32_t> val_tokens;
  if (!o.val_data.empty()) {
    const std::string val_text = io::ReadTextFile(o.val_data);
    val_tokens = WithFileName(o.val_data, [&] {
      return EncodeWithProgress(*tokens_of, val_text, "tokenizing " + o.val_data,
                                !o.quiet && val_text.size() >= kLargeText);
    });
  } else {
    const size_t split = train_tokens.size() * 9 / 10;
    val_tokens.assign(train_tokens.begin() + static_cast<std::ptrdiff_t>(split),
                      train_tokens.end());
    train_tokens.resize(split);
  }
  const int64_t window = config.context + 1;
  QKV_CHECK(static_cast<int64_t>(train_tokens.size()) >= window, o.data,
            ": the training split "
            "has ",
            train_tokens.size(), " tokens, fewer than one window of ", window, " (--context ",
            config.context, " + 1)");
  QKV_CHECK(static_cast<int64_t>(val_tokens.size()) >= window,
            o.val_data.empty() ? o.data : o.val_data, ": the validation split has ",
            val_tokens.size(), " tokens, fewer than one window of ", window, " (--context ",
            config.context, " + 1)");

  train::TrainOptions train_options = TrainOptionsFromFlags(o.training, config.context);
  train_options.seed = o.seed;
  train_options.shard_optimizer = o.shard_optimizer;
  train_options.checksum_every = o.checksum_every;
  train::Trainer trainer(model, train_options, threads, &comm);

  std::vector<LogEntry> log;
  if (resuming) {
    const std::string state_path = (fs::path(resume_dir) / kStateFile).string();
    const io::SafetensorsFile state = io::ReadSafetensors(state_path);
    if (auto saved = state.metadata.find("options"); saved != state.metadata.end()) {
      nlohmann::json saved_options;
      try {
        saved_options = nlohmann::json::parse(saved->second);
      } catch (const nlohmann::json::exception&) {
        throw Error(state_path + ": malformed options metadata");
      }
      CheckTrainingFlagsAgree(saved_options, train_options.ResumeKey(comm.size()));
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
    if (root) {
      log = ReadLog(dir / kLogFile, trainer.step());
      std::string kept;
      for (const LogEntry& entry : log) kept += ToJsonLine(entry) + "\n";
      io::WriteFileAtomically((dir / kLogFile).string(), kept);
    }
  } else if (root) {
    fs::create_directories(dir);
    io::WriteFileAtomically((dir / kLogFile).string(), "");
  }

  // A collective with several ranks (the optimizer state may be sharded); rank 0 writes one
  // complete checkpoint folder and then switches to it (io/checkpoint_directory.h).
  auto save_checkpoint = [&] {
    io::SafetensorsFile state = trainer.SaveState();
    if (!root) return;
    checkpoints.Save(
        trainer.step(),
        [&](const std::string& folder) {
          nlohmann::json extra;
          extra["tokenizer"] = tokenizer::SaveTokenizer(*tokens_of, folder);
          extra["qkv_training_step"] = trainer.step();
          io::WriteSafetensors((fs::path(folder) / kStateFile).string(), state);
          model::SaveModel(folder, model, extra);
        },
        o.keep_checkpoints);
    WriteLossCurve(dir / kCurveFile, log);
  };

  if (!o.quiet) {
    std::fprintf(
        stderr,
        "qkv train: %lld parameters, %lld layers x %lld heads x width %lld, context "
        "%lld, %s tokenizer (%lld tokens); %zu train / %zu validation tokens; %d "
        "threads%s\n",
        static_cast<long long>(model::CountParameters(config)),
        static_cast<long long>(config.num_layers), static_cast<long long>(config.num_heads),
        static_cast<long long>(config.width), static_cast<long long>(config.context),
        tokens_of->name().c_str(), static_cast<long long>(config.vocab_size), train_tokens.size(),
        val_tokens.size(), threads.num_threads(),
        comm.distributed()
            ? (" per rank; " + std::to_string(comm.size()) + " ranks x batch " +
               std::to_string(o.training.batch) + (o.shard_optimizer ? ", sharded optimizer" : ""))
                  .c_str()
            : "");
  }

  std::unique_ptr<std::FILE, int (*)(std::FILE*)> close_log(nullptr, std::fclose);
  if (root) {
    close_log.reset(std::fopen((dir / kLogFile).c_str(), "a"));
    QKV_CHECK(close_log != nullptr, (dir / kLogFile).string(), ": cannot open for appending");
  }
  std::FILE* log_file = close_log.get();
  Progress progress(!o.quiet, isatty(STDERR_FILENO) != 0);
  InterruptGuard guard;
  interrupted.store(false);
  const uint64_t eval_seed = o.seed ^ 0x5eedf00dULL;
  const auto run_start = std::chrono::steady_clock::now();
  const int64_t first_step = trainer.step();
  std::optional<double> last_val;

  while (trainer.step() < o.training.steps) {
    const auto start = std::chrono::steady_clock::now();
    const train::StepResult result = trainer.Step(train_tokens);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    LogEntry entry{trainer.step(), result.loss, result.learning_rate,
                   static_cast<double>(trainer.tokens_per_step()) / seconds, std::nullopt};
    if (trainer.step() % o.eval_every == 0 || trainer.step() == o.training.steps) {
      entry.val_loss = trainer.Evaluate(val_tokens, o.eval_batches, eval_seed);
      last_val = entry.val_loss;
    }
    log.push_back(entry);
    if (root) {
      const std::string line = ToJsonLine(entry) + "\n";
      QKV_CHECK(std::fputs(line.c_str(), log_file) >= 0 && std::fflush(log_file) == 0,
                (dir / kLogFile).string(), ": cannot append: ", std::strerror(errno));
    }
    // A signal may reach the ranks at different steps: they stop together, at the first step
    // any of them saw it.
    if (comm.distributed()) {
      uint64_t any_interrupted = interrupted.load() ? 1 : 0;
      comm.AllreduceMax(std::span<uint64_t>(&any_interrupted, 1), "the interrupt check");
      if (any_interrupted != 0) interrupted.store(true);
    }

    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - run_start).count();
    const double per_step = elapsed / static_cast<double>(trainer.step() - first_step);
    progress.Update(
        trainer.step(), o.training.steps, entry.loss, entry.val_loss, entry.tokens_per_s,
        FormatDuration(per_step * static_cast<double>(o.training.steps - trainer.step())));

    const bool stop_here = o.stop_at > 0 && trainer.step() == o.stop_at;
    if ((o.save_every > 0 && trainer.step() % o.save_every == 0) || stop_here ||
        interrupted.load()) {
      save_checkpoint();
    }
    if (interrupted.load() || stop_here) {
      progress.Finish();
      if (!root) return interrupted.load() ? 130 : 0;
      std::fprintf(stderr,
                   "qkv train: %s at step %lld; checkpoint saved in %s. Continue with "
                   "the same command plus --resume.\n",
                   interrupted.load() ? "interrupted" : "stopped",
                   static_cast<long long>(trainer.step()), o.out.c_str());
      return interrupted.load() ? 130 : 0;
    }
  }
  save_checkpoint();
  progress.Finish();
  if (comm.distributed()) {
    // Every rank reports what it holds, so a test can compare it with the saved model.
    const uint64_t checksum = trainer.CheckParametersAgree();
    std::fprintf(stderr, "qkv train: rank %d of %d: parameter checksum %llu\n", comm.rank(),
                 comm.size(), static_cast<unsigned long long>(checksum));
  }
  if (!root) return 0;
  std::printf("trained %lld steps: train loss %.4f, validation loss %s; model in %s\n",
              static_cast<long long>(trainer.step()), log.empty() ? 0.0 : log.back().loss,
              last_val ? std::to_string(*last_val).c_str() : "n/a", o.out.c_str());
  return 0;
}

}  // namespace

CLI::App* AddTrainCommand(CLI::App& app, TrainCommandOptions& o) {
  CLI::App* c = app.add_subcommand("train", "Train a language model on a text file");
  AddDataFlags(c, o);
  AddModelFlags(c, o.model);
  AddTrainingFlags(c, o.training, kTrainGroup);
  AddRunFlags(c, o);
  AddDataParallelFlags(c, o);
  // With --resume the model comes from --out, and CheckModelFlagsAgree checks the flags given.
  c->callback([&o] {
    if (!o.resume) CheckNewModelFlags(o);
  });
  return c;
}

int RunTrain(const TrainCommandOptions& o, const CLI::App& command) {
  CheckRunFlags(o);
  const std::unique_ptr<train::Communicator> comm =
      train::Communicator::FromEnvironment(o.mpi_timeout);
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
