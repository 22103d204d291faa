// Trainer: one model's optimizer state, gradients and activations, and the training step:
// sample a batch, forward, backward (accumulating over micro-batches), clip the global gradient
// norm, AdamW with the scheduled learning rate. Everything is allocated once, at construction;
// a step allocates nothing. The whole state round-trips through SaveState / LoadState, so an
// interrupted run that resumes gives bitwise the same losses as one that never stopped.
//
// Data parallel (docs/distributed.md): gradient synchronisation is a strategy
// (train/gradient_sync.h: none, all-reduce, sharded) chosen from the communicator and
// options.shard_optimizer; the step is the same for all: zero -> micro-batches -> synchronise
// -> clip -> update (train/optimizer.h) -> share the updated parameters. With N ranks every
// rank steps through the same seeded stream of windows, N x batch per micro-batch, and trains
// on its own slice, so N ranks x batch B give the losses of one process x batch N*B.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
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
#include "qkv/train/gradient_sync.h"
#include "qkv/train/lr_schedule.h"
#include "qkv/train/optimizer.h"
#include "qkv/train/parameter_list.h"

namespace qkv::train {

struct TrainOptions {
  int64_t batch = 12;   // windows per micro-batch on each rank
  int64_t seq_len = 0;  // 0: the model's context
  int64_t steps = 2000;
  int64_t accum = 1;  // micro-batches of `batch` windows per optimizer step
  LrSchedule schedule;
  AdamWOptions adamw;
  double grad_clip = 1.0;  // 0 disables clipping
  uint64_t seed = 1337;
  // Data parallel only (not part of the resume key: a run may resume with or without them).
  bool shard_optimizer = false;  // each rank keeps 1/N of the AdamW moments
  int64_t checksum_every = 100;  // compare a parameter checksum across ranks every N steps
  void Validate() const;         // throws qkv::Error naming a bad value
  // The options that must be the same when a run resumes (all but steps). `batch` in it is the
  // global batch, batch x ranks, so a run may resume with another number of ranks.
  nlohmann::json ResumeKey(int ranks = 1) const;
};

struct StepResult {
  double loss;           // mean over the step's micro-batches (and ranks), before the update
  double learning_rate;  // used by the update
  double grad_norm;      // global norm before clipping
};

// Fills one micro-batch of this rank: inputs, targets (B, T) of the trainer's batch and
// sequence length. Targets equal to ops::kDefaultIgnoreIndex are not counted.
using BatchSource = std::function<void(TensorView<int32_t> inputs, TensorView<int32_t> targets)>;

class Trainer {
 public:
  // model and comm must outlive the trainer. options.seq_len must not exceed what the
  // positions allow. comm: nullptr for one process. With several ranks, Step, Evaluate,
  // SaveState and CheckParametersAgree are collectives: every rank calls them in the same order.
  Trainer(model::Model& model, const TrainOptions& options, const ThreadPool& threads,
          const Communicator* comm = nullptr);
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  // One optimizer step on batches drawn from train_tokens (the same tokens on every rank) by
  // the trainer's seeded window sampler. Every options.checksum_every steps it calls
  // CheckParametersAgree.
  StepResult Step(std::span<const int32_t> train_tokens);
  // The same on options.accum micro-batches that next_batch fills (e.g. a test's own batches).
  StepResult Step(const BatchSource& next_batch);

  // Mean loss over `batches` random windows-batches of tokens, drawn from a generator seeded
  // with `seed` (the same windows every call), without dropout. Does not touch the training
  // state. With N ranks a batch is N x options.batch windows, split as in Step.
  double Evaluate(std::span<const int32_t> tokens, int64_t batches, uint64_t seed);

  int64_t step() const { return step_; }  // optimizer steps done
  const TrainOptions& options() const { return options_; }
  int ranks() const { return sync_->ranks(); }
  // Tokens of one step over all ranks.
  int64_t tokens_per_step() const { return options_.batch * options_.accum * seq_len_ * ranks(); }

  // A hash of every parameter's bits (order-independent: a sum of splitmix64 of each value's
  // bits; docs/distributed.md gives it in numpy). Local, not a collective.
  uint64_t ParameterChecksum() const;
  // Throws qkv::Error on every rank if the ranks' parameters differ. Returns the checksum.
  uint64_t CheckParametersAgree();

  // Optimizer moments, step, random states and the resume key, as one safetensors file. With
  // a sharded optimizer the moments are gathered to rank 0; other ranks get an empty file.
  io::SafetensorsFile SaveState() const;
  // Throws qkv::Error if the file does not belong to this model or these options. Every rank
  // loads the whole file (and keeps its slice of the moments when sharded).
  void LoadState(const io::SafetensorsFile& file, const std::string& source);

 private:
  // Steps `random` through ranks x batch windows (the global batch) and fills inputs, targets
  // with this rank's slice of them.
  void SampleSlice(std::span<const int32_t> tokens, Random& random, TensorView<int32_t> inputs,
                   TensorView<int32_t> targets) const;

  model::Model& model_;
  TrainOptions options_;
  int64_t seq_len_;
  std::unique_ptr<GradientSync> sync_;
  Arena arena_;    // gradients, activations, batches
  Arena scratch_;  // temporaries inside a step
  ExecutionContext ctx_;
  model::ModelParams<float> grads_;
  model::ModelActivations<float> acts_;
  TensorView<int32_t> inputs_, targets_;  // (B, T)
  ParameterList param_list_, grad_list_;
  std::vector<ConstTensorView<float>> gradient_views_;  // for GlobalNorm
  int64_t num_params_ = 0;
  AdamWOptimizer optimizer_;
  Random data_random_, dropout_random_;
  int64_t step_ = 0;
};

}  // namespace qkv::train
