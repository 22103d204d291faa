// What a Trainer (train/trainer.h) trains: a model's parameters and gradients, its data, and
// how one micro-batch goes forward and backward. The trainer owns everything a step shares
// between models (AdamW, the schedule, clipping, accumulation, data parallelism, the state file
// and bitwise resumption); a task owns everything that depends on the model's kind:
//   - LanguageModelTask (train/language_model_task.h): decoder-only models on random windows
//     of a token stream;
//   - TranslationTask (train/translation_task.h): the encoder-decoder on batches of sentence
//     pairs formed by token count.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "qkv/core/random.h"
#include "qkv/runtime/execution_context.h"
#include "qkv/train/gradient_sync.h"
#include "qkv/train/parameter_list.h"

namespace qkv::train {

// This process's place among the data-parallel ranks: every rank draws the same global
// micro-batch and trains on its own slice of it.
struct RankSlice {
  int rank = 0;
  int ranks = 1;
};

// What one micro-batch measured on this rank.
struct MicroBatchLoss {
  double loss = 0;     // mean over this rank's counted targets (0 when it has none)
  double counted = 0;  // targets counted (not ignored) on this rank
  int64_t tokens = 0;  // tokens the global micro-batch trains on (all ranks): throughput
};

class TrainingTask {
 public:
  virtual ~TrainingTask() = default;

  // The model's parameters and their gradients, in one fixed order, the same shapes. The
  // views stay valid while the task lives.
  virtual const ParameterList& parameters() const = 0;
  virtual const ParameterList& gradients() const = 0;
  // Whether training draws dropout masks (then each rank gets its own stream).
  virtual bool uses_dropout() const = 0;
  // Bytes ExecutionContext::scratch needs for TrainMicroBatch and EvaluateMicroBatch.
  virtual size_t ScratchBytes(int num_threads) const = 0;

  // Draws the next global micro-batch from data_random (the same stream on every rank), runs
  // forward (training) and backward on this rank's slice, and adds loss_scale x the gradient
  // of its mean loss to gradients().
  virtual MicroBatchLoss TrainMicroBatch(Random& data_random, Random* dropout_random,
                                         float loss_scale, const RankSlice& slice,
                                         const ExecutionContext& ctx) = 0;
  // Evaluation batch `index` of `batches` (forward only, no dropout) on this rank's slice;
  // random is the evaluation's own stream, seeded the same for every evaluation.
  virtual MicroBatchLoss EvaluateMicroBatch(int64_t index, int64_t batches, Random& random,
                                            const RankSlice& slice,
                                            const ExecutionContext& ctx) = 0;

  // How many batches an evaluation runs when `requested` are asked for (--eval-batches): a
  // task with a fixed validation set returns its own number of batches.
  virtual int64_t EvaluationBatches(int64_t requested) const { return requested; }
  // Whether an evaluation's loss is the mean per counted target over all its batches (a
  // fixed validation set) rather than the mean of the batches' losses (random windows).
  virtual bool token_weighted_evaluation() const { return false; }

  // The task's settings that a resumed run must repeat (merged into the trainer's resume key).
  virtual nlohmann::json ResumeKey(int ranks) const = 0;
  // Where the task is in its data beyond data_random's state (e.g. the position in an epoch),
  // saved with the training state; RestoreDataState gets it back on resume, after the trainer
  // has restored data_random. Throws qkv::Error naming source for a malformed state.
  virtual nlohmann::json DataState() const { return nlohmann::json::object(); }
  virtual void RestoreDataState(const nlohmann::json& /*state*/, const std::string& /*source*/) {}
  // The name of a parameter's optimizer moments in state files older than qkv's own names.
  virtual std::optional<std::string> LegacyMomentName(const model::ParameterInfo& /*info*/) const {
    return std::nullopt;
  }
};

}  // namespace qkv::train
