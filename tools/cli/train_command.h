// `qkv train`: trains a language model on a text file and writes a model directory
// (../shared/SPEC.md §1). The flags are declared here (the model's in model_flags.h, the
// optimizer's in training_flags.h); a run is set up in train_setup.h, steps in train_loop.h,
// logs through train_log.h and saves its checkpoints through train_checkpoints.h.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>

#include "tools/cli/model_flags.h"
#include "tools/cli/training_flags.h"

namespace qkv::cli {

struct TrainCommandOptions {
  std::string arch = "decoder";  // or "encoder-decoder" (train_translation.h)
  std::string data, val_data, out, tokenizer = "char";
  // The encoder-decoder's data and model (train_translation.h); its defaults are Marian's:
  // --tokenizer spm:8000, --pos sinusoidal, --ffn relu, --norm-placement post.
  std::string pairs, val_pairs;
  int64_t batch_tokens = 4096;
  double label_smoothing = 0.1;
  int64_t encoder_layers = 0, decoder_layers = 0;  // 0: --layers
  int64_t max_positions = 256;
  ModelFlags model;
  TrainingFlags training;  // the optimizer and its schedule
  int64_t eval_every = 250, eval_batches = 20, save_every = 0, stop_at = 0;
  double time_limit = 0;  // seconds of this process's training loop; 0: none
  int keep_checkpoints = 1;
  // The dtype of the saved model.safetensors: "fp32" or "bf16" (rounded; the training state
  // then keeps the float32 weights, so --resume stays bitwise).
  std::string save_dtype = "fp32";
  uint64_t seed = 1337;
  int threads = 0;  // 0: every core this process may use
  std::string attention = "auto";
  bool resume = false;
  std::string init_from;  // a model directory to start from (fine-tuning); empty: a new model
  bool quiet = false;
  // Data parallel (under mpirun; docs/distributed.md).
  bool shard_optimizer = false;
  double mpi_timeout = 300.0;
  int64_t checksum_every = 100;
};

CLI::App* AddTrainCommand(CLI::App& app, TrainCommandOptions& options);
int RunTrain(const TrainCommandOptions& options, const CLI::App& command);

}  // namespace qkv::cli
