// `qkv eval --pairs FILE.tsv` for an encoder-decoder model directory (../shared/SPEC.md §4):
// the mean cross-entropy per label token (teacher forcing: each target and its </s>, padding
// excluded, no label smoothing) over every pair, its perplexity, and with --bleu the corpus
// BLEU-4 and chrF of the model's translations of the sources against the targets.
#pragma once

#include "tools/cli/eval_command.h"

namespace qkv::cli {

// options.model is an encoder-decoder directory and options.pairs is set (RunEval decides).
int RunEvalPairs(const EvalCommandOptions& options);

}  // namespace qkv::cli
