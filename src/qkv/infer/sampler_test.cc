// The sampler: greedy and its ties, top-k, top-p, the distribution of many seeded draws
// against softmax(logits / T), reproducibility, and option errors.
#include "qkv/infer/sampler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "qkv/core/check.h"

namespace qkv::infer {
namespace {

std::vector<double> Softmax(const std::vector<float>& logits, double temperature) {
  double max = -INFINITY, total = 0;
  for (float l : logits) max = std::max(max, static_cast<double>(l));
  std::vector<double> p;
  for (float l : logits) {
    p.push_back(std::exp((l - max) / temperature));
    total += p.back();
  }
  for (double& value : p) value /= total;
  return p;
}

TEST(SamplerTest, GreedyPicksTheArgmaxAndTiesGoToTheLowestId) {
  Sampler greedy({.temperature = 0});
  EXPECT_EQ(greedy.Sample(std::vector<float>{0.1f, 3.0f, -2.0f, 2.9f}), 1);
  EXPECT_EQ(greedy.Sample(std::vector<float>{1.0f, 5.0f, 5.0f, 5.0f}), 1);
  EXPECT_EQ(greedy.Sample(std::vector<float>{-INFINITY, -1.0f}), 1);
  EXPECT_EQ(Sampler::Argmax(std::vector<float>{2.0f, 2.0f}), 0);
}

TEST(SamplerTest, TopKOneAndTinyTopPAreGreedy) {
  Random random(11);
  Sampler top_k({.temperature = 1.5, .top_k = 1, .seed = 4});
  Sampler top_p({.temperature = 1.5, .top_p = 1e-9, .seed = 4});
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<float> logits(17);
    for (float& l : logits) l = static_cast<float>(random.Normal());
    const int32_t best = Sampler::Argmax(logits);
    EXPECT_EQ(top_k.Sample(logits), best);
    EXPECT_EQ(top_p.Sample(logits), best);
  }
}

TEST(SamplerTest, TopKAndTopPKeepTheRightSets) {
  // Probabilities 0.5, 0.3, 0.15, 0.05 at temperature 1.
  const std::vector<float> logits = {std::log(0.15f), std::log(0.5f), std::log(0.05f),
                                     std::log(0.3f)};
  std::vector<double> p;
  Sampler({.temperature = 1, .top_k = 2}).Distribution(logits, p);
  EXPECT_NEAR(p[1], 0.5 / 0.8, 1e-6);
  EXPECT_NEAR(p[3], 0.3 / 0.8, 1e-6);
  EXPECT_EQ(p[0], 0);
  EXPECT_EQ(p[2], 0);
  Sampler({.temperature = 1, .top_p = 0.75}).Distribution(logits, p);  // 0.5 + 0.3 >= 0.75
  EXPECT_NEAR(p[1], 0.5 / 0.8, 1e-6);
  EXPECT_EQ(p[0], 0);
  Sampler({.temperature = 1, .top_p = 0.9}).Distribution(logits, p);  // needs 0.15 as well
  EXPECT_NEAR(p[0], 0.15 / 0.95, 1e-6);
  EXPECT_EQ(p[2], 0);
  Sampler({.temperature = 1, .top_k = 100}).Distribution(logits, p);  // k > V keeps all
  EXPECT_NEAR(p[2], 0.05, 1e-6);
}

// Frequencies of many seeded draws against the expected probabilities, each within 5
// binomial standard deviations sqrt(p (1 - p) / n) (plus a little for p near 0).
void ExpectFrequencies(const SamplerOptions& options, const std::vector<float>& logits,
                       const std::vector<double>& expected) {
  Sampler sampler(options);
  const int draws = 200000;
  std::vector<int> counts(logits.size(), 0);
  for (int i = 0; i < draws; ++i) ++counts[sampler.Sample(logits)];
  for (size_t id = 0; id < logits.size(); ++id) {
    const double p = expected[id], frequency = static_cast<double>(counts[id]) / draws;
    const double tolerance = 5 * std::sqrt(p * (1 - p) / draws) + 1e-9;
    EXPECT_NEAR(frequency, p, tolerance) << "token " << id;
    if (p == 0) {
      EXPECT_EQ(counts[id], 0) << "token " << id;
    }
  }
}

TEST(SamplerTest, FrequenciesMatchTheSoftmaxOfTheScaledLogits) {
  const std::vector<float> logits = {1.0f, 2.0f, 0.5f, -1.0f, 1.5f, -3.0f};
  for (const double temperature : {0.7, 1.0, 2.0}) {
    SCOPED_TRACE(temperature);
    ExpectFrequencies({.temperature = temperature, .seed = 99}, logits,
                      Softmax(logits, temperature));
  }
  // top-k 3 at T = 0.7: the softmax of the three largest, renormalised.
  std::vector<double> top3 = Softmax(logits, 0.7);
  const double kept = top3[1] + top3[4] + top3[0];
  for (size_t i = 0; i < top3.size(); ++i)
    top3[i] = (i == 0 || i == 1 || i == 4) ? top3[i] / kept : 0;
  ExpectFrequencies({.temperature = 0.7, .top_k = 3, .seed = 5}, logits, top3);
  // top-p 0.6 at T = 1: p = .44, .27, .16, ... so tokens 1 and 4 (0.71 >= 0.6).
  std::vector<double> nucleus = Softmax(logits, 1.0);
  const double mass = nucleus[1] + nucleus[4];
  ASSERT_GE(mass, 0.6);
  ASSERT_LT(nucleus[1], 0.6);
  for (size_t i = 0; i < nucleus.size(); ++i)
    nucleus[i] = (i == 1 || i == 4) ? nucleus[i] / mass : 0;
  ExpectFrequencies({.temperature = 1.0, .top_p = 0.6, .seed = 6}, logits, nucleus);
}

TEST(SamplerTest, TheSameSeedGivesTheSameTokens) {
  const std::vector<float> logits = {0.3f, 0.1f, 0.2f, 0.25f, 0.0f};
  auto draw = [&](uint64_t seed) {
    Sampler sampler({.temperature = 1.0, .top_p = 0.9, .seed = seed});
    std::vector<int32_t> ids(64);
    for (int32_t& id : ids) id = sampler.Sample(logits);
    return ids;
  };
  EXPECT_EQ(draw(42), draw(42));
  EXPECT_NE(draw(42), draw(43));
}

void ExpectOptionError(const SamplerOptions& options, const std::string& text) {
  try {
    Sampler sampler(options);
    FAIL() << "no error for " << text;
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find(text), std::string::npos) << error.what();
  }
}

TEST(SamplerTest, BadOptionsAndLogitsAreErrors) {
  ExpectOptionError({.temperature = -0.5}, "temperature must be a finite number >= 0");
  ExpectOptionError({.temperature = std::numeric_limits<double>::quiet_NaN()}, "temperature");
  ExpectOptionError({.temperature = INFINITY}, "temperature");
  ExpectOptionError({.top_k = -1}, "top_k must be >= 0 (0 = off), got -1");
  ExpectOptionError({.top_p = 0}, "top_p must be in (0, 1] (1 = off), got 0");
  ExpectOptionError({.top_p = 1.5}, "top_p must be in (0, 1] (1 = off), got 1.5");
  Sampler sampler({.temperature = 1});
  EXPECT_THROW(sampler.Sample(std::vector<float>{}), Error);
  EXPECT_THROW(sampler.Sample(std::vector<float>{0.0f, NAN}), Error);
  EXPECT_THROW(sampler.Sample(std::vector<float>{-INFINITY, -INFINITY}), Error);
}

}  // namespace
}  // namespace qkv::infer
