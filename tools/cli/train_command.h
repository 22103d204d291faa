// `qkv train`: trains a language model on a text file and writes a model directory
// (../shared/SPEC.md §1).
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>

#include "tools/cli/rope_scaling_flags.h"

namespace qkv::cli {

struct TrainCommandOptions {
  std::string data, val_data, out, tokenizer = "char";
  // Model.
  int64_t layers = 4, heads = 4, dim = 128, ffn_dim = 0, context = 64;
  std::string position = "learned", norm = "layernorm", ffn = "gelu-tanh", norm_placement = "pre",
              rope_style = "half";
  double rope_theta = 10000.0;
  RopeScalingFlags rope_scaling;  // e.g. to train at a longer context than a model was made for
  bool bias = true;
  float dropout = 0.0f;
  // Training.
  int64_t batch = 12, steps = 2000, accum = 1, warmup = 100;
  double lr = 1e-3, min_lr = 1e-4, weight_decay = 0.1, beta1 = 0.9, beta2 = 0.99, grad_clip = 1.0;
  int64_t eval_every = 250, eval_batches = 20, save_every = 0, stop_at = 0;
  int keep_checkpoints = 1;
  uint64_t seed = 1337;
  int threads = 0;  // 0: every core this process may use
  std::string attention = "auto";
  bool resume = false;
  bool quiet = false;
  // Data parallel (under mpirun; docs/distributed.md).
  bool shard_optimizer = false;
  double mpi_timeout = 300.0;
  int64_t checksum_every = 100;
};

CLI::App* AddTrainCommand(CLI::App& app, TrainCommandOptions& options);
int RunTrain(const TrainCommandOptions& options, const CLI::App& command);

}  // namespace qkv::cli
