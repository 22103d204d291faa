// Sinusoidal and learned absolute positions, and RoPE.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "qkv/ops/position_add.h"
#include "qkv/ops/rope.h"
#include "qkv/ops/sinusoidal.h"
#include "qkv/testing/gradient_check.h"

namespace qkv::ops {
namespace {

using testing::CheckGradients;
using testing::RandomTensor;
using testing::TestContext;

TEST(SinusoidalTest, TableEqualsTheFormula) {
  const int64_t max_len = 50, dim = 10;
  Tensor<float> table(Shape{max_len, dim});
  FillSinusoidalTable(table.view());
  for (int64_t p = 0; p < max_len; ++p) {
    for (int64_t i = 0; 2 * i < dim; ++i) {
      // 1 / 10000^(2i/d) written as exp(-(2i/d) ln 10000), in long double.
      const long double angle = p * std::exp(-(2.0L * i / dim) * std::log(10000.0L));
      EXPECT_NEAR(table[p * dim + 2 * i], static_cast<float>(std::sin(angle)), 1e-7);
      EXPECT_NEAR(table[p * dim + 2 * i + 1], static_cast<float>(std::cos(angle)), 1e-7);
    }
  }
  EXPECT_EQ(table[0], 0.0f);  // sin(0)
  EXPECT_EQ(table[1], 1.0f);  // cos(0)
}

// Marian's layout: the same angles, every sine first, then every cosine; an odd width has
// one sine more than cosines (as Hugging Face's MarianSinusoidalPositionalEmbedding).
TEST(SinusoidalTest, HalvesLayoutHoldsTheSinesThenTheCosines) {
  for (const int64_t dim : {10, 7}) {
    const int64_t max_len = 30, sines = (dim + 1) / 2;
    Tensor<double> table(Shape{max_len, dim});
    FillSinusoidalTable(table.view(), SinusoidalLayout::kHalves);
    for (int64_t p = 0; p < max_len; ++p) {
      for (int64_t i = 0; i < dim; ++i) {
        const bool sine = i < sines;
        const int64_t pair = sine ? i : i - sines;
        const long double angle = p * std::exp(-(2.0L * pair / dim) * std::log(10000.0L));
        EXPECT_NEAR(table[p * dim + i], sine ? std::sin(angle) : std::cos(angle), 1e-12)
            << "dim " << dim << " position " << p << " column " << i;
      }
    }
  }
}

TEST(PositionAddTest, LearnedTableGradientMatchesFiniteDifferences) {
  TestContext test;
  Random random(1);
  const int64_t batch = 2, seq = 3, dim = 4, max_len = 8, start = 2;
  auto input = RandomTensor<double>(Shape{batch, seq, dim}, random);
  auto table = RandomTensor<double>(Shape{max_len, dim}, random);
  auto d_output = RandomTensor<double>(input.shape(), random);
  Tensor<double> output(input.shape()), d_table(table.shape());
  auto forward = [&] {
    AddPositionsForward<double>(input.view(), table.view(), start, output.view(), test.ctx);
  };
  forward();
  AddPositionsBackward<double>(d_output.view(), start, d_table.view(), test.ctx);
  for (const auto& result : CheckGradients(forward, output.view(), d_output.view(),
                                           {{"table", table.view(), d_table.view()}})) {
    EXPECT_LT(result.relative_error, 1e-8);
  }
}

TEST(PositionAddTest, SequencePastTheTableIsAnErrorNamingBothLengths) {
  TestContext test;
  Tensor<float> input(Shape{1, 5, 4}), table(Shape{4, 4}), output(Shape{1, 5, 4});
  try {
    AddPositionsForward<float>(input.view(), table.view(), 0, output.view(), test.ctx);
    FAIL();
  } catch (const Error& error) {
    const std::string message = error.what();
    EXPECT_NE(message.find("positions 0..4 go past the position table, which holds 4"),
              std::string::npos)
        << message;
  }
  Tensor<float> short_input(Shape{1, 2, 4}), short_output(Shape{1, 2, 4});
  EXPECT_NO_THROW(AddPositionsForward<float>(short_input.view(), table.view(), 2,
                                             short_output.view(), test.ctx));
  EXPECT_THROW(AddPositionsForward<float>(short_input.view(), table.view(), 3, short_output.view(),
                                          test.ctx),
               Error);
}

}  // namespace

void PrintTo(RopeStyle style, std::ostream* out) {
  *out << (style == RopeStyle::kHalf ? "half" : "interleaved");
}

namespace {

class RopeTest : public ::testing::TestWithParam<RopeStyle> {};

TEST_P(RopeTest, BackwardMatchesFiniteDifferences) {
  TestContext test;
  Random random(2);
  RopeConfig config{500.0, GetParam()};
  auto input = RandomTensor<double>(Shape{2, 5, 12}, random);
  auto d_output = RandomTensor<double>(input.shape(), random);
  Tensor<double> output(input.shape()), d_input(input.shape());
  auto forward = [&] { RopeForward<double>(input.view(), 2, config, 3, output.view(), test.ctx); };
  forward();
  RopeBackward<double>(d_output.view(), 2, config, 3, d_input.view(), test.ctx);
  for (const auto& result : CheckGradients(forward, output.view(), d_output.view(),
                                           {{"input", input.view(), d_input.view()}})) {
    EXPECT_LT(result.relative_error, 1e-8);
  }
}

TEST_P(RopeTest, ScoreDependsOnlyOnTheOffset) {
  TestContext test;
  Random random(3);
  const int64_t heads = 2, head_dim = 8, width = heads * head_dim;
  RopeConfig config{10000.0, GetParam()};
  auto q = RandomTensor<float>(Shape{1, 1, width}, random);
  auto k = RandomTensor<float>(Shape{1, 1, width}, random);
  // score(i, j) = <RoPE(q, i), RoPE(k, j)> per head.
  auto score = [&](int64_t i, int64_t j, int64_t head) {
    Tensor<float> q_rotated(q.shape()), k_rotated(k.shape());
    RopeForward<float>(q.view(), heads, config, i, q_rotated.view(), test.ctx);
    RopeForward<float>(k.view(), heads, config, j, k_rotated.view(), test.ctx);
    double dot = 0;
    for (int64_t c = head * head_dim; c < (head + 1) * head_dim; ++c) {
      dot += static_cast<double>(q_rotated[c]) * k_rotated[c];
    }
    return dot;
  };
  for (int64_t head = 0; head < heads; ++head) {
    for (auto [i, j] : {std::pair<int64_t, int64_t>{5, 2}, {2, 5}, {7, 7}, {40, 3}}) {
      const double base = score(i, j, head);
      for (int64_t shift : {1, 17, 300, 2000}) {
        EXPECT_NEAR(score(i + shift, j + shift, head), base, 1e-5 * (1 + std::abs(base)))
            << "i=" << i << " j=" << j << " shift=" << shift;
      }
    }
  }
  // And it does depend on the offset (otherwise the test above proves nothing).
  EXPECT_GT(std::abs(score(5, 2, 0) - score(5, 4, 0)), 1e-3);
}

TEST_P(RopeTest, PositionZeroIsTheIdentityAndNormsArePreserved) {
  TestContext test;
  Random random(4);
  RopeConfig config{10000.0, GetParam()};
  auto input = RandomTensor<float>(Shape{1, 6, 8}, random);
  Tensor<float> output(input.shape());
  RopeForward<float>(input.view(), 1, config, 0, output.view(), test.ctx);
  for (int64_t c = 0; c < 8; ++c) EXPECT_EQ(output[c], input[c]);
  for (int64_t t = 0; t < 6; ++t) {
    double before = 0, after = 0;
    for (int64_t c = 0; c < 8; ++c) {
      before += input[t * 8 + c] * input[t * 8 + c];
      after += output[t * 8 + c] * output[t * 8 + c];
    }
    EXPECT_NEAR(after, before, 1e-5 * before);
  }
}

INSTANTIATE_TEST_SUITE_P(Styles, RopeTest,
                         ::testing::Values(RopeStyle::kHalf, RopeStyle::kInterleaved),
                         [](const ::testing::TestParamInfo<RopeStyle>& param_info) {
                           return param_info.param == RopeStyle::kHalf ? "Half" : "Interleaved";
                         });

TEST(RopePairingTest, HalfAndInterleavedPairDifferentCoordinates) {
  TestContext test;
  // A unit vector on coordinate 0 rotates into coordinate 2 (= head_dim/2) with "half" and
  // into coordinate 1 with "interleaved".
  Tensor<double> input(Shape{1, 1, 4}), half(Shape{1, 1, 4}), interleaved(Shape{1, 1, 4});
  input[0] = 1.0;
  RopeForward<double>(input.view(), 1, {10000.0, RopeStyle::kHalf}, 1, half.view(), test.ctx);
  RopeForward<double>(input.view(), 1, {10000.0, RopeStyle::kInterleaved}, 1, interleaved.view(),
                      test.ctx);
  EXPECT_NEAR(half[0], std::cos(1.0), 1e-15);
  EXPECT_NEAR(half[2], std::sin(1.0), 1e-15);
  EXPECT_EQ(half[1], 0.0);
  EXPECT_NEAR(interleaved[0], std::cos(1.0), 1e-15);
  EXPECT_NEAR(interleaved[1], std::sin(1.0), 1e-15);
  EXPECT_EQ(interleaved[2], 0.0);
}

TEST(RopeErrorsTest, OddHeadSizeAndBadThetaAreErrors) {
  TestContext test;
  Tensor<float> input(Shape{1, 2, 6}), output(Shape{1, 2, 6});
  try {
    RopeForward<float>(input.view(), 2, {}, 0, output.view(), test.ctx);
    FAIL();
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("head size must be even"), std::string::npos)
        << error.what();
  }
  EXPECT_THROW(
      RopeForward<float>(input.view(), 3, {-1.0, RopeStyle::kHalf}, 0, output.view(), test.ctx),
      Error);
  EXPECT_THROW(RopeForward<float>(input.view(), 3, {}, -1, output.view(), test.ctx), Error);
}

}  // namespace
}  // namespace qkv::ops

