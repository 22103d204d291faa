// Trainer: one model's optimizer state, gradients and activations, and the training step:
// sample a batch, forward, backward (accumulating over micro-batches), clip the global gradient
// norm, AdamW with the scheduled learning rate. Everything is allocated once, at construction;
// a step allocates nothing. The whole state round-trips through SaveState / LoadState, so an
// interrupted run that resumes gives bitwise the same losses as one that never stopped.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <span>
#include <utility>
#include <vector>

#include "qkv/core/random.h"
#include "qkv/core/tensor.h"
#include "qkv/io/safetensors.h"
#include "qkv/model/checkpoint.h"
#include "qkv/model/transformer.h"
#include "qkv/train/adamw.h"
#include "qkv/train/lr_schedule.h"

namespace qkv::train {

struct TrainOptions {
  int64_t batch = 12;
  int64_t seq_len = 0;  // 0: the model's context
  int64_t steps = 2000;
  int64_t accum = 1;  // micro-batches of `batch` windows per optimizer step
  LrSchedule schedule;
  AdamWOptions adamw;
  double grad_clip = 1.0;  // 0 disables clipping
  uint64_t seed = 1337;
  void Validate() const;  // throws qkv::Error naming a bad value
  // The options that must be the same when a run resumes (all but steps).
  nlohmann::json ResumeKey() const;
};

struct StepResult {
  double loss;           // mean over the step's micro-batches, before the update
  double learning_rate;  // used by the update
  double grad_norm;      // global norm before clipping
};

// Every (info, view) of one parameter set, in model::ForEachParameter order.
using ParameterList = std::vector<std::pair<model::ParameterInfo, TensorView<float>>>;

class Trainer {
 public:
  // model must outlive the trainer. options.seq_len must not exceed what the positions allow.
  Trainer(model::Model& model, const TrainOptions& options, const ThreadPool& threads);

  // One optimizer step on batches drawn from train_tokens.
  StepResult Step(std::span<const int32_t> train_tokens);

  // Mean loss over `batches` random windows-batches of tokens, drawn from a generator seeded
  // with `seed` (the same windows every call), without dropout. Does not touch the training
  // state.
  double Evaluate(std::span<const int32_t> tokens, int64_t batches, uint64_t seed);

  int64_t step() const { return step_; }  // optimizer steps done
  const TrainOptions& options() const { return options_; }
  int64_t tokens_per_step() const { return options_.batch * options_.accum * seq_len_; }

  // Optimizer moments, step, random states and the resume key, as one safetensors file.
  io::SafetensorsFile SaveState() const;
  // Throws qkv::Error if the file does not belong to this model or these options.
  void LoadState(const io::SafetensorsFile& file, const std::string& source);

 private:
  model::Model& model_;
  TrainOptions options_;
  int64_t seq_len_;
  Arena arena_;    // gradients, moments, activations, batches
  Arena scratch_;  // temporaries inside a step
  ExecutionContext ctx_;
  model::ModelParams<float> grads_, moment1_, moment2_;
  model::ModelActivations<float> acts_;
  TensorView<int32_t> inputs_, targets_;  // (B, T)
  ParameterList param_list_, grad_list_, moment1_list_, moment2_list_;
  std::vector<TensorView<float>> gradient_views_;
  Random data_random_, dropout_random_;
  int64_t step_ = 0;
};

}  // namespace qkv::train
