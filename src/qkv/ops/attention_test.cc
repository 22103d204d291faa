#include "qkv/ops/attention.h"

#include <gtest/gtest.h>

#include <cmath>

#include "qkv/ops/alibi.h"
#include "qkv/testing/gradient_check.h"

namespace qkv::ops {
namespace {

using testing::CheckGradients;
using testing::RandomTensor;
using testing::TestContext;

struct AttentionCase {
  const char* name;
  int64_t query_len, key_len;
  bool causal, padding;
};

void PrintTo(const AttentionCase& param, std::ostream* out) { *out << param.name; }

class AttentionGradientTest : public ::testing::TestWithParam<AttentionCase> {};

TEST_P(AttentionGradientTest, BackwardMatchesFiniteDifferences) {
  const AttentionCase& param = GetParam();
  TestContext test;
  Random random(1);
  const int64_t batch = 2, heads = 2, width = 6;
  auto q = RandomTensor<double>(Shape{batch, param.query_len, width}, random);
  auto k = RandomTensor<double>(Shape{batch, param.key_len, width}, random);
  auto v = RandomTensor<double>(Shape{batch, param.key_len, width}, random);
  auto d_output = RandomTensor<double>(q.shape(), random);
  Tensor<uint8_t> padding(Shape{batch, param.key_len});
  if (param.padding) {
    padding[0 * param.key_len + 1] = 1;                  // a key in the middle
    padding[1 * param.key_len + param.key_len - 1] = 1;  // the last key
  }
  AttentionMask mask{param.causal, param.padding ? ConstTensorView<uint8_t>(padding.view())
                                                 : ConstTensorView<uint8_t>()};
  Tensor<double> output(q.shape()), probs(Shape{batch, heads, param.query_len, param.key_len});
  auto forward = [&] {
    AttentionForward<double>(q.view(), k.view(), v.view(), heads, mask, output.view(), probs.view(),
                             test.ctx);
  };
  forward();
  Tensor<double> d_q(q.shape()), d_k(k.shape()), d_v(v.shape());
  AttentionBackward<double>(d_output.view(), q.view(), k.view(), v.view(), probs.view(), heads,
                            d_q.view(), d_k.view(), d_v.view(), test.ctx);
  for (const auto& result : CheckGradients(forward, output.view(), d_output.view(),
                                           {{"q", q.view(), d_q.view()},
                                            {"k", k.view(), d_k.view()},
                                            {"v", v.view(), d_v.view()}})) {
    EXPECT_LT(result.relative_error, 1e-7) << result.name;
  }
}

INSTANTIATE_TEST_SUITE_P(Masks, AttentionGradientTest,
                         ::testing::Values(AttentionCase{"Unmasked", 4, 4, false, false},
                                           AttentionCase{"Causal", 5, 5, true, false},
                                           AttentionCase{"CausalFewerQueries", 2, 5, true, false},
                                           AttentionCase{"Padding", 3, 4, false, true},
                                           AttentionCase{"CrossLengths", 3, 6, false, false},
                                           AttentionCase{"CausalAndPadding", 4, 4, true, true}),
                         [](const ::testing::TestParamInfo<AttentionCase>& param_info) {
                           return param_info.param.name;
                         });

TEST(AttentionTest, MaskedWeightsAreExactlyZeroAndRowsSumToOne) {
  TestContext test(2);
  Random random(2);
  const int64_t batch = 2, heads = 3, query_len = 4, key_len = 6, width = 12;
  auto q = RandomTensor<float>(Shape{batch, query_len, width}, random, 3.0);
  auto k = RandomTensor<float>(Shape{batch, key_len, width}, random, 3.0);
  auto v = RandomTensor<float>(Shape{batch, key_len, width}, random);
  Tensor<uint8_t> padding(Shape{batch, key_len});
  padding[0 * key_len + 0] = 1;
  padding[1 * key_len + 3] = 1;
  Tensor<float> output(q.shape()), probs(Shape{batch, heads, query_len, key_len});
  AttentionForward<float>(q.view(), k.view(), v.view(), heads, {true, padding.view()},
                          output.view(), probs.view(), test.ctx);
  const int64_t shift = key_len - query_len;
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t h = 0; h < heads; ++h) {
      for (int64_t i = 0; i < query_len; ++i) {
        double row_sum = 0;
        for (int64_t j = 0; j < key_len; ++j) {
          const float weight = probs[((b * heads + h) * query_len + i) * key_len + j];
          const bool masked = j > i + shift || padding[b * key_len + j] != 0;
          if (masked) {
            EXPECT_EQ(weight, 0.0f) << "b=" << b << " h=" << h << " i=" << i << " j=" << j;
          } else {
            EXPECT_GT(weight, 0.0f);
          }
          row_sum += weight;
        }
        EXPECT_NEAR(row_sum, 1.0, 1e-6);
      }
    }
  }
}

TEST(AttentionTest, QueryWithEveryKeyMaskedGetsZeroOutputNotNaN) {
  TestContext test;
  Random random(3);
  auto q = RandomTensor<float>(Shape{1, 2, 4}, random);
  auto k = RandomTensor<float>(Shape{1, 2, 4}, random);
  auto v = RandomTensor<float>(Shape{1, 2, 4}, random);
  Tensor<uint8_t> padding(Shape{1, 2});
  padding[0] = 1;  // with the causal mask, query 0 sees only key 0, which is padding
  Tensor<float> output(q.shape()), probs(Shape{1, 1, 2, 2});
  AttentionForward<float>(q.view(), k.view(), v.view(), 1, {true, padding.view()}, output.view(),
                          probs.view(), test.ctx);
  for (int64_t c = 0; c < 4; ++c) EXPECT_EQ(output[c], 0.0f);
  for (int64_t c = 4; c < 8; ++c) EXPECT_EQ(output[c], v[c]);  // query 1 sees only key 1
}

