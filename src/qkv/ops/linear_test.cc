#include "qkv/ops/linear.h"

#include <gtest/gtest.h>

#include "qkv/kernels/reference/gemm_reference.h"
#include "qkv/testing/gradient_check.h"

namespace qkv::ops {
namespace {

using testing::CheckGradients;
using testing::Convert;
using testing::MaxRelativeError;
using testing::RandomTensor;
using testing::TestContext;

TEST(LinearTest, BackwardMatchesFiniteDifferences) {
  for (bool with_bias : {true, false}) {
    TestContext test;
    Random random(1);
    auto input = RandomTensor<double>(Shape{5, 4}, random);
    auto weight = RandomTensor<double>(Shape{3, 4}, random);
    auto bias = RandomTensor<double>(Shape{3}, random);
    auto d_output = RandomTensor<double>(Shape{5, 3}, random);
    Tensor<double> output(Shape{5, 3});
    ConstTensorView<double> bias_view = with_bias ? bias.view() : ConstTensorView<double>();
    auto forward = [&] {
      LinearForward<double>(input.view(), weight.view(), bias_view, output.view(), test.ctx);
    };
    forward();
    Tensor<double> d_input(input.shape()), d_weight(weight.shape()), d_bias(bias.shape());
    LinearBackward<double>(d_output.view(), input.view(), weight.view(), d_input.view(),
                           d_weight.view(), with_bias ? d_bias.view() : TensorView<double>(),
                           test.ctx);
    std::vector<testing::GradientToCheck> checks = {{"input", input.view(), d_input.view()},
                                                    {"weight", weight.view(), d_weight.view()}};
    if (with_bias) checks.push_back({"bias", bias.view(), d_bias.view()});
    for (const auto& result : CheckGradients(forward, output.view(), d_output.view(), checks)) {
      EXPECT_LT(result.relative_error, 1e-7) << result.name << " bias=" << with_bias;
    }
  }
}

TEST(LinearTest, FloatMatchesScalarReferenceGemm) {
  TestContext test;
  Random random(2);
  const int64_t rows = 33, in = 70, out = 45;
  auto input = RandomTensor<float>(Shape{rows, in}, random);
  auto weight = RandomTensor<float>(Shape{out, in}, random);
  auto bias = RandomTensor<float>(Shape{out}, random);
  Tensor<float> output(Shape{rows, out});
  LinearForward<float>(input.view(), weight.view(), bias.view(), output.view(), test.ctx);

  auto input64 = Convert<double>(input.view());
  auto weight64 = Convert<double>(weight.view());
  Tensor<double> expected(Shape{rows, out});
  kernels::reference::Gemm<double>(kernels::Transpose::kNo, kernels::Transpose::kTranspose, rows,
                                   out, in, 1.0, input64.data(), in, weight64.data(), in, 0.0,
                                   expected.data(), out);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t o = 0; o < out; ++o) expected[r * out + o] += bias[o];
  }
  EXPECT_LT(MaxRelativeError(output.view(), expected.view()), 1e-6);
}

TEST(LinearTest, GradientsAccumulateIntoParameterGradients) {
  TestContext test;
  Random random(3);
  auto input = RandomTensor<float>(Shape{4, 3}, random);
  auto weight = RandomTensor<float>(Shape{2, 3}, random);
  auto d_output = RandomTensor<float>(Shape{4, 2}, random);
  Tensor<float> d_input(input.shape()), once(weight.shape()), twice(weight.shape());
  Tensor<float> d_bias_once(Shape{2}), d_bias_twice(Shape{2});
  LinearBackward<float>(d_output.view(), input.view(), weight.view(), d_input.view(), once.view(),
                        d_bias_once.view(), test.ctx);
  for (int i = 0; i < 2; ++i) {
    LinearBackward<float>(d_output.view(), input.view(), weight.view(), d_input.view(),
                          twice.view(), d_bias_twice.view(), test.ctx);
  }
  for (int64_t i = 0; i < once.size(); ++i) EXPECT_FLOAT_EQ(twice[i], 2 * once[i]);
  for (int64_t i = 0; i < 2; ++i) EXPECT_FLOAT_EQ(d_bias_twice[i], 2 * d_bias_once[i]);
}

TEST(LinearTest, BadShapesAreErrorsNamingTheValues) {
  TestContext test;
  Tensor<float> input(Shape{4, 3}), weight(Shape{2, 5}), output(Shape{4, 2}), bias(Shape{3});
  try {
    LinearForward<float>(input.view(), weight.view(), {}, output.view(), test.ctx);
    FAIL() << "expected an error";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("input has 3 features"), std::string::npos)
        << error.what();
  }
  Tensor<float> good_weight(Shape{2, 3});
  EXPECT_THROW(
      LinearForward<float>(input.view(), good_weight.view(), bias.view(), output.view(), test.ctx),
      Error);
  Tensor<float> empty_rows(Shape{0, 3}), empty_output(Shape{0, 2});
  EXPECT_THROW(LinearForward<float>(empty_rows.view(), good_weight.view(), {}, empty_output.view(),
                                    test.ctx),
               Error);
}

}  // namespace
}  // namespace qkv::ops
