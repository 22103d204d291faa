// The decoder-only models' training task (model/transformer.h): nanoGPT's batches, B random
// windows of T + 1 consecutive tokens of a token stream (train/batch_sampler.h), the model
// predicting each window's next tokens. With N ranks a global micro-batch is N x B windows
// drawn in order from the shared stream; rank r trains on windows [r B, (r + 1) B), so N ranks
// x batch B give the losses of one process x batch N B.
#pragma once

#include <cstdint>
#include <functional>
#include <span>

#include "qkv/core/arena.h"
#include "qkv/model/checkpoint.h"
#include "qkv/model/transformer.h"
#include "qkv/train/training_task.h"

namespace qkv::train {

// Fills one micro-batch of this rank: inputs, targets (B, T). Targets equal to
// ops::kDefaultIgnoreIndex are not counted.
using BatchSource = std::function<void(TensorView<int32_t> inputs, TensorView<int32_t> targets)>;

class LanguageModelTask : public TrainingTask {
 public:
  // model, train_tokens and val_tokens must outlive the task. batch: windows per micro-batch
  // on each rank; seq_len: tokens per window, 0 for the model's context (at most the context
  // with learned positions). Throws qkv::Error for a bad batch or window.
  LanguageModelTask(model::Model& model, int64_t batch, int64_t seq_len,
                    std::span<const int32_t> train_tokens, std::span<const int32_t> val_tokens);

  // From now on micro-batches come from next_batch instead of random windows (a test's own
  // batches); the data stream is not drawn from.
  void SetBatchSource(BatchSource next_batch) { batch_source_ = std::move(next_batch); }

  int64_t batch() const { return batch_; }
  int64_t seq_len() const { return seq_len_; }

  const ParameterList& parameters() const override { return param_list_; }
  const ParameterList& gradients() const override { return grad_list_; }
  bool uses_dropout() const override { return model_.config.dropout > 0; }
  size_t ScratchBytes(int num_threads) const override;
  MicroBatchLoss TrainMicroBatch(Random& data_random, Random* dropout_random, float loss_scale,
                                 const RankSlice& slice, const ExecutionContext& ctx) override;
  MicroBatchLoss EvaluateMicroBatch(int64_t index, int64_t batches, Random& random,
                                    const RankSlice& slice, const ExecutionContext& ctx) override;
  nlohmann::json ResumeKey(int ranks) const override;
  std::optional<std::string> LegacyMomentName(const model::ParameterInfo& info) const override;

 private:
  // Steps random through ranks x batch windows (the global batch) and fills inputs_, targets_
  // with this rank's slice of them.
  void SampleSlice(std::span<const int32_t> tokens, Random& random, const RankSlice& slice);
  MicroBatchLoss Measure(double loss, const RankSlice& slice) const;

  model::Model& model_;
  int64_t batch_, seq_len_;
  std::span<const int32_t> train_tokens_, val_tokens_;
  BatchSource batch_source_;
  Arena arena_;  // gradients, activations, batches
  model::ModelParams<float> grads_;
  model::ModelActivations<float> acts_;
  TensorView<int32_t> inputs_, targets_;  // (B, T)
  ParameterList param_list_, grad_list_;
};

}  // namespace qkv::train
