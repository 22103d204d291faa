// The encoder-decoder's training task (model/encoder_decoder.h): epochs of sentence pairs in
// batches by token count (train/pair_batches.h: length-sorted, cut at batch_tokens, the order
// of the batches shuffled from the data stream at the start of every epoch), padding masked in
// attention and in the loss, label smoothing on the training loss. Evaluation covers the whole
// validation set each time (its batches fixed), as the mean cross-entropy per label token
// without smoothing, so that exp(loss) is the perplexity `qkv eval --pairs` reports.
//
// With N ranks every rank plans the same global batch and trains on its rows
// [r B / N, (r + 1) B / N); the gradient synchronisation weights ranks by their label tokens,
// so the step's loss and gradient are those of the whole batch.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <vector>

#include "qkv/core/arena.h"
#include "qkv/model/marian_checkpoint.h"
#include "qkv/train/pair_batches.h"
#include "qkv/train/training_task.h"

namespace qkv::train {

struct TranslationTaskOptions {
  int64_t batch_tokens = 4096;   // max(S, T) x B of a batch stays at or under it
  double label_smoothing = 0.1;  // Marian's and fairseq's usual value; in [0, 1)
  void Validate() const;         // throws qkv::Error naming a bad value
};

class TranslationTask : public TrainingTask {
 public:
  // model, train and val must outlive the task. Every pair must fit model.config.max_positions
  // on both sides and batch_tokens alone (errors name the pair). Sizes its buffers for the
  // largest batch either set forms.
  TranslationTask(model::LoadedEncoderDecoder& model, std::span<const TokenizedPair> train,
                  std::span<const TokenizedPair> val, const TranslationTaskOptions& options);

  int64_t epoch() const { return epoch_; }  // epochs begun (1 during the first)
  int64_t validation_batches() const { return static_cast<int64_t>(val_plan_.size()); }

  const ParameterList& parameters() const override { return param_list_; }
  const ParameterList& gradients() const override { return grad_list_; }
  bool uses_dropout() const override { return model_.config.dropout > 0; }
  size_t ScratchBytes(int num_threads) const override;
  MicroBatchLoss TrainMicroBatch(Random& data_random, Random* dropout_random, float loss_scale,
                                 const RankSlice& slice, const ExecutionContext& ctx) override;
  MicroBatchLoss EvaluateMicroBatch(int64_t index, int64_t batches, Random& random,
                                    const RankSlice& slice, const ExecutionContext& ctx) override;
  int64_t EvaluationBatches(int64_t /*requested*/) const override { return validation_batches(); }
  bool token_weighted_evaluation() const override { return true; }
  nlohmann::json ResumeKey(int ranks) const override;
  nlohmann::json DataState() const override;
  void RestoreDataState(const nlohmann::json& state, const std::string& source) override;

 private:
  // Forward (and, when training, backward) of this rank's rows of the pairs at indices.
  MicroBatchLoss Run(std::span<const TokenizedPair> pairs, std::span<const int64_t> indices,
                     bool training, Random* dropout_random, float loss_scale,
                     const RankSlice& slice, const ExecutionContext& ctx);
  void BeginEpoch(Random& data_random);

  model::LoadedEncoderDecoder& model_;
  std::span<const TokenizedPair> train_, val_;
  TranslationTaskOptions options_;
  PairSpecialIds ids_;
  std::vector<std::vector<int64_t>> val_plan_;  // fixed: the same batches every evaluation
  Arena grad_arena_;
  model::EncoderDecoderParams<float> grads_;
  // (B, S, T) of every batch the task can form, training and validation: the buffers are
  // sized for the largest.
  std::vector<std::array<int64_t, 3>> batch_shapes_;
  Arena activation_arena_;  // one batch's activations
  ParameterList param_list_, grad_list_;
  // The epoch: its plan, drawn from the data stream whose state before the draw is kept (so a
  // resumed run can draw the same plan again), and the next batch in it.
  std::vector<std::vector<int64_t>> plan_;
  std::array<uint64_t, 4> epoch_random_state_{};
  int64_t next_batch_ = 0;
  int64_t epoch_ = 0;
};

}  // namespace qkv::train
