// Translation with an encoder-decoder (model/encoder_decoder.h): greedy decoding and beam
// search over a batch of sources, scored as Hugging Face's generate() does with Marian's
// generation settings (../shared/SPEC.md §4, `qkv translate`):
//   - at every step the padding token is masked and the log-softmax taken over the rest;
//   - a hypothesis that emits `</s>` is finished with score (sum of its log-probabilities) /
//     length^length_penalty, length counting its generated tokens including `</s>`;
//   - `</s>` is forced at the last position max_length allows (max_length counts the start
//     token); the search for a source ends once beam hypotheses have finished
//     (early_stopping); beam 1 is exactly greedy decoding.
// The encoder runs once per batch; each decoder block's cross-attention keys and values are
// computed once from its output; the decoder's self-attention keeps a cache, and beam search
// reorders cache rows rather than recomputing.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "qkv/kernels/bf16_weight_copies.h"
#include "qkv/model/encoder_decoder.h"
#include "qkv/runtime/precision.h"
#include "qkv/runtime/thread_pool.h"

namespace qkv::infer {

struct TranslateOptions {
  int64_t beam = 1;             // K >= 1; 1 is greedy
  int64_t max_length = 0;       // decoder positions including the start token; 0: P
  double length_penalty = 1.0;  // A
  // Without the cache: every step recomputes the decoder over the whole prefix. The same
  // results; for tests of the cache.
  bool recompute = false;
  // bf16: the matrix products take bfloat16 inputs and accumulate in float32 (mixed precision,
  // runtime/precision.h), reading the weights from bf16_weights (Bf16MatrixCopies, made once
  // for many calls) or, without it, rounding them product by product. Where the CPU has no
  // bfloat16 matrix instructions Validate refuses it. The results then depend on the batch
  // (a product of a few rows and a GEMM round and sum in different orders).
  Precision precision = Precision::kFloat32;
  const Bf16WeightCopies* bf16_weights = nullptr;
  void Validate(const model::EncoderDecoderConfig& config) const;  // throws qkv::Error
};

// bfloat16 copies of every matrix the translator multiplies by (the blocks' and the tied
// head), for TranslateOptions::bf16_weights; the position tables are read row by row and get
// none.
Bf16WeightCopies Bf16MatrixCopies(const model::EncoderDecoderConfig& config,
                                  const model::EncoderDecoderParams<float>& params,
                                  const ThreadPool& threads);

struct Translation {
  std::vector<int32_t> tokens;  // generated ids without the start token and without `</s>`
  double score = 0;             // the length-normalised log-probability (greedy: summed)
};

// Translates batch after batch with one set of buffers: the encoder's activations, the
// decoder's caches and the scratch space are sized for the largest batch given (or reserved) and
// reused, so that a run of many batches takes fresh memory once. One batch at a time: not for
// concurrent calls. config, params, threads and options.bf16_weights must outlive it.
class Translator {
 public:
  // Throws qkv::Error for invalid options.
  Translator(const model::EncoderDecoderConfig& config,
             const model::EncoderDecoderParams<float>& params, const TranslateOptions& options,
             const ThreadPool& threads);
  ~Translator();
  Translator(const Translator&) = delete;
  Translator& operator=(const Translator&) = delete;

  // Sizes the buffers for batches of up to `batch` sources of up to `source_length` tokens now,
  // so that growing batches (sorted by length) do not allocate them again.
  void Reserve(int64_t batch, int64_t source_length);

  // sources: each a sequence of ids ending with `</s>` (not padded), at most P long. Returns
  // one translation per source, in order; the same whatever batches came before.
  std::vector<Translation> Translate(const std::vector<std::vector<int32_t>>& sources);

 private:
  class StepRunner;
  const model::EncoderDecoderConfig& config_;
  TranslateOptions options_;
  std::unique_ptr<StepRunner> runner_;
};

// One batch on a Translator of its own.
std::vector<Translation> Translate(const model::EncoderDecoderConfig& config,
                                   const model::EncoderDecoderParams<float>& params,
                                   const std::vector<std::vector<int32_t>>& sources,
                                   const TranslateOptions& options, const ThreadPool& threads);

}  // namespace qkv::infer
