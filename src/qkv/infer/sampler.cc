#include "qkv/infer/sampler.h"

#include <algorithm>
#include <cmath>

#include "qkv/core/check.h"

namespace qkv::infer {

namespace {

// Most likely first; equal probabilities in id order, so the result does not depend on the
// sort's stability.
bool MoreLikely(const std::pair<double, int32_t>& a, const std::pair<double, int32_t>& b) {
  return a.first > b.first || (a.first == b.first && a.second < b.second);
}

void CheckLogits(std::span<const float> logits) {
  QKV_CHECK(!logits.empty(), "sampler: empty logits");
  for (size_t i = 0; i < logits.size(); ++i) {
    QKV_CHECK(!std::isnan(logits[i]), "sampler: logit ", i, " is NaN");
  }
}

}  // namespace

void SamplerOptions::Validate() const {
  QKV_CHECK(std::isfinite(temperature) && temperature >= 0,
            "sampler: temperature must be a finite number >= 0 (0 = greedy), got ", temperature);
  QKV_CHECK(top_k >= 0, "sampler: top_k must be >= 0 (0 = off), got ", top_k);
  QKV_CHECK(top_p > 0 && top_p <= 1, "sampler: top_p must be in (0, 1] (1 = off), got ", top_p);
}

Sampler::Sampler(const SamplerOptions& options) : options_(options), random_(options.seed) {
  options_.Validate();
}

int32_t Sampler::Argmax(std::span<const float> logits) {
  CheckLogits(logits);
  size_t best = 0;
  for (size_t i = 1; i < logits.size(); ++i) {
    if (logits[i] > logits[best]) best = i;  // strict: the first maximum wins
  }
  return static_cast<int32_t>(best);
}

void Sampler::Filter(std::span<const float> logits) {
  const int64_t vocab = static_cast<int64_t>(logits.size());
  // Scaled logits relative to the maximum, in double, so exp never overflows.
  const double max_logit = logits[Argmax(logits)];
  QKV_CHECK(std::isfinite(max_logit), "sampler: the largest logit is ", max_logit);
  candidates_.clear();
  for (int64_t i = 0; i < vocab; ++i) {
    const double scaled = (static_cast<double>(logits[i]) - max_logit) / options_.temperature;
    candidates_.emplace_back(scaled, static_cast<int32_t>(i));
  }
  // top-k: keep the k largest scaled logits (ties at the boundary to the lowest ids).
  if (options_.top_k > 0 && options_.top_k < vocab) {
    std::nth_element(candidates_.begin(), candidates_.begin() + (options_.top_k - 1),
                     candidates_.end(), MoreLikely);
    candidates_.resize(static_cast<size_t>(options_.top_k));
  }
  double total = 0;
  for (auto& [value, id] : candidates_) {
    value = std::exp(value);
    total += value;
  }
  for (auto& candidate : candidates_) candidate.first /= total;
  // top-p: the smallest prefix of the most likely tokens whose mass reaches p.
  if (options_.top_p < 1.0) {
    std::sort(candidates_.begin(), candidates_.end(), MoreLikely);
    double mass = 0;
    size_t keep = 0;
    while (keep < candidates_.size()) {
      mass += candidates_[keep].first;
      ++keep;
      if (mass >= options_.top_p) break;
    }
    candidates_.resize(keep);
    for (auto& candidate : candidates_) candidate.first /= mass;
  }
}

void Sampler::Distribution(std::span<const float> logits, std::vector<double>& probabilities) {
  QKV_CHECK(options_.temperature > 0, "sampler: the distribution needs temperature > 0, got ",
            options_.temperature);
  Filter(logits);
  probabilities.assign(logits.size(), 0.0);
  for (const auto& [probability, id] : candidates_) probabilities[id] = probability;
}

int32_t Sampler::Sample(std::span<const float> logits) {
  if (options_.temperature == 0) return Argmax(logits);
  Filter(logits);
  double mass = 0;
  for (const auto& candidate : candidates_) mass += candidate.first;
  const double u = random_.Uniform() * mass;
  double cumulative = 0;
  for (const auto& [probability, id] : candidates_) {
    cumulative += probability;
    if (u < cumulative) return id;
  }
  return candidates_.back().second;  // u within rounding of the total
}

}  // namespace qkv::infer
