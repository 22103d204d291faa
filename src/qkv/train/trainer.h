// Trainer: the optimizer state of one model and the training step, for any TrainingTask
// (train/training_task.h: a decoder-only model on token windows, the encoder-decoder on
// sentence pairs): zero the gradients, run the task's micro-batches (accumulating), clip the
// global gradient norm, AdamW with the scheduled learning rate. Everything is allocated once,
// at construction; a step of a language model allocates nothing. The whole state round-trips
// through SaveState / LoadState, so an interrupted run that resumes gives bitwise the same
// losses as one that never stopped.
//
// Data parallel (docs/distributed.md): gradient synchronisation is a strategy
// (train/gradient_sync.h: none, all-reduce, sharded) chosen from the communicator and
// options.shard_optimizer; the step is the same for all: zero -> micro-batches -> synchronise
// -> clip -> update (train/optimizer.h) -> share the updated parameters. Every rank steps
// through the same seeded stream of global micro-batches and trains on its own slice, so N
// ranks give the losses of one process on the global batch.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <utility>
#include <vector>

#include "qkv/core/random.h"
#include "qkv/io/safetensors.h"
#include "qkv/kernels/bf16_weight_copies.h"
#include "qkv/runtime/thread_pool.h"
#include "qkv/train/adamw.h"
#include "qkv/train/gradient_sync.h"
#include "qkv/train/lr_schedule.h"
#include "qkv/train/optimizer.h"
#include "qkv/train/parameter_list.h"
#include "qkv/train/training_task.h"

namespace qkv::train {

struct TrainOptions {
  int64_t steps = 2000;
  int64_t accum = 1;  // micro-batches per optimizer step
  LrSchedule schedule;
  AdamWOptions adamw;
  double grad_clip = 1.0;  // 0 disables clipping
  uint64_t seed = 1337;
  // kBfloat16: matrix products in bfloat16 with float32 accumulation (runtime/precision.h),
  // the weight matrices rounded once per step. Not part of the resume key: a run may change
  // it when it resumes (and then continues with other losses than it would have had).
  Precision precision = Precision::kFloat32;
  // Data parallel only (not part of the resume key: a run may resume with or without them).
  bool shard_optimizer = false;  // each rank keeps 1/N of the AdamW moments
  int64_t checksum_every = 100;  // compare a parameter checksum across ranks every N steps
  void Validate() const;         // throws qkv::Error naming a bad value
  // The options that must be the same when a run resumes (all but steps); the task adds its
  // own (TrainingTask::ResumeKey).
  nlohmann::json ResumeKey() const;
};

struct StepResult {
  double loss;           // mean over the step's micro-batches (and ranks), before the update
  double learning_rate;  // used by the update
  double grad_norm;      // global norm before clipping
  int64_t tokens;        // tokens the step trained on, all ranks together
};

class Trainer {
 public:
  // task and comm must outlive the trainer. comm: nullptr for one process. With several
  // ranks, Step, Evaluate, SaveState and CheckParametersAgree are collectives: every rank calls
  // them in the same order.
  Trainer(TrainingTask& task, const TrainOptions& options, const ThreadPool& threads,
          const Communicator* comm = nullptr);
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  // One optimizer step on options.accum micro-batches of the task's training data. Every
  // options.checksum_every steps it calls CheckParametersAgree.
  StepResult Step();

  // Mean loss over `batches` evaluation batches of the task (drawn from a generator seeded
  // with `seed`: the same batches every call), without dropout. Does not touch the training
  // state.
  double Evaluate(int64_t batches, uint64_t seed);

  int64_t step() const { return step_; }  // optimizer steps done
  const TrainOptions& options() const { return options_; }
  int ranks() const { return sync_->ranks(); }
  // The settings a resumed run must repeat: the options' (all but steps) and the task's.
  nlohmann::json ResumeKey() const;

  // A hash of every parameter's bits (order-independent: a sum of splitmix64 of each value's
  // bits; docs/distributed.md gives it in numpy). Local, not a collective.
  uint64_t ParameterChecksum() const;
  // Throws qkv::Error on every rank if the ranks' parameters differ. Returns the checksum.
  uint64_t CheckParametersAgree();

  // Optimizer moments, step, random states, the task's data state and the resume key, as one
  // safetensors file; with_weights adds the float32 parameters, for a run whose saved model
  // is rounded (--save-dtype bf16) and would not resume bit for bit. With a sharded optimizer
  // the moments are gathered to rank 0; other ranks get an empty file.
  io::SafetensorsFile SaveState(bool with_weights = false) const;
  // Throws qkv::Error if the file does not belong to this model or these options. Every rank
  // loads the whole file (and keeps its slice of the moments when sharded); parameters saved
  // in it replace the model's.
  void LoadState(const io::SafetensorsFile& file, const std::string& source);

 private:
  RankSlice slice() const { return {sync_->rank(), sync_->ranks()}; }
  void RefreshBf16Weights();

  TrainingTask& task_;
  TrainOptions options_;
  std::unique_ptr<GradientSync> sync_;
  Arena scratch_;  // temporaries inside a step
  ExecutionContext ctx_;
  std::unique_ptr<Bf16WeightCopies> bf16_weights_;  // bf16 precision only
  const ParameterList& param_list_;
  const ParameterList& grad_list_;
  std::vector<ConstTensorView<float>> gradient_views_;  // for GlobalNorm
  int64_t num_params_ = 0;
  AdamWOptimizer optimizer_;
  Random data_random_, dropout_random_;
  int64_t step_ = 0;
};

}  // namespace qkv::train
