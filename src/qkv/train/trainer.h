// Trainer: one model's optimizer state, gradients and activations, and the training step:
// sample a batch, forward, backward (accumulating over micro-batches), clip the global gradient
// norm, AdamW with the scheduled learning rate. Everything is allocated once, at construction;
// a step allocates nothing. The whole state round-trips through SaveState / LoadState, so an
// interrupted run that resumes gives bitwise the same losses as one that never stopped.
//
// Data parallel (docs/distributed.md): with a Communicator of N ranks, every rank steps through
// the same seeded stream of windows, N x batch per micro-batch, and trains on its own slice of
// batch windows; gradients are averaged over the ranks (weighted by counted targets) with
// bucketed allreduces, and every rank applies the same AdamW update, so N ranks x batch B give
// the losses of one process x batch N*B. With shard_optimizer each rank keeps and updates only
// its 1/N of the AdamW moments and parameters, then the parameter slices are gathered.
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
#include "qkv/train/distributed.h"
#include "qkv/train/lr_schedule.h"

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

// Every (info, view) of one parameter set, in model::ForEachParameter order.
using ParameterList = std::vector<std::pair<model::ParameterInfo, TensorView<float>>>;

class Trainer {
 public:
  // model and comm must outlive the trainer. options.seq_len must not exceed what the
  // positions allow. comm: nullptr for one process. With several ranks, Step, Evaluate,
  // SaveState and CheckParametersAgree are collectives: every rank calls them in the same order.
  Trainer(model::Model& model, const TrainOptions& options, const ThreadPool& threads,
          const Communicator* comm = nullptr);

  // One optimizer step on batches drawn from train_tokens (the same tokens on every rank).
  // Every options.checksum_every steps it calls CheckParametersAgree.
  StepResult Step(std::span<const int32_t> train_tokens);

  // Mean loss over `batches` random windows-batches of tokens, drawn from a generator seeded
  // with `seed` (the same windows every call), without dropout. Does not touch the training
  // state. With N ranks a batch is N x options.batch windows, split as in Step.
  double Evaluate(std::span<const int32_t> tokens, int64_t batches, uint64_t seed);

  int64_t step() const { return step_; }  // optimizer steps done
  const TrainOptions& options() const { return options_; }
  int ranks() const { return comm_ != nullptr ? comm_->size() : 1; }
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
  std::vector<ConstTensorView<float>> gradient_const_views_;  // the same, for GlobalNorm
  std::vector<AdamWTensor> adamw_tensors_;  // every parameter with its gradient and moments
  Random data_random_, dropout_random_;
  int64_t step_ = 0;

  // Data parallel state (unused with one rank).
  // A contiguous piece of one parameter tensor: elements [offset, offset + length) of
  // param_list_[tensor], at `flat` in the concatenation of all parameters.
  struct Piece {
    size_t tensor;
    int64_t offset, length, flat;
  };
  void SampleSlice(std::span<const int32_t> tokens, Random& random);
  void AverageGradients(double weight);
  void ShardedUpdate(double learning_rate);
  const Communicator* comm_;
  int64_t num_params_ = 0;
  std::vector<float> flat_;  // all parameters or gradients, concatenated
  // The optimizer shard: this rank owns flat elements [shard_begin_, shard_end_).
  int64_t shard_begin_ = 0, shard_end_ = 0;
  std::vector<Piece> shard_pieces_;
  std::vector<float> shard_m_, shard_v_;
  std::vector<int> shard_counts_, shard_displacements_;  // per rank, for the gathers
};

}  // namespace qkv::train
