#include "qkv/ops/flash_attention.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "qkv/ops/alibi.h"
#include "qkv/ops/attention.h"
#include "qkv/testing/gradient_check.h"

namespace qkv::ops {
namespace {

using testing::CheckGradients;
using testing::MaxRelativeError;
using testing::RandomTensor;
using testing::TestContext;

struct FlashCase {
  const char* name;
  int64_t batch, heads, head_dim, query_len, key_len;
  bool causal, padding, alibi;
  int64_t kv_heads = 0;  // key/value heads (grouped-query attention); 0: heads
  int64_t kv_width() const { return (kv_heads > 0 ? kv_heads : heads) * head_dim; }
};

void PrintTo(const FlashCase& param, std::ostream* out) { *out << param.name; }

// Padding that hides some keys everywhere and, in batch element 0, the first
// Tk - Tq + 1 keys: under the causal mask query 0 then sees nothing (zero output and
// gradients), and without it the last batch element has every key padded. Batch element 1
// under the causal mask, 0 without it, also has its last half of the keys padded, as in a
// length-sorted batch: the kernel skips those (whole tiles of them from Tk = 100 on).
Tensor<uint8_t> MakePadding(const FlashCase& param) {
  Tensor<uint8_t> padding(Shape{param.batch, param.key_len});
  for (int64_t b = 0; b < param.batch; ++b) {
    for (int64_t j = 0; j < param.key_len; ++j) {
      padding[b * param.key_len + j] = (j * 7 + b) % 5 == 3 ? 1 : 0;
    }
  }
  const int64_t trailing = param.causal ? 1 : 0;
  if (trailing < param.batch) {
    for (int64_t j = param.key_len / 2; j < param.key_len; ++j) {
      padding[trailing * param.key_len + j] = 1;
    }
  }
  if (param.causal) {
    for (int64_t j = 0; j <= param.key_len - param.query_len; ++j) padding[j] = 1;
  } else if (param.batch > 1) {
    for (int64_t j = 0; j < param.key_len; ++j) padding[(param.batch - 1) * param.key_len + j] = 1;
  }
  return padding;
}

// Runs the simple oracle and the fused kernel on the same inputs and compares the output and
// the three gradients; a query the oracle gives all-zero weights must get exactly zero output
// and d_q.
template <typename T>
void ExpectFlashMatchesOracle(const FlashCase& param, int num_threads, double tolerance) {
  Random random(42);
  const int64_t width = param.heads * param.head_dim;
  auto q = RandomTensor<T>(Shape{param.batch, param.query_len, width}, random);
  auto k = RandomTensor<T>(Shape{param.batch, param.key_len, param.kv_width()}, random);
  auto v = RandomTensor<T>(Shape{param.batch, param.key_len, param.kv_width()}, random);
  auto d_output = RandomTensor<T>(q.shape(), random);
  const Tensor<uint8_t> padding = MakePadding(param);
  const std::vector<double> slopes = param.alibi ? AlibiSlopes(param.heads) : std::vector<double>{};
  AttentionMask mask{
      param.causal,
      param.padding ? ConstTensorView<uint8_t>(padding.view()) : ConstTensorView<uint8_t>(),
      slopes};

  const size_t oracle_scratch =
      static_cast<size_t>(num_threads) * param.query_len * param.key_len * sizeof(T) + 4096;
  TestContext oracle_test(num_threads, oracle_scratch);
  Tensor<T> oracle_out(q.shape()),
      probs(Shape{param.batch, param.heads, param.query_len, param.key_len});
  Tensor<T> oracle_dq(q.shape()), oracle_dk(k.shape()), oracle_dv(v.shape());
  AttentionForward<T>(q.view(), k.view(), v.view(), param.heads, mask, oracle_out.view(),
                      probs.view(), oracle_test.ctx);
  AttentionBackward<T>(d_output.view(), q.view(), k.view(), v.view(), probs.view(), param.heads,
                       oracle_dq.view(), oracle_dk.view(), oracle_dv.view(), oracle_test.ctx);

  TestContext flash_test(num_threads, FlashAttentionScratchBytes<T>(param.batch, param.heads,
                                                                    param.query_len, num_threads));
  Tensor<T> out(q.shape()), lse(Shape{param.batch, param.heads, param.query_len});
  Tensor<T> dq(q.shape()), dk(k.shape()), dv(v.shape());
  // Garbage in the outputs must not leak through (they are written with =).
  for (auto* tensor : {&out, &dq}) std::fill_n(tensor->data(), tensor->size(), T(7));
  for (auto* tensor : {&dk, &dv}) std::fill_n(tensor->data(), tensor->size(), T(7));
  FlashAttentionForward<T>(q.view(), k.view(), v.view(), param.heads, mask, out.view(), lse.view(),
                           flash_test.ctx);
  FlashAttentionBackward<T>(d_output.view(), q.view(), k.view(), v.view(), out.view(), lse.view(),
                            param.heads, mask, dq.view(), dk.view(), dv.view(), flash_test.ctx);

  EXPECT_LT(MaxRelativeError(out.view(), oracle_out.view()), tolerance) << "output";
  EXPECT_LT(MaxRelativeError(dq.view(), oracle_dq.view()), tolerance) << "d_q";
  EXPECT_LT(MaxRelativeError(dk.view(), oracle_dk.view()), tolerance) << "d_k";
  EXPECT_LT(MaxRelativeError(dv.view(), oracle_dv.view()), tolerance) << "d_v";

  // A query whose probabilities are all zero in the oracle has exactly zero output and d_q.
  for (int64_t b = 0; b < param.batch; ++b) {
    for (int64_t h = 0; h < param.heads; ++h) {
      for (int64_t i = 0; i < param.query_len; ++i) {
        const T* row = probs.data() + ((b * param.heads + h) * param.query_len + i) * param.key_len;
        bool all_masked = true;
        for (int64_t j = 0; j < param.key_len; ++j) all_masked = all_masked && row[j] == T(0);
        if (!all_masked) continue;
        for (int64_t c = 0; c < param.head_dim; ++c) {
          const int64_t index = (b * param.query_len + i) * width + h * param.head_dim + c;
          ASSERT_EQ(out[index], T(0)) << "b=" << b << " h=" << h << " i=" << i;
          ASSERT_EQ(dq[index], T(0)) << "b=" << b << " h=" << h << " i=" << i;
        }
      }
    }
  }
}

class FlashAttentionMatchesOracle : public ::testing::TestWithParam<FlashCase> {};

TEST_P(FlashAttentionMatchesOracle, Float) { ExpectFlashMatchesOracle<float>(GetParam(), 1, 2e-5); }
TEST_P(FlashAttentionMatchesOracle, Double) {
  ExpectFlashMatchesOracle<double>(GetParam(), 1, 1e-12);
}
TEST_P(FlashAttentionMatchesOracle, FloatTwoThreads) {
  ExpectFlashMatchesOracle<float>(GetParam(), 2, 2e-5);
}

INSTANTIATE_TEST_SUITE_P(
    Masks, FlashAttentionMatchesOracle,
    ::testing::Values(FlashCase{"NoMask", 2, 2, 8, 65, 65, false, false, false},
                      FlashCase{"OneToken", 1, 1, 4, 1, 1, true, false, false},
                      FlashCase{"SevenCausal", 2, 2, 4, 7, 7, true, false, false},
                      FlashCase{"Causal130", 1, 3, 16, 130, 130, true, false, false},
                      FlashCase{"CausalMoreKeys", 1, 2, 8, 65, 130, true, false, false},
                      FlashCase{"CausalFewQueries", 2, 2, 8, 7, 131, true, false, false},
                      FlashCase{"CrossLengths", 2, 2, 8, 70, 129, false, false, false},
                      FlashCase{"PaddingCausal", 2, 2, 8, 130, 130, true, true, false},
                      FlashCase{"PaddingCausalMoreKeys", 2, 2, 8, 65, 100, true, true, false},
                      FlashCase{"PaddingEveryKey", 3, 2, 8, 9, 70, false, true, false},
                      FlashCase{"Alibi", 1, 4, 8, 130, 130, true, false, true},
                      FlashCase{"AlibiPaddingNoCausal", 2, 2, 8, 65, 100, false, true, true},
                      FlashCase{"ManyHeads", 2, 6, 16, 129, 129, true, false, false},
                      // An odd number of (batch, head) pairs: with two threads the backward
                      // pass takes its two-sweep path instead of whole heads per thread.
                      FlashCase{"OddHeadsPaddingAlibi", 1, 3, 8, 70, 100, true, true, true},
                      FlashCase{"OddHeadsNoMask", 3, 1, 8, 65, 65, false, false, false},
                      // Grouped-query and multi-query attention: two key/value heads for four
                      // query heads; one for three (odd: the two-sweep path on two threads).
                      FlashCase{"GqaCausal", 2, 4, 8, 130, 130, true, false, false, 2},
                      FlashCase{"MqaPaddingAlibi", 1, 3, 8, 70, 100, true, true, true, 1},
                      FlashCase{"GqaCrossLengthsPadding", 2, 6, 8, 70, 129, false, true, false, 3}),
    [](const ::testing::TestParamInfo<FlashCase>& param_info) { return param_info.param.name; });

class FlashAttentionFiniteDifferences : public ::testing::TestWithParam<FlashCase> {};

TEST_P(FlashAttentionFiniteDifferences, BackwardMatches) {
  const FlashCase& param = GetParam();
  Random random(5);
  const int64_t width = param.heads * param.head_dim;
  auto q = RandomTensor<double>(Shape{param.batch, param.query_len, width}, random);
  auto k = RandomTensor<double>(Shape{param.batch, param.key_len, param.kv_width()}, random);
  auto v = RandomTensor<double>(Shape{param.batch, param.key_len, param.kv_width()}, random);
  auto d_output = RandomTensor<double>(q.shape(), random);
  const Tensor<uint8_t> padding = MakePadding(param);
  const std::vector<double> slopes = AlibiSlopes(param.heads);
  const AttentionMask mask{true, padding.view(), slopes};
  TestContext test(
      1, FlashAttentionScratchBytes<double>(param.batch, param.heads, param.query_len, 1));
  Tensor<double> output(q.shape()), lse(Shape{param.batch, param.heads, param.query_len});
  auto forward = [&] {
    FlashAttentionForward<double>(q.view(), k.view(), v.view(), param.heads, mask, output.view(),
                                  lse.view(), test.ctx);
  };
  forward();
  Tensor<double> d_q(q.shape()), d_k(k.shape()), d_v(v.shape());
  FlashAttentionBackward<double>(d_output.view(), q.view(), k.view(), v.view(), output.view(),
                                 lse.view(), param.heads, mask, d_q.view(), d_k.view(), d_v.view(),
                                 test.ctx);
  for (const auto& result : CheckGradients(forward, output.view(), d_output.view(),
                                           {{"q", q.view(), d_q.view()},
                                            {"k", k.view(), d_k.view()},
                                            {"v", v.view(), d_v.view()}})) {
    EXPECT_LT(result.relative_error, 1e-7) << result.name;
  }
}

// Several blocks of queries and keys, Tk > Tq, with every mask at once; multi-head and
// grouped-query.
INSTANTIATE_TEST_SUITE_P(
    EveryMask, FlashAttentionFiniteDifferences,
    ::testing::Values(FlashCase{"MultiHead", 1, 2, 4, 67, 131, true, true, true},
                      FlashCase{"GroupedQuery", 1, 4, 4, 67, 131, true, true, true, 2}),
    [](const ::testing::TestParamInfo<FlashCase>& param_info) { return param_info.param.name; });

// Grouped-query attention is multi-head attention with each key/value head repeated for the
// query heads of its group (Hugging Face's repeat_kv); its key/value gradients are the sums
// of the repeated heads' gradients. Checked for both kernels, on one and two threads.
template <typename T>
void ExpectGroupedEqualsRepeated(bool flash, int num_threads) {
  const int64_t batch = 2, heads = 6, kv_heads = 2, head_dim = 8, seq = 70, group = 3;
  Random random(11);
  auto q = RandomTensor<T>(Shape{batch, seq, heads * head_dim}, random);
  auto k = RandomTensor<T>(Shape{batch, seq, kv_heads * head_dim}, random);
  auto v = RandomTensor<T>(Shape{batch, seq, kv_heads * head_dim}, random);
  auto d_output = RandomTensor<T>(q.shape(), random);
  // Repeat: head h of the wide tensors is key/value head h / group.
  Tensor<T> k_wide(q.shape()), v_wide(q.shape());
  for (int64_t row = 0; row < batch * seq; ++row) {
    for (int64_t h = 0; h < heads; ++h) {
      for (int64_t c = 0; c < head_dim; ++c) {
        const int64_t wide = row * heads * head_dim + h * head_dim + c;
        const int64_t narrow = row * kv_heads * head_dim + h / group * head_dim + c;
        k_wide[wide] = k[narrow];
        v_wide[wide] = v[narrow];
      }
    }
  }
  const AttentionMask mask{true};
  const size_t scratch = FlashAttentionScratchBytes<T>(batch, heads, seq, num_threads) +
                         static_cast<size_t>(num_threads) * seq * seq * sizeof(T) + 4096;
  TestContext test(num_threads, scratch);
  auto run = [&](const Tensor<T>& keys, const Tensor<T>& values, Tensor<T>& out, Tensor<T>& dq,
                 Tensor<T>& dk, Tensor<T>& dv) {
    if (flash) {
      Tensor<T> lse(Shape{batch, heads, seq});
      FlashAttentionForward<T>(q.view(), keys.view(), values.view(), heads, mask, out.view(),
                               lse.view(), test.ctx);
      FlashAttentionBackward<T>(d_output.view(), q.view(), keys.view(), values.view(), out.view(),
                                lse.view(), heads, mask, dq.view(), dk.view(), dv.view(), test.ctx);
    } else {
      Tensor<T> probs(Shape{batch, heads, seq, seq});
      AttentionForward<T>(q.view(), keys.view(), values.view(), heads, mask, out.view(),
                          probs.view(), test.ctx);
      AttentionBackward<T>(d_output.view(), q.view(), keys.view(), values.view(), probs.view(),
                           heads, dq.view(), dk.view(), dv.view(), test.ctx);
    }
  };
  Tensor<T> out(q.shape()), dq(q.shape()), dk(k.shape()), dv(v.shape());
  for (auto* tensor : {&dk, &dv}) std::fill_n(tensor->data(), tensor->size(), T(7));
  run(k, v, out, dq, dk, dv);
  Tensor<T> wide_out(q.shape()), wide_dq(q.shape()), wide_dk(q.shape()), wide_dv(q.shape());
  run(k_wide, v_wide, wide_out, wide_dq, wide_dk, wide_dv);
  Tensor<T> summed_dk(k.shape()), summed_dv(v.shape());
  std::fill_n(summed_dk.data(), summed_dk.size(), T(0));
  std::fill_n(summed_dv.data(), summed_dv.size(), T(0));
  for (int64_t row = 0; row < batch * seq; ++row) {
    for (int64_t h = 0; h < heads; ++h) {
      for (int64_t c = 0; c < head_dim; ++c) {
        const int64_t wide = row * heads * head_dim + h * head_dim + c;
        const int64_t narrow = row * kv_heads * head_dim + h / group * head_dim + c;
        summed_dk[narrow] += wide_dk[wide];
        summed_dv[narrow] += wide_dv[wide];
      }
    }
  }
  const double tolerance = sizeof(T) == sizeof(double) ? 1e-12 : 1e-5;
  EXPECT_LT(MaxRelativeError(out.view(), wide_out.view()), tolerance) << "output";
  EXPECT_LT(MaxRelativeError(dq.view(), wide_dq.view()), tolerance) << "d_q";
  EXPECT_LT(MaxRelativeError(dk.view(), summed_dk.view()), tolerance) << "d_k";
  EXPECT_LT(MaxRelativeError(dv.view(), summed_dv.view()), tolerance) << "d_v";
}

TEST(GroupedQueryAttentionTest, SimpleKernelEqualsRepeatedHeads) {
  ExpectGroupedEqualsRepeated<double>(false, 1);
  ExpectGroupedEqualsRepeated<float>(false, 2);
}

TEST(GroupedQueryAttentionTest, FlashKernelEqualsRepeatedHeads) {
  ExpectGroupedEqualsRepeated<double>(true, 1);
  ExpectGroupedEqualsRepeated<float>(true, 2);
}

TEST(GroupedQueryAttentionTest, KeyWidthMustBeHeadsOfTheHeadSize) {
  TestContext test;
  Tensor<float> q(Shape{1, 3, 8}), k(Shape{1, 3, 6}), v(Shape{1, 3, 6}), output(Shape{1, 3, 8});
  Tensor<float> probs(Shape{1, 2, 3, 3});
  // Head size 4: k's width 6 is not a whole number of heads.
  EXPECT_THROW(AttentionForward<float>(q.view(), k.view(), v.view(), 2, {true}, output.view(),
                                       probs.view(), test.ctx),
               Error);
  Tensor<float> q3(Shape{1, 3, 12}), k2(Shape{1, 3, 8}), v2(Shape{1, 3, 8}), out3(Shape{1, 3, 12});
  Tensor<float> probs3(Shape{1, 3, 3, 3});
  // Two key/value heads do not divide three query heads.
  EXPECT_THROW(AttentionForward<float>(q3.view(), k2.view(), v2.view(), 3, {true}, out3.view(),
                                       probs3.view(), test.ctx),
               Error);
}

TEST(FlashAttentionTest, BitwiseReproducibleWithTwoThreads) {
  Random random(6);
  const int64_t batch = 1, heads = 3, width = heads * 32, seq = 300;
  auto q = RandomTensor<float>(Shape{batch, seq, width}, random);
  auto k = RandomTensor<float>(Shape{batch, seq, width}, random);
  auto v = RandomTensor<float>(Shape{batch, seq, width}, random);
  auto d_output = RandomTensor<float>(q.shape(), random);
  const std::vector<double> slopes = AlibiSlopes(heads);
  const AttentionMask mask{true, {}, slopes};
  TestContext test(2, FlashAttentionScratchBytes<float>(batch, heads, seq, 2));
  auto run = [&] {
    std::vector<Tensor<float>> results;
    results.emplace_back(q.shape());                 // output
    results.emplace_back(Shape{batch, heads, seq});  // log-sum-exp
    results.emplace_back(q.shape());
    results.emplace_back(k.shape());
    results.emplace_back(v.shape());
    FlashAttentionForward<float>(q.view(), k.view(), v.view(), heads, mask, results[0].view(),
                                 results[1].view(), test.ctx);
    FlashAttentionBackward<float>(d_output.view(), q.view(), k.view(), v.view(), results[0].view(),
                                  results[1].view(), heads, mask, results[2].view(),
                                  results[3].view(), results[4].view(), test.ctx);
    return results;
  };
  const std::vector<Tensor<float>> first = run();
  for (int repeat = 0; repeat < 3; ++repeat) {
    const std::vector<Tensor<float>> again = run();
    for (size_t t = 0; t < first.size(); ++t) {
      EXPECT_EQ(std::memcmp(first[t].data(), again[t].data(), first[t].size() * sizeof(float)), 0)
          << "tensor " << t << ", repeat " << repeat;
    }
  }
}

TEST(FlashAttentionTest, LongCausalSequenceNeedsScratchLinearInLength) {
  const int64_t seq = 4096, head_dim = 64;
  const size_t scratch = FlashAttentionScratchBytes<float>(1, 1, seq, 1);
  const size_t probs_bytes = static_cast<size_t>(seq) * seq * sizeof(float);
  EXPECT_LT(scratch, size_t{4} << 20);
  EXPECT_LT(scratch * 100, probs_bytes) << scratch << " bytes of scratch";
  Random random(7);
  auto q = RandomTensor<float>(Shape{1, seq, head_dim}, random);
  auto k = RandomTensor<float>(Shape{1, seq, head_dim}, random);
  auto v = RandomTensor<float>(Shape{1, seq, head_dim}, random);
  auto d_output = RandomTensor<float>(q.shape(), random);
  TestContext test(1, scratch);  // exactly the stated size: more would be an arena error
  Tensor<float> output(q.shape()), lse(Shape{1, 1, seq});
  Tensor<float> d_q(q.shape()), d_k(k.shape()), d_v(v.shape());
  const AttentionMask mask{true};
  FlashAttentionForward<float>(q.view(), k.view(), v.view(), 1, mask, output.view(), lse.view(),
                               test.ctx);
  FlashAttentionBackward<float>(d_output.view(), q.view(), k.view(), v.view(), output.view(),
                                lse.view(), 1, mask, d_q.view(), d_k.view(), d_v.view(), test.ctx);
  // Spot-check a few query rows against a direct softmax in double.
  for (int64_t i : {int64_t{0}, int64_t{63}, int64_t{64}, int64_t{2500}, seq - 1}) {
    std::vector<double> scores(i + 1);
    double max_score = -INFINITY, sum = 0;
    for (int64_t j = 0; j <= i; ++j) {
      double dot = 0;
      for (int64_t c = 0; c < head_dim; ++c)
        dot += double(q[i * head_dim + c]) * k[j * head_dim + c];
      scores[j] = dot / std::sqrt(double(head_dim));
      max_score = std::max(max_score, scores[j]);
    }
    for (double& s : scores) sum += (s = std::exp(s - max_score));
    EXPECT_NEAR(lse[i], max_score + std::log(sum), 1e-4) << "row " << i;
    for (int64_t c = 0; c < head_dim; ++c) {
      double expected = 0;
      for (int64_t j = 0; j <= i; ++j) expected += scores[j] / sum * v[j * head_dim + c];
      EXPECT_NEAR(output[i * head_dim + c], expected, 1e-5) << "row " << i << " column " << c;
    }
  }
  for (const Tensor<float>* gradient : {&d_q, &d_k, &d_v}) {
    for (int64_t i = 0; i < gradient->size(); ++i) ASSERT_TRUE(std::isfinite((*gradient)[i]));
  }
}

TEST(FlashAttentionTest, BadArgumentsAreErrors) {
  TestContext test;
  Tensor<float> q(Shape{1, 3, 6}), k(Shape{1, 2, 6}), v(Shape{1, 2, 6}), output(Shape{1, 3, 6});
  Tensor<float> lse(Shape{1, 2, 3});
  EXPECT_THROW(FlashAttentionForward<float>(q.view(), k.view(), v.view(), 2, {true}, output.view(),
                                            lse.view(), test.ctx),
               Error);  // causal with fewer keys than queries
  Tensor<float> lse_wrong(Shape{1, 3, 3});
  EXPECT_THROW(FlashAttentionForward<float>(q.view(), k.view(), v.view(), 2, {}, output.view(),
                                            lse_wrong.view(), test.ctx),
               Error);
  const std::vector<double> slopes{0.5};
  EXPECT_THROW(FlashAttentionForward<float>(q.view(), k.view(), v.view(), 2, {false, {}, slopes},
                                            output.view(), lse.view(), test.ctx),
               Error);  // one slope for two heads
}

}  // namespace
}  // namespace qkv::ops
