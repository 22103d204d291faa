// Inverted dropout: the mask's statistics, the exact 1/(1-p) scaling, p == 0, the backward
// pass, reproducibility from a seed, and the argument checks.
#include "qkv/ops/dropout.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

#include "qkv/core/check.h"
#include "qkv/testing/gradient_check.h"

namespace qkv::ops {
namespace {

using testing::RandomTensor;
using testing::TestContext;

int64_t CountKept(ConstTensorView<uint8_t> mask) {
  int64_t kept = 0;
  for (int64_t i = 0; i < mask.size(); ++i) kept += mask[i];
  return kept;
}

TEST(DropoutTest, KeepFractionIsOneMinusPWithinABinomialBound) {
  // Each element is kept independently with probability q = 1 - p, so the kept count is
  // Binomial(n, q) with standard deviation sqrt(n q (1 - q)); 6 of them is exceeded with
  // probability ~2e-9 by a correct mask, while a mask that keeps with probability p (the
  // threshold inverted) or 1 - p +- 0.01 misses by more than 20 of them at n = 2^20.
  TestContext test;
  const int64_t n = int64_t{1} << 20;
  Tensor<float> input(Shape{n}), output(Shape{n});
  Tensor<uint8_t> mask(Shape{n});
  for (int64_t i = 0; i < n; ++i) input[i] = 1.0f;
  for (float p : {0.1f, 0.3f, 0.5f, 0.9f}) {
    Random random(42);
    DropoutForward<float>(input.view(), p, random, mask.view(), output.view(), test.ctx);
    const double q = 1.0 - static_cast<double>(p);
    const double sigma = std::sqrt(static_cast<double>(n) * q * (1.0 - q));
    EXPECT_NEAR(static_cast<double>(CountKept(mask.view())), static_cast<double>(n) * q, 6 * sigma)
        << "p = " << p;
    // The same bound for each half (sigma / sqrt(2) each): the mask is not kept in one region
    // and dropped in another.
    const ConstTensorView<uint8_t> first(mask.data(), Shape{n / 2});
    const ConstTensorView<uint8_t> second(mask.data() + n / 2, Shape{n / 2});
    for (const ConstTensorView<uint8_t>& half : {first, second}) {
      EXPECT_NEAR(static_cast<double>(CountKept(half)), static_cast<double>(n) / 2 * q,
                  6 * sigma / std::sqrt(2.0))
          << "p = " << p;
    }
  }
}

TEST(DropoutTest, NeighboursAndConsecutiveCallsAreIndependent) {
  // The mask is drawn per element from a key and the element's index: neighbours within a call
  // and the same element in two calls from one Random must be independent. Both are kept with
  // probability q^2 each, so their joint count is Binomial(n, q^2); 6 standard deviations.
  // A mask that repeats between calls (the key not advancing) or that keeps runs of
  // neighbours misses by far more.
  TestContext test;
  const int64_t n = int64_t{1} << 20;
  Tensor<float> input(Shape{n}), output(Shape{n});
  Tensor<uint8_t> first(Shape{n}), second(Shape{n});
  for (int64_t i = 0; i < n; ++i) input[i] = 1.0f;
  Random random(7);
  const float p = 0.5f;
  DropoutForward<float>(input.view(), p, random, first.view(), output.view(), test.ctx);
  DropoutForward<float>(input.view(), p, random, second.view(), output.view(), test.ctx);
  int64_t both_calls = 0, both_neighbours = 0;
  for (int64_t i = 0; i < n; ++i) {
    both_calls += first[i] & second[i];
    if (i + 1 < n) both_neighbours += first[i] & first[i + 1];
  }
  const double q2 = 0.25, sigma = std::sqrt(static_cast<double>(n) * q2 * (1 - q2));
  EXPECT_NEAR(static_cast<double>(both_calls), static_cast<double>(n) * q2, 6 * sigma);
  EXPECT_NEAR(static_cast<double>(both_neighbours), static_cast<double>(n - 1) * q2, 6 * sigma);
}

TEST(DropoutTest, KeptValuesAreScaledExactlyAndDroppedOnesAreZero) {
  // p = 0.75 and 0.5: 1/(1-p) is 4 or 2, a power of two, so x * scale and x / (1 - p) are
  // both exact and the comparison can be ==. Inputs are nonzero so a kept 0 cannot hide.
  for (float p : {0.5f, 0.75f}) {
    TestContext test;
    Random values(3);
    auto input = RandomTensor<float>(Shape{64, 33}, values);
    for (int64_t i = 0; i < input.size(); ++i) {
      if (input[i] == 0.0f) input[i] = 1.0f;
    }
    Tensor<float> output(input.shape());
    Tensor<uint8_t> mask(input.shape());
    Random random(7);
    DropoutForward<float>(input.view(), p, random, mask.view(), output.view(), test.ctx);
    const float scale = 1.0f / (1.0f - p);
    int64_t kept = 0;
    for (int64_t i = 0; i < input.size(); ++i) {
      ASSERT_TRUE(mask[i] == 0 || mask[i] == 1) << "mask entries are 0 or 1, got " << +mask[i];
      if (mask[i] == 1) {
        EXPECT_EQ(output[i], input[i] * scale) << i;
        EXPECT_EQ(output[i], input[i] / (1.0f - p)) << i;
        ++kept;
      } else {
        EXPECT_EQ(output[i], 0.0f) << i;
      }
    }
    // Both kinds occur, so neither branch above went untested.
    EXPECT_GT(kept, 0);
    EXPECT_LT(kept, input.size());
  }
}

TEST(DropoutTest, ScaleForANonPowerOfTwoKeepProbabilityIsCorrectlyRounded) {
  // p = 0.1: the op computes 1 - p, its reciprocal and the product in float, three roundings
  // of half an ulp each, so each output is within 2 float ulps of x / (1 - p) in double.
  TestContext test;
  Random values(5);
  auto input = RandomTensor<float>(Shape{1000}, values);
  Tensor<float> output(input.shape());
  Tensor<uint8_t> mask(input.shape());
  Random random(11);
  const float p = 0.1f;
  DropoutForward<float>(input.view(), p, random, mask.view(), output.view(), test.ctx);
  for (int64_t i = 0; i < input.size(); ++i) {
    const double expected =
        mask[i] ? static_cast<double>(input[i]) / (1.0 - static_cast<double>(p)) : 0.0;
    EXPECT_NEAR(output[i], expected, 2 * std::numeric_limits<float>::epsilon() * std::abs(expected))
        << i;
  }
}

TEST(DropoutTest, PZeroIsTheIdentityWithAFullMaskAndDrawsNothing) {
  TestContext test;
  Random values(9);
  auto input = RandomTensor<double>(Shape{17, 5}, values);
  Tensor<double> output(input.shape());
  Tensor<uint8_t> mask(input.shape());
  Random random(13);
  DropoutForward<double>(input.view(), 0.0f, random, mask.view(), output.view(), test.ctx);
  for (int64_t i = 0; i < input.size(); ++i) {
    EXPECT_EQ(mask[i], 1) << i;
    EXPECT_EQ(output[i], input[i]) << i;
  }
  // The backward pass at p == 0 passes the gradient through unchanged as well.
  Tensor<double> d_input(input.shape());
  DropoutBackward<double>(input.view(), mask.view(), 0.0f, d_input.view(), test.ctx);
  for (int64_t i = 0; i < input.size(); ++i) EXPECT_EQ(d_input[i], input[i]) << i;
}

TEST(DropoutTest, BackwardIsMaskTimesScaleTimesTheOutputGradient) {
  for (float p : {0.3f, 0.5f, 0.75f}) {
    TestContext test;
    Random values(17);
    auto input = RandomTensor<double>(Shape{8, 40}, values);
    auto d_output = RandomTensor<double>(input.shape(), values);
    Tensor<double> output(input.shape()), d_input(input.shape());
    Tensor<uint8_t> mask(input.shape());
    Random random(19);
    DropoutForward<double>(input.view(), p, random, mask.view(), output.view(), test.ctx);
    DropoutBackward<double>(d_output.view(), mask.view(), p, d_input.view(), test.ctx);
    // d_output / (1 - p) directly, not through a reciprocal: within 2 double ulps of the op's
    // d_output * (1 / (1 - p)) (and equal for p = 0.5, 0.75, where 1 / (1 - p) is exact).
    const double keep = 1.0 - static_cast<double>(p);
    int64_t kept = 0;
    for (int64_t i = 0; i < input.size(); ++i) {
      const double expected = mask[i] ? d_output[i] / keep : 0.0;
      EXPECT_NEAR(d_input[i], expected,
                  2 * std::numeric_limits<double>::epsilon() * std::abs(expected))
          << i;
      kept += mask[i];
    }
    EXPECT_GT(kept, 0);
    EXPECT_LT(kept, input.size());
    // d_input may alias d_output.
    DropoutBackward<double>(d_output.view(), mask.view(), p, d_output.view(), test.ctx);
    for (int64_t i = 0; i < input.size(); ++i) EXPECT_EQ(d_output[i], d_input[i]) << i;
  }
}

TEST(DropoutTest, TheSameSeedGivesTheSameMaskWhateverTheThreadCount) {
  // Larger than the op's 16384-element grain, so several threads share the scaling loop.
  const int64_t n = 100'000;
  Random values(23);
  auto input = RandomTensor<float>(Shape{n}, values);
  auto run = [&](uint64_t seed, int threads, Tensor<uint8_t>& mask, Tensor<float>& output) {
    TestContext test(threads);
    Random random(seed);
    DropoutForward<float>(input.view(), 0.4f, random, mask.view(), output.view(), test.ctx);
  };
  Tensor<uint8_t> mask_a(Shape{n}), mask_b(Shape{n}), mask_c(Shape{n});
  Tensor<float> output_a(Shape{n}), output_b(Shape{n}), output_c(Shape{n});
  run(99, 1, mask_a, output_a);
  run(99, 4, mask_b, output_b);
  run(100, 1, mask_c, output_c);
  int64_t differing = 0;
  for (int64_t i = 0; i < n; ++i) {
    ASSERT_EQ(mask_a[i], mask_b[i]) << i;
    ASSERT_EQ(output_a[i], output_b[i]) << i;
    differing += mask_a[i] != mask_c[i];
  }
  // Another seed gives another mask: two independent masks with keep probability 0.6 differ
  // at 2 * 0.6 * 0.4 = 48% of the positions.
  EXPECT_GT(differing, n / 4);
}

TEST(DropoutTest, OutputMayAliasTheInput) {
  TestContext test;
  Random values(29);
  auto data = RandomTensor<float>(Shape{300}, values);
  auto original = data.Clone();
  Tensor<uint8_t> mask(data.shape());
  Random random(31);
  DropoutForward<float>(data.view(), 0.5f, random, mask.view(), data.view(), test.ctx);
  for (int64_t i = 0; i < data.size(); ++i) {
    EXPECT_EQ(data[i], mask[i] ? original[i] * 2.0f : 0.0f) << i;
  }
}

TEST(DropoutTest, ProbabilitiesOutsideZeroToOneAndWrongShapesAreRejected) {
  TestContext test;
  Tensor<float> input(Shape{4, 3}), output(Shape{4, 3}), wrong(Shape{3, 4});
  Tensor<uint8_t> mask(Shape{4, 3}), wrong_mask(Shape{12});
  Random random(37);
  for (float p : {-0.1f, 1.0f, 1.5f, std::numeric_limits<float>::quiet_NaN(),
                  std::numeric_limits<float>::infinity()}) {
    EXPECT_THROW(
        DropoutForward<float>(input.view(), p, random, mask.view(), output.view(), test.ctx), Error)
        << "p = " << p;
    EXPECT_THROW(DropoutBackward<float>(input.view(), mask.view(), p, output.view(), test.ctx),
                 Error)
        << "p = " << p;
  }
  try {
    DropoutForward<float>(input.view(), 1.0f, random, mask.view(), output.view(), test.ctx);
    ADD_FAILURE() << "p = 1 was accepted";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("p must be in [0, 1)"), std::string::npos)
        << error.what();
  }
  EXPECT_THROW(
      DropoutForward<float>(input.view(), 0.5f, random, mask.view(), wrong.view(), test.ctx),
      Error);
  EXPECT_THROW(
      DropoutForward<float>(input.view(), 0.5f, random, wrong_mask.view(), output.view(), test.ctx),
      Error);
  EXPECT_THROW(
      DropoutBackward<float>(input.view(), wrong_mask.view(), 0.5f, output.view(), test.ctx),
      Error);
  EXPECT_THROW(DropoutBackward<float>(input.view(), mask.view(), 0.5f, wrong.view(), test.ctx),
               Error);
}

}  // namespace
}  // namespace qkv::ops
