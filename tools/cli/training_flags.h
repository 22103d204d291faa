// The optimizer and its schedule: the flags of `qkv train` that set train::TrainOptions'
// batch, steps, learning-rate schedule, AdamW and clipping, each declared once (`qkv
// extrapolate` takes --batch and --lr too).
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>

namespace qkv::train {
struct TrainOptions;
}  // namespace qkv::train

namespace qkv::cli {

struct TrainingFlags {
  int64_t batch = 12, steps = 2000, accum = 1, warmup = 100;
  std::string lr_schedule = "cosine";  // train::ParseLrDecay's names
  std::string precision = "fp32";      // or "bf16" (runtime/precision.h)
  double lr = 1e-3, min_lr = 1e-4, weight_decay = 0.1, beta1 = 0.9, beta2 = 0.99, grad_clip = 1.0;
};

// Every flag of TrainingFlags, in the group `group` of --help.
void AddTrainingFlags(CLI::App* command, TrainingFlags& flags, const std::string& group);

// Single flags, for the commands that take only some of them; each returns its option (for the
// caller to put in a group).
CLI::Option* AddBatchFlag(CLI::App* command, int64_t& batch);
CLI::Option* AddLearningRateFlag(CLI::App* command, double& lr);

// The TrainOptions the flags set (the rest keep their defaults; --batch belongs to the task).
train::TrainOptions TrainOptionsFromFlags(const TrainingFlags& flags);

}  // namespace qkv::cli
