// `qkv eval`: the mean cross-entropy and perplexity of a model on a text file, over
// non-overlapping windows (../shared/SPEC.md §1); for an encoder-decoder, on sentence pairs
// (--pairs, --bleu: tools/cli/eval_pairs.h, SPEC §4).
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>

#include "tools/cli/model_flags.h"

namespace qkv::cli {

struct EvalCommandOptions {
  std::string model, data, tokenizer, dump_logits;
  int64_t context = 0;  // 0: the model's context
  int64_t batch = 8;    // windows per forward pass; with --pairs, sentences per translation
                        // batch of --bleu (affects speed only)
  // Encoder-decoders only:
  std::string pairs;            // source<TAB>target lines
  bool bleu = false;            // also translate the sources: BLEU-4 and chrF
  int64_t beam = 1;             // --bleu's decoding (1: greedy)
  int64_t batch_tokens = 4096;  // the loss's batches, in padded tokens (speed only)
  bool json = false;
  bool quiet = false;
  int threads = 0;
  std::string attention = "auto";
  std::string precision = "fp32";  // or "bf16" (runtime/precision.h)
  RopeScalingFlags rope_scaling;
};

CLI::App* AddEvalCommand(CLI::App& app, EvalCommandOptions& options);
int RunEval(const EvalCommandOptions& options);

}  // namespace qkv::cli
