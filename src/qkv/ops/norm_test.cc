// LayerNorm and RMSNorm.
#include <gtest/gtest.h>

#include "qkv/ops/layer_norm.h"
#include "qkv/ops/rms_norm.h"
#include "qkv/testing/gradient_check.h"

namespace qkv::ops {
namespace {

using testing::CheckGradients;
using testing::Convert;
using testing::MaxRelativeError;
using testing::RandomTensor;
using testing::TestContext;

TEST(LayerNormTest, BackwardMatchesFiniteDifferences) {
  for (bool with_beta : {true, false}) {
    TestContext test;
    Random random(1);
    const int64_t rows = 4, cols = 7;
    auto input = RandomTensor<double>(Shape{rows, cols}, random, 2.0);
    auto gamma = RandomTensor<double>(Shape{cols}, random);
    auto beta = RandomTensor<double>(Shape{cols}, random);
    auto d_output = RandomTensor<double>(Shape{rows, cols}, random);
    Tensor<double> output(input.shape()), mean(Shape{rows}), rstd(Shape{rows});
    LayerNormSaved<double> saved{mean.view(), rstd.view()};
    ConstTensorView<double> beta_view = with_beta ? beta.view() : ConstTensorView<double>();
    auto forward = [&] {
      LayerNormForward<double>(input.view(), gamma.view(), beta_view, 1e-5, output.view(), saved,
                               test.ctx);
    };
    forward();
    Tensor<double> d_input(input.shape()), d_gamma(gamma.shape()), d_beta(beta.shape());
    LayerNormBackward<double>(d_output.view(), input.view(), gamma.view(), saved, d_input.view(),
                              d_gamma.view(), with_beta ? d_beta.view() : TensorView<double>(),
                              test.ctx);
    std::vector<testing::GradientToCheck> checks = {{"input", input.view(), d_input.view()},
                                                    {"gamma", gamma.view(), d_gamma.view()}};
    if (with_beta) checks.push_back({"beta", beta.view(), d_beta.view()});
    for (const auto& result : CheckGradients(forward, output.view(), d_output.view(), checks)) {
      EXPECT_LT(result.relative_error, 1e-7) << result.name;
    }
  }
}

TEST(LayerNormTest, OutputRowsHaveZeroMeanUnitVarianceBeforeAffine) {
  TestContext test;
  Random random(2);
  auto input = RandomTensor<float>(Shape{3, 64}, random, 5.0);
  Tensor<float> gamma(Shape{64}), output(input.shape()), mean(Shape{3}), rstd(Shape{3});
  for (float& g : gamma.view()) g = 1.0f;
  LayerNormForward<float>(input.view(), gamma.view(), {}, 1e-5f, output.view(),
                          {mean.view(), rstd.view()}, test.ctx);
  for (int64_t r = 0; r < 3; ++r) {
    double sum = 0, squares = 0;
    for (int64_t c = 0; c < 64; ++c) sum += output[r * 64 + c];
    for (int64_t c = 0; c < 64; ++c) squares += output[r * 64 + c] * output[r * 64 + c];
    EXPECT_NEAR(sum / 64, 0.0, 1e-6);
    EXPECT_NEAR(squares / 64, 1.0, 1e-4);  // eps makes it slightly below 1
  }
}

TEST(LayerNormTest, FloatAgreesWithDouble) {
  TestContext test(2);
  Random random(3);
  auto input = RandomTensor<float>(Shape{9, 96}, random, 3.0);
  auto gamma = RandomTensor<float>(Shape{96}, random);
  auto beta = RandomTensor<float>(Shape{96}, random);
  auto d_output = RandomTensor<float>(Shape{9, 96}, random);
  Tensor<float> output(input.shape()), mean(Shape{9}), rstd(Shape{9}), d_input(input.shape()),
      d_gamma(Shape{96}), d_beta(Shape{96});
  LayerNormForward<float>(input.view(), gamma.view(), beta.view(), 1e-5f, output.view(),
                          {mean.view(), rstd.view()}, test.ctx);
  LayerNormBackward<float>(d_output.view(), input.view(), gamma.view(), {mean.view(), rstd.view()},
                           d_input.view(), d_gamma.view(), d_beta.view(), test.ctx);
  auto input64 = Convert<double>(input.view()), gamma64 = Convert<double>(gamma.view()),
       beta64 = Convert<double>(beta.view()), d_output64 = Convert<double>(d_output.view());
  Tensor<double> output64(input.shape()), mean64(Shape{9}), rstd64(Shape{9}),
      d_input64(input.shape()), d_gamma64(Shape{96}), d_beta64(Shape{96});
  LayerNormForward<double>(input64.view(), gamma64.view(), beta64.view(), 1e-5, output64.view(),
                           {mean64.view(), rstd64.view()}, test.ctx);
  LayerNormBackward<double>(d_output64.view(), input64.view(), gamma64.view(),
                            {mean64.view(), rstd64.view()}, d_input64.view(), d_gamma64.view(),
                            d_beta64.view(), test.ctx);
  EXPECT_LT(MaxRelativeError(output.view(), output64.view()), 1e-6);
  EXPECT_LT(MaxRelativeError(d_input.view(), d_input64.view()), 1e-5);
  EXPECT_LT(MaxRelativeError(d_gamma.view(), d_gamma64.view()), 1e-5);
  EXPECT_LT(MaxRelativeError(d_beta.view(), d_beta64.view()), 1e-5);
}

TEST(LayerNormTest, BadArgumentsAreErrors) {
  TestContext test;
  Tensor<float> input(Shape{2, 8}), gamma(Shape{4}), output(Shape{2, 8}), mean(Shape{2}),
      rstd(Shape{2});
  try {
    LayerNormForward<float>(input.view(), gamma.view(), {}, 1e-5f, output.view(),
                            {mean.view(), rstd.view()}, test.ctx);
    FAIL();
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("gamma has shape [4], expected [8]"),
              std::string::npos)
        << error.what();
  }
  Tensor<float> good_gamma(Shape{8});
  EXPECT_THROW(LayerNormForward<float>(input.view(), good_gamma.view(), {}, 0.0f, output.view(),
                                       {mean.view(), rstd.view()}, test.ctx),
               Error);
}

TEST(RmsNormTest, BackwardMatchesFiniteDifferences) {
  TestContext test;
  Random random(4);
  const int64_t rows = 3, cols = 6;
  auto input = RandomTensor<double>(Shape{rows, cols}, random, 2.0);
  auto gamma = RandomTensor<double>(Shape{cols}, random);
  auto d_output = RandomTensor<double>(Shape{rows, cols}, random);
  Tensor<double> output(input.shape()), rrms(Shape{rows});
  auto forward = [&] {
    RmsNormForward<double>(input.view(), gamma.view(), 1e-6, output.view(), rrms.view(), test.ctx);
  };
  forward();
  Tensor<double> d_input(input.shape()), d_gamma(gamma.shape());
  RmsNormBackward<double>(d_output.view(), input.view(), gamma.view(), rrms.view(), d_input.view(),
                          d_gamma.view(), test.ctx);
  for (const auto& result : CheckGradients(
           forward, output.view(), d_output.view(),
           {{"input", input.view(), d_input.view()}, {"gamma", gamma.view(), d_gamma.view()}})) {
    EXPECT_LT(result.relative_error, 1e-7) << result.name;
  }
}

TEST(RmsNormTest, OutputRowsHaveUnitRootMeanSquare) {
  TestContext test;
  Random random(5);
  auto input = RandomTensor<float>(Shape{2, 32}, random, 4.0);
  Tensor<float> gamma(Shape{32}), output(input.shape()), rrms(Shape{2});
  for (float& g : gamma.view()) g = 1.0f;
  RmsNormForward<float>(input.view(), gamma.view(), 1e-8f, output.view(), rrms.view(), test.ctx);
  for (int64_t r = 0; r < 2; ++r) {
    double squares = 0;
    for (int64_t c = 0; c < 32; ++c) squares += output[r * 32 + c] * output[r * 32 + c];
    EXPECT_NEAR(squares / 32, 1.0, 1e-5);
  }
}

}  // namespace
}  // namespace qkv::ops