TEST(AttentionTest, BadShapesAreErrorsNamingTheValues) {
  TestContext test;
  Tensor<float> q(Shape{1, 3, 6}), k(Shape{1, 4, 6}), v(Shape{1, 4, 6}), output(Shape{1, 3, 6});
  Tensor<float> probs(Shape{1, 4, 3, 4});
  try {
    AttentionForward<float>(q.view(), k.view(), v.view(), 4, {}, output.view(), probs.view(),
                            test.ctx);
    FAIL();
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("width 6 is not divisible by num_heads 4"),
              std::string::npos)
        << error.what();
  }
  Tensor<float> k_short(Shape{1, 2, 6}), v_short(Shape{1, 2, 6}), probs2(Shape{1, 2, 3, 2});
  EXPECT_THROW(AttentionForward<float>(q.view(), k_short.view(), v_short.view(), 2, {true, {}},
                                       output.view(), probs2.view(), test.ctx),
               Error);  // causal with fewer keys than queries
  Tensor<float> v_wrong(Shape{1, 4, 5});
  EXPECT_THROW(AttentionForward<float>(q.view(), k.view(), v_wrong.view(), 2, {}, output.view(),
                                       probs.view(), test.ctx),
               Error);
}

}  // namespace
}  // namespace qkv::ops

namespace qkv::ops {
namespace {

// The ALiBi paper's reference get_slopes, written from its published Python: for n a power of
// two, start = ratio = 2^(-2^-(log2(n) - 3)) and slope_i = start * ratio^i.
std::vector<double> PaperSlopes(int64_t n) {
  auto power_of_two = [](int64_t heads) {
    const double start = std::pow(2.0, -std::pow(2.0, -(std::log2(heads) - 3)));
    std::vector<double> slopes;
    for (int64_t i = 0; i < heads; ++i) slopes.push_back(start * std::pow(start, i));
    return slopes;
  };
  if ((n & (n - 1)) == 0) return power_of_two(n);
  const int64_t closest = int64_t{1} << static_cast<int>(std::floor(std::log2(n)));
  std::vector<double> slopes = power_of_two(closest);
  const std::vector<double> doubled = power_of_two(2 * closest);
  for (int64_t i = 0; static_cast<int64_t>(slopes.size()) < n; i += 2) slopes.push_back(doubled[i]);
  return slopes;
}

TEST(AlibiTest, SlopesMatchThePaperFor8And12And16Heads) {
  for (int64_t heads : {8, 12, 16, 1, 3, 6}) {
    const std::vector<double> slopes = AlibiSlopes(heads), expected = PaperSlopes(heads);
    ASSERT_EQ(slopes.size(), expected.size()) << heads;
    for (size_t h = 0; h < slopes.size(); ++h) {
      EXPECT_NEAR(slopes[h], expected[h], 1e-15) << heads << " heads, head " << h;
    }
  }
  EXPECT_DOUBLE_EQ(AlibiSlopes(8)[0], 0.5);
  EXPECT_DOUBLE_EQ(AlibiSlopes(8)[7], 1.0 / 256);
  EXPECT_THROW(AlibiSlopes(0), Error);
}

TEST(AlibiTest, WeightsDependOnlyOnDistanceAndBackwardMatchesFiniteDifferences) {
  TestContext test;
  const int64_t heads = 2, seq = 6, width = 4;
  const std::vector<double> slopes = AlibiSlopes(heads);
  // Identical queries and keys: every raw score is equal, so only ALiBi shapes the weights.
  Tensor<double> q(Shape{1, seq, width}), k(Shape{1, seq, width}), v(Shape{1, seq, width});
  for (int64_t i = 0; i < q.size(); ++i) q[i] = k[i] = 0.3;
  Random random(9);
  random.FillNormal(v.view(), 0, 1);
  Tensor<double> output(q.shape()), probs(Shape{1, heads, seq, seq});
  AttentionMask mask{true, {}, slopes};
  AttentionForward<double>(q.view(), k.view(), v.view(), heads, mask, output.view(), probs.view(),
                           test.ctx);
  for (int64_t h = 0; h < heads; ++h) {
    for (int64_t i = 0; i < seq; ++i) {
      const double* row = probs.data() + (h * seq + i) * seq;
      for (int64_t j = 1; j <= i; ++j) {
        // weight(i, j) / weight(i, j - 1) = exp(-m_h) whatever i: it depends on i - j only.
        EXPECT_NEAR(row[j - 1] / row[j], std::exp(-slopes[h]), 1e-12);
      }
    }
  }
  // The bias is constant, so the unchanged backward pass must still be exact.
  auto q2 = RandomTensor<double>(q.shape(), random), k2 = RandomTensor<double>(k.shape(), random);
  auto d_output = RandomTensor<double>(q.shape(), random);
  auto forward = [&] {
    AttentionForward<double>(q2.view(), k2.view(), v.view(), heads, mask, output.view(),
                             probs.view(), test.ctx);
  };
  forward();
  Tensor<double> d_q(q.shape()), d_k(k.shape()), d_v(v.shape());
  AttentionBackward<double>(d_output.view(), q2.view(), k2.view(), v.view(), probs.view(), heads,
                            d_q.view(), d_k.view(), d_v.view(), test.ctx);
  for (const auto& result : CheckGradients(forward, output.view(), d_output.view(),
                                           {{"q", q2.view(), d_q.view()},
                                            {"k", k2.view(), d_k.view()},
                                            {"v", v.view(), d_v.view()}})) {
    EXPECT_LT(result.relative_error, 1e-7) << result.name;
  }
}

}  // namespace
}  // namespace qkv::ops
