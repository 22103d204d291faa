// Training windows: targets are the inputs shifted by one, every window lies inside the data,
// starts are uniform over all valid offsets, a seed reproduces a batch, short data is refused.
#include "qkv/train/batch_sampler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "qkv/core/check.h"
#include "qkv/core/tensor.h"

namespace qkv::train {
namespace {

// Token i has the id kFirstId + i, so a window's start can be read off its first input and
// a window that is not consecutive, or leaves the data, shows.
constexpr int32_t kFirstId = 1000;

std::vector<int32_t> NumberedTokens(int64_t count) {
  std::vector<int32_t> tokens(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) tokens[i] = kFirstId + static_cast<int32_t>(i);
  return tokens;
}

// Checks every window of the batch and returns the start of each.
std::vector<int64_t> CheckWindows(const std::vector<int32_t>& tokens, const Tensor<int32_t>& inputs,
                                  const Tensor<int32_t>& targets) {
  const int64_t batch = inputs.dim(0), seq = inputs.dim(1);
  const int64_t count = static_cast<int64_t>(tokens.size());
  std::vector<int64_t> starts;
  for (int64_t b = 0; b < batch; ++b) {
    const int64_t start = inputs[b * seq] - kFirstId;
    EXPECT_GE(start, 0) << "window " << b;
    // The target of the last position, tokens[start + seq], must exist.
    EXPECT_LE(start + seq, count - 1) << "window " << b << " runs past the data";
    if (start < 0 || start + seq > count - 1) continue;
    for (int64_t t = 0; t < seq; ++t) {
      EXPECT_EQ(inputs[b * seq + t], tokens[start + t]) << "window " << b << ", position " << t;
      EXPECT_EQ(targets[b * seq + t], tokens[start + t + 1])
          << "window " << b << ", position " << t;
      if (t + 1 < seq) {
        EXPECT_EQ(targets[b * seq + t], inputs[b * seq + t + 1]);
      }
    }
    starts.push_back(start);
  }
  return starts;
}

TEST(BatchSamplerTest, TargetsAreTheInputsShiftedByOneInsideTheData) {
  const std::vector<int32_t> tokens = NumberedTokens(200);
  Tensor<int32_t> inputs(Shape{16, 24}), targets(Shape{16, 24});
  Random random(1);
  for (int round = 0; round < 50; ++round) {
    SampleBatch(tokens, random, inputs.view(), targets.view());
    EXPECT_EQ(CheckWindows(tokens, inputs, targets).size(), 16u);
  }
}

TEST(BatchSamplerTest, DataOfExactlyOneWindowGivesThatWindow) {
  // T + 1 tokens leave one valid start, 0.
  const std::vector<int32_t> tokens = NumberedTokens(9);
  Tensor<int32_t> inputs(Shape{3, 8}), targets(Shape{3, 8});
  Random random(2);
  SampleBatch(tokens, random, inputs.view(), targets.view());
  for (int64_t start : CheckWindows(tokens, inputs, targets)) EXPECT_EQ(start, 0);
}

TEST(BatchSamplerTest, StartsAreUniformOverEveryValidOffset) {
  // 60 tokens and T = 10: starts 0..49 are valid (the window of T + 1 ends at token 59).
  // 2000 draws of each expected; a Binomial(100000, 1/50) count has standard deviation
  // sqrt(100000 * 0.02 * 0.98) = 44.3, so each count within 6 of them (266) fails by chance
  // with probability ~1e-7 for all 50 together, while a start that is never drawn (an
  // off-by-one at the end) or drawn twice as often fails by far.
  const int64_t count = 60, seq = 10, starts_possible = count - seq;
  const std::vector<int32_t> tokens = NumberedTokens(count);
  Tensor<int32_t> inputs(Shape{1000, seq}), targets(Shape{1000, seq});
  Random random(3);
  std::vector<int64_t> histogram(static_cast<size_t>(starts_possible), 0);
  const int64_t draws = 100'000;
  for (int64_t round = 0; round < draws / 1000; ++round) {
    SampleBatch(tokens, random, inputs.view(), targets.view());
    for (int64_t start : CheckWindows(tokens, inputs, targets)) ++histogram[start];
  }
  const double expected = static_cast<double>(draws) / static_cast<double>(starts_possible);
  const double sigma = std::sqrt(expected * (1.0 - 1.0 / static_cast<double>(starts_possible)));
  double chi_squared = 0;
  for (int64_t start = 0; start < starts_possible; ++start) {
    EXPECT_NEAR(static_cast<double>(histogram[start]), expected, 6 * sigma) << "start " << start;
    const double deviation = static_cast<double>(histogram[start]) - expected;
    chi_squared += deviation * deviation / expected;
  }
  // Chi-squared with 49 degrees of freedom: mean 49, standard deviation sqrt(98) = 9.9; 110 is
  // about 6 of them above the mean.
  EXPECT_LT(chi_squared, 110.0);
}

TEST(BatchSamplerTest, TheSameSeedGivesTheSameBatchesAndAnotherSeedOthers) {
  const std::vector<int32_t> tokens = NumberedTokens(5000);
  auto sample = [&](uint64_t seed) {
    Random random(seed);
    std::vector<int32_t> all;
    Tensor<int32_t> inputs(Shape{8, 16}), targets(Shape{8, 16});
    for (int round = 0; round < 3; ++round) {
      SampleBatch(tokens, random, inputs.view(), targets.view());
      all.insert(all.end(), inputs.data(), inputs.data() + inputs.size());
      all.insert(all.end(), targets.data(), targets.data() + targets.size());
    }
    return all;
  };
  EXPECT_EQ(sample(7), sample(7));
  // 24 starts out of 4984 each: the chance that two seeds agree on all of them is nil.
  EXPECT_NE(sample(7), sample(8));
}

TEST(BatchSamplerTest, ConsecutiveBatchesContinueTheRandomStream) {
  const std::vector<int32_t> tokens = NumberedTokens(5000);
  Tensor<int32_t> first(Shape{8, 16}), second(Shape{8, 16}), targets(Shape{8, 16});
  Random random(9);
  SampleBatch(tokens, random, first.view(), targets.view());
  SampleBatch(tokens, random, second.view(), targets.view());
  const std::vector<int32_t> a(first.data(), first.data() + first.size());
  const std::vector<int32_t> b(second.data(), second.data() + second.size());
  EXPECT_NE(a, b);
}

TEST(BatchSamplerTest, DataShorterThanOneWindowIsRefusedNamingBothNumbers) {
  Tensor<int32_t> inputs(Shape{2, 8}), targets(Shape{2, 8});
  Random random(4);
  for (int64_t count : {int64_t{0}, int64_t{1}, int64_t{8}}) {
    const std::vector<int32_t> tokens = NumberedTokens(count);
    try {
      SampleBatch(tokens, random, inputs.view(), targets.view());
      ADD_FAILURE() << count << " tokens were accepted for a window of 9";
    } catch (const Error& error) {
      const std::string message = error.what();
      EXPECT_NE(message.find("has " + std::to_string(count) + " tokens"), std::string::npos)
          << message;
      EXPECT_NE(message.find("one window of 9"), std::string::npos) << message;
    }
  }
}

}  // namespace
}  // namespace qkv::train
