// GELU (exact and tanh), ReLU, SiLU, SwiGLU.
#include <gtest/gtest.h>

#include <cmath>

#include "qkv/ops/gelu.h"
#include "qkv/ops/relu.h"
#include "qkv/ops/silu.h"
#include "qkv/ops/swiglu.h"
#include "qkv/testing/gradient_check.h"

namespace qkv::ops {
namespace {

using testing::CheckGradients;
using testing::RandomTensor;
using testing::TestContext;

TEST(GeluTest, BackwardMatchesFiniteDifferencesForBothForms) {
  for (GeluApproximation approximation : {GeluApproximation::kNone, GeluApproximation::kTanh}) {
    TestContext test;
    Random random(1);
    auto input = RandomTensor<double>(Shape{3, 11}, random, 2.0);
    auto d_output = RandomTensor<double>(input.shape(), random);
    Tensor<double> output(input.shape()), d_input(input.shape());
    auto forward = [&] {
      GeluForward<double>(input.view(), approximation, output.view(), test.ctx);
    };
    forward();
    GeluBackward<double>(d_output.view(), input.view(), approximation, d_input.view(), test.ctx);
    for (const auto& result : CheckGradients(forward, output.view(), d_output.view(),
                                             {{"input", input.view(), d_input.view()}})) {
      EXPECT_LT(result.relative_error, 1e-8);
    }
  }
}

TEST(GeluTest, KnownValuesAndTheTwoFormsDifferSlightly) {
  TestContext test;
  Tensor<double> input(Shape{3}), exact(Shape{3}), tanh_form(Shape{3});
  input[0] = 0.0;
  input[1] = 1.0;
  input[2] = -2.0;
  GeluForward<double>(input.view(), GeluApproximation::kNone, exact.view(), test.ctx);
  GeluForward<double>(input.view(), GeluApproximation::kTanh, tanh_form.view(), test.ctx);
  // x * Phi(x), with Phi from the complementary error function (independent of erf()).
  for (int64_t i = 0; i < 3; ++i) {
    const double x = input[i];
    EXPECT_NEAR(exact[i], x * 0.5 * std::erfc(-x / std::sqrt(2.0)), 1e-15);
    EXPECT_NEAR(tanh_form[i], exact[i], 1e-3);
  }
  EXPECT_NE(exact[1], tanh_form[1]);
}

TEST(ReluTest, ForwardBackwardAndZeroGradientAtZero) {
  TestContext test;
  Tensor<float> input(Shape{4}), output(Shape{4}), d_output(Shape{4}), d_input(Shape{4});
  const float values[] = {-1.5f, 0.0f, 2.0f, -0.0f};
  for (int i = 0; i < 4; ++i) {
    input[i] = values[i];
    d_output[i] = 1.0f + i;
  }
  ReluForward<float>(input.view(), output.view(), test.ctx);
  ReluBackward<float>(d_output.view(), input.view(), d_input.view(), test.ctx);
  const float expected_output[] = {0.0f, 0.0f, 2.0f, 0.0f};
  const float expected_gradient[] = {0.0f, 0.0f, 3.0f, 0.0f};
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(output[i], expected_output[i]);
    EXPECT_EQ(d_input[i], expected_gradient[i]);
  }
}

TEST(ReluTest, BackwardMatchesFiniteDifferencesAwayFromTheKink) {
  TestContext test;
  Random random(2);
  auto input = RandomTensor<double>(Shape{2, 9}, random);
  auto d_output = RandomTensor<double>(input.shape(), random);
  Tensor<double> output(input.shape()), d_input(input.shape());
  auto forward = [&] { ReluForward<double>(input.view(), output.view(), test.ctx); };
  forward();
  ReluBackward<double>(d_output.view(), input.view(), d_input.view(), test.ctx);
  for (const auto& result : CheckGradients(forward, output.view(), d_output.view(),
                                           {{"input", input.view(), d_input.view()}})) {
    EXPECT_LT(result.relative_error, 1e-8);
  }
}

TEST(SiluTest, BackwardMatchesFiniteDifferencesAndKnownValues) {
  TestContext test;
  Random random(4);
  auto input = RandomTensor<double>(Shape{3, 7}, random, 4.0);
  auto d_output = RandomTensor<double>(input.shape(), random);
  Tensor<double> output(input.shape()), d_input(input.shape());
  auto forward = [&] { SiluForward<double>(input.view(), output.view(), test.ctx); };
  forward();
  SiluBackward<double>(d_output.view(), input.view(), d_input.view(), test.ctx);
  for (const auto& result : CheckGradients(forward, output.view(), d_output.view(),
                                           {{"input", input.view(), d_input.view()}})) {
    EXPECT_LT(result.relative_error, 1e-8);
  }
  // silu(0) = 0 with slope 1/2; silu(2) = 2 / (1 + e^-2); far tails: 0 and x.
  Tensor<double> x(Shape{4}), y(Shape{4}), ones(Shape{4}), slope(Shape{4});
  const double values[] = {0.0, 2.0, -40.0, 40.0};
  for (int i = 0; i < 4; ++i) {
    x[i] = values[i];
    ones[i] = 1.0;
  }
  SiluForward<double>(x.view(), y.view(), test.ctx);
  SiluBackward<double>(ones.view(), x.view(), slope.view(), test.ctx);
  EXPECT_EQ(y[0], 0.0);
  EXPECT_DOUBLE_EQ(slope[0], 0.5);
  EXPECT_DOUBLE_EQ(y[1], 2.0 / (1.0 + std::exp(-2.0)));
  EXPECT_NEAR(y[2], 0.0, 1e-15);
  EXPECT_DOUBLE_EQ(y[3], 40.0);
  EXPECT_NEAR(slope[3], 1.0, 1e-15);
}

TEST(SwiGluTest, BackwardMatchesFiniteDifferences) {
  TestContext test;
  Random random(3);
  auto gate = RandomTensor<double>(Shape{3, 5}, random, 2.0);
  auto up = RandomTensor<double>(Shape{3, 5}, random);
  auto d_output = RandomTensor<double>(Shape{3, 5}, random);
  Tensor<double> output(gate.shape()), d_gate(gate.shape()), d_up(up.shape());
  auto forward = [&] { SwiGluForward<double>(gate.view(), up.view(), output.view(), test.ctx); };
  forward();
  SwiGluBackward<double>(d_output.view(), gate.view(), up.view(), d_gate.view(), d_up.view(),
                         test.ctx);
  for (const auto& result :
       CheckGradients(forward, output.view(), d_output.view(),
                      {{"gate", gate.view(), d_gate.view()}, {"up", up.view(), d_up.view()}})) {
    EXPECT_LT(result.relative_error, 1e-8) << result.name;
  }
}

TEST(SwiGluTest, MismatchedHalvesAreAnError) {
  TestContext test;
  Tensor<float> gate(Shape{2, 4}), up(Shape{2, 3}), output(Shape{2, 4});
  EXPECT_THROW(SwiGluForward<float>(gate.view(), up.view(), output.view(), test.ctx), Error);
}

}  // namespace
}  // namespace qkv::ops
