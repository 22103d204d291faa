// Choosing the next token from a row of logits, as Hugging Face's generate() does with
// do_sample: logits / temperature, then top-k, then top-p (nucleus), then a draw from the
// renormalised softmax. temperature 0 is greedy decoding: the largest logit, ties going to
// the lowest id, with no random draw, so it is the same on every run.
//
//   Sampler sampler({.temperature = 0.8, .top_k = 40, .top_p = 0.95, .seed = 1337});
//   int32_t next = sampler.Sample(logits_row);  // logits_row: (V)
#pragma once

#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "qkv/core/random.h"

namespace qkv::infer {

struct SamplerOptions {
  double temperature = 0.8;  // >= 0 and finite; 0 = greedy
  int64_t top_k = 0;         // >= 0; 0 = off; keep the k most likely tokens (k > V: all)
  double top_p = 1.0;        // in (0, 1]; 1 = off; keep the smallest set of the most likely
                             // tokens whose probabilities sum to >= top_p (at least one)
  uint64_t seed = 1337;      // the same seed and logits give the same tokens
  // Throws qkv::Error naming the bad option and its value.
  void Validate() const;
};

class Sampler {
 public:
  explicit Sampler(const SamplerOptions& options);  // validates

  const SamplerOptions& options() const { return options_; }

  // logits: (V), V >= 1, no NaN. Returns an id in [0, V).
  int32_t Sample(std::span<const float> logits);

  // The largest logit; ties go to the lowest id.
  static int32_t Argmax(std::span<const float> logits);

  // The probabilities Sample draws from (after temperature, top-k and top-p), for tests and
  // inspection: probabilities (V), 0 for filtered tokens, summing to 1. temperature must be > 0.
  void Distribution(std::span<const float> logits, std::vector<double>& probabilities);

 private:
  // Leaves the kept tokens and their probabilities (summing to 1) in candidates_.
  // Needs temperature > 0.
  void Filter(std::span<const float> logits);

  SamplerOptions options_;
  Random random_;
  // Reused between calls so that sampling does not allocate per token once warm.
  std::vector<std::pair<double, int32_t>> candidates_;  // (probability, id)
};

}  // namespace qkv::infer