namespace qkv::ops {
namespace {

TEST(RopeScalingTest, FactorOneIsPlainRopeBitwise) {
  testing::TestContext test;
  Random random(10);
  auto input = testing::RandomTensor<float>(Shape{2, 7, 16}, random);
  Tensor<float> plain(input.shape()), scaled(input.shape());
  RopeForward<float>(input.view(), 2, {}, 5, plain.view(), test.ctx);
  for (RopeScaling scaling : {RopeScaling::kLinear, RopeScaling::kNtk, RopeScaling::kYarn}) {
    RopeConfig config;
    config.scaling = scaling;
    config.factor = 1.0;
    config.original_context = 64;
    RopeForward<float>(input.view(), 2, config, 5, scaled.view(), test.ctx);
    EXPECT_EQ(std::memcmp(plain.data(), scaled.data(), plain.size() * sizeof(float)), 0)
        << static_cast<int>(scaling);
  }
}

TEST(RopeScalingTest, LinearInterpolationMapsPositionSpToPlainP) {
  testing::TestContext test;
  Random random(11);
  auto input = testing::RandomTensor<double>(Shape{1, 1, 8}, random);
  RopeConfig linear;
  linear.scaling = RopeScaling::kLinear;
  linear.factor = 4.0;
  for (int64_t p : {1, 5, 30}) {
    Tensor<double> scaled(input.shape()), plain(input.shape());
    RopeForward<double>(input.view(), 1, linear, 4 * p, scaled.view(), test.ctx);
    RopeForward<double>(input.view(), 1, {}, p, plain.view(), test.ctx);
    EXPECT_LT(testing::MaxRelativeError(scaled.view(), plain.view()), 1e-12) << p;
  }
}

TEST(RopeScalingTest, NtkRaisesTheBaseAndYarnKeepsFastPairsAndSlowsSlowOnes) {
  RopeConfig ntk;
  ntk.scaling = RopeScaling::kNtk;
  ntk.factor = 8.0;
  const std::vector<double> plain = RopeFrequencies({}, 64);
  const std::vector<double> raised = RopeFrequencies(ntk, 64);
  EXPECT_DOUBLE_EQ(raised[0], 1.0);  // pair 0 never changes
  const double base = 10000.0 * std::pow(8.0, 64.0 / 62.0);
  EXPECT_NEAR(raised[31], std::pow(base, -62.0 / 64.0), 1e-15);

  RopeConfig yarn;
  yarn.scaling = RopeScaling::kYarn;
  yarn.factor = 8.0;
  yarn.original_context = 256;
  const std::vector<double> blended = RopeFrequencies(yarn, 64);
  EXPECT_DOUBLE_EQ(blended[0], plain[0]);        // turns ~40 times over 256: extrapolated
  EXPECT_DOUBLE_EQ(blended[31], plain[31] / 8);  // turns < once: interpolated
  EXPECT_NEAR(RopeMagnitude(yarn), 0.1 * std::log(8.0) + 1, 1e-15);
  EXPECT_EQ(RopeMagnitude(ntk), 1.0);
}

TEST(RopeScalingTest, YarnBackwardMatchesFiniteDifferences) {
  testing::TestContext test;
  Random random(12);
  RopeConfig config;
  config.scaling = RopeScaling::kYarn;
  config.factor = 4.0;
  config.original_context = 16;
  auto input = testing::RandomTensor<double>(Shape{1, 5, 16}, random);
  auto d_output = testing::RandomTensor<double>(input.shape(), random);
  Tensor<double> output(input.shape()), d_input(input.shape());
  auto forward = [&] { RopeForward<double>(input.view(), 2, config, 20, output.view(), test.ctx); };
  forward();
  RopeBackward<double>(d_output.view(), 2, config, 20, d_input.view(), test.ctx);
  for (const auto& result : testing::CheckGradients(forward, output.view(), d_output.view(),
                                                    {{"input", input.view(), d_input.view()}})) {
    EXPECT_LT(result.relative_error, 1e-8);
  }
}

TEST(RopeScalingTest, BadScalingSettingsAreErrors) {
  RopeConfig config;
  config.scaling = RopeScaling::kYarn;
  config.factor = 2.0;
  EXPECT_THROW(config.Validate(8), Error);  // YaRN without the original context
  config.original_context = 64;
  EXPECT_NO_THROW(config.Validate(8));
  config.factor = 0.5;
  EXPECT_THROW(config.Validate(8), Error);
}

}  // namespace
}  // namespace qkv::ops
