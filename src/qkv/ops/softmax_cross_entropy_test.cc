// Softmax and the fused softmax + cross-entropy.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "qkv/ops/cross_entropy.h"
#include "qkv/ops/softmax.h"
#include "qkv/testing/gradient_check.h"

namespace qkv::ops {
namespace {

using testing::CheckGradients;
using testing::RandomTensor;
using testing::TestContext;

TEST(SoftmaxTest, BackwardMatchesFiniteDifferences) {
  TestContext test;
  Random random(1);
  auto input = RandomTensor<double>(Shape{4, 6}, random, 3.0);
  auto d_output = RandomTensor<double>(input.shape(), random);
  Tensor<double> output(input.shape()), d_input(input.shape());
  auto forward = [&] { SoftmaxForward<double>(input.view(), output.view(), test.ctx); };
  forward();
  SoftmaxBackward<double>(d_output.view(), output.view(), d_input.view(), test.ctx);
  for (const auto& result : CheckGradients(forward, output.view(), d_output.view(),
                                           {{"input", input.view(), d_input.view()}})) {
    EXPECT_LT(result.relative_error, 1e-8);
  }
}

TEST(SoftmaxTest, MinusInfinityGetsExactlyZeroAndRowsSumToOne) {
  TestContext test;
  const float inf = std::numeric_limits<float>::infinity();
  Tensor<float> input(Shape{3, 4}), output(Shape{3, 4});
  const float values[] = {1, -inf, 3, 1000, -inf, -inf, -inf, -inf, 0, 0, 0, -inf};
  for (int i = 0; i < 12; ++i) input[i] = values[i];
  SoftmaxForward<float>(input.view(), output.view(), test.ctx);
  EXPECT_EQ(output[1], 0.0f);
  EXPECT_NEAR(output[3], 1.0f, 1e-6);  // no overflow at 1000: the max is subtracted
  for (int i = 4; i < 8; ++i) EXPECT_EQ(output[i], 0.0f);  // an all -inf row is all zeros
  EXPECT_EQ(output[11], 0.0f);
  EXPECT_NEAR(output[8] + output[9] + output[10], 1.0f, 1e-6);
  for (float value : output.view()) EXPECT_FALSE(std::isnan(value));
}

TEST(CrossEntropyTest, BackwardMatchesFiniteDifferencesWithIgnoredRows) {
  TestContext test;
  Random random(2);
  const int64_t rows = 5, vocab = 7;
  auto logits = RandomTensor<double>(Shape{rows, vocab}, random, 2.0);
  Tensor<int32_t> targets(Shape{rows});
  const int32_t target_values[] = {3, kDefaultIgnoreIndex, 0, 6, kDefaultIgnoreIndex};
  for (int64_t r = 0; r < rows; ++r) targets[r] = target_values[r];
  Tensor<double> logsumexp(Shape{rows}), d_logits(logits.shape());
  const double d_loss = 0.7;
  CrossEntropyForward<double>(logits.view(), targets.view(), kDefaultIgnoreIndex, logsumexp.view(),
                              test.ctx);
  CrossEntropyBackward<double>(d_loss, logits.view(), targets.view(), kDefaultIgnoreIndex,
                               logsumexp.view(), d_logits.view(), test.ctx);
  Tensor<double> numerical = testing::NumericalGradient(logits.view(), [&] {
    return d_loss * CrossEntropyForward<double>(logits.view(), targets.view(), kDefaultIgnoreIndex,
                                                logsumexp.view(), test.ctx);
  });
  EXPECT_LT(testing::MaxRelativeError(d_logits.view(), numerical.view()), 1e-8);
  for (int64_t v = 0; v < vocab; ++v) EXPECT_EQ(d_logits[1 * vocab + v], 0.0);
}

TEST(CrossEntropyTest, LossEqualsMeanNegativeLogProbability) {
  TestContext test;
  Random random(3);
  const int64_t rows = 4, vocab = 5;
  auto logits = RandomTensor<double>(Shape{rows, vocab}, random);
  Tensor<int32_t> targets(Shape{rows});
  for (int64_t r = 0; r < rows; ++r) targets[r] = static_cast<int32_t>(r);
  Tensor<double> logsumexp(Shape{rows});
  const double loss =
      CrossEntropyForward<double>(logits.view(), targets.view(), -100, logsumexp.view(), test.ctx);
  double expected = 0;
  for (int64_t r = 0; r < rows; ++r) {
    double sum = 0;
    for (int64_t v = 0; v < vocab; ++v) sum += std::exp(logits[r * vocab + v]);
    expected -= std::log(std::exp(logits[r * vocab + r]) / sum);
  }
  EXPECT_NEAR(loss, expected / rows, 1e-12);
}

TEST(CrossEntropyTest, AllIgnoredGivesZeroLossAndGradient) {
  TestContext test;
  Tensor<float> logits(Shape{2, 3}), logsumexp(Shape{2}), d_logits(Shape{2, 3});
  Tensor<int32_t> targets(Shape{2});
  targets[0] = targets[1] = -1;
  EXPECT_EQ(
      CrossEntropyForward<float>(logits.view(), targets.view(), -1, logsumexp.view(), test.ctx),
      0.0f);
  CrossEntropyBackward<float>(1.0f, logits.view(), targets.view(), -1, logsumexp.view(),
                              d_logits.view(), test.ctx);
  for (float value : d_logits.view()) EXPECT_EQ(value, 0.0f);
}

TEST(CrossEntropyTest, TargetOutsideVocabularyIsAnErrorNamingIt) {
  TestContext test;
  Tensor<float> logits(Shape{2, 3}), logsumexp(Shape{2});
  Tensor<int32_t> targets(Shape{2});
  targets[1] = 3;
  try {
    CrossEntropyForward<float>(logits.view(), targets.view(), -100, logsumexp.view(), test.ctx);
    FAIL();
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("target 3 at row 1"), std::string::npos)
        << error.what();
  }
}

}  // namespace
}  // namespace qkv::ops
