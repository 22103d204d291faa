// AttentionForwardOneQuery against AttentionForward (the oracle) with one query: multi-head
// and grouped-query, head sizes with and without a partial vector, one key to several dozen,
// padded keys and a query whose keys are all padded; float on every ISA this CPU runs.
#include "qkv/ops/attention_one_query.h"

#include <gtest/gtest.h>

#include <vector>

#include "qkv/core/random.h"
#include "qkv/ops/attention.h"
#include "qkv/testing/gradient_check.h"

namespace qkv::ops {
namespace {

using testing::MaxRelativeError;
using testing::RandomTensor;
using testing::TestContext;

struct OneQueryCase {
  int64_t heads, kv_heads, head_dim, key_len;
  bool padded;
};

std::vector<Isa> SupportedIsas() {
  std::vector<Isa> isas;
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512}) {
    if (CpuSupports(isa)) isas.push_back(isa);
  }
  return isas;
}

template <typename T>
void ExpectMatchesAttentionForward(const OneQueryCase& c, Isa isa, double tolerance) {
  Random random(c.heads * 1000 + c.key_len);
  auto q = RandomTensor<T>(Shape{1, 1, c.heads * c.head_dim}, random);
  auto k = RandomTensor<T>(Shape{1, c.key_len, c.kv_heads * c.head_dim}, random);
  auto v = RandomTensor<T>(k.shape(), random);
  Tensor<uint8_t> padding(Shape{1, c.key_len});
  for (int64_t j = 0; j < c.key_len; ++j) padding[j] = c.padded && j % 3 == 1 ? 1 : 0;
  const ConstTensorView<uint8_t> key_padding =
      c.padded ? ConstTensorView<uint8_t>(padding.view()) : ConstTensorView<uint8_t>();
  TestContext test;
  test.ctx.isa = isa;
  Tensor<T> expected(q.shape()), probs(Shape{1, c.heads, 1, c.key_len});
  AttentionForward<T>(q.view(), k.view(), v.view(), c.heads, AttentionMask{false, key_padding},
                      expected.view(), probs.view(), test.ctx);
  Tensor<T> output(q.shape()), scores(Shape{c.key_len});
  for (int64_t i = 0; i < output.size(); ++i) output[i] = T(7);  // overwritten, not added to
  AttentionForwardOneQuery<T>(q.view(), k.view(), v.view(), c.heads, key_padding, output.view(),
                              scores.view(), test.ctx);
  EXPECT_LT(MaxRelativeError(output.view(), expected.view(), 1e-6), tolerance);
  // scores holds the last head's probabilities.
  const ConstTensorView<T> last_head(probs.data() + (c.heads - 1) * c.key_len, Shape{c.key_len});
  EXPECT_LT(MaxRelativeError(scores.view(), last_head, 1e-6), tolerance);
}

const OneQueryCase kCases[] = {
    {4, 4, 64, 1, false}, {4, 4, 64, 37, true}, {4, 2, 64, 70, false},
    {3, 1, 12, 9, true},  {2, 2, 5, 130, true}, {1, 1, 16, 2, false},
};

TEST(AttentionOneQueryTest, FloatEqualsAttentionForwardOnEveryIsa) {
  for (Isa isa : SupportedIsas()) {
    for (const OneQueryCase& c : kCases) {
      SCOPED_TRACE(::testing::Message() << IsaName(isa) << " H" << c.heads << " KV" << c.kv_heads
                                        << " D" << c.head_dim << " Tk" << c.key_len);
      ExpectMatchesAttentionForward<float>(c, isa, 1e-5);
    }
  }
}

TEST(AttentionOneQueryTest, DoubleEqualsAttentionForward) {
  for (const OneQueryCase& c : kCases) {
    SCOPED_TRACE(::testing::Message() << "H" << c.heads << " Tk" << c.key_len);
    ExpectMatchesAttentionForward<double>(c, DefaultIsa(), 1e-13);
  }
}

TEST(AttentionOneQueryTest, EveryKeyPaddedGivesAZeroOutput) {
  for (Isa isa : SupportedIsas()) {
    Random random(3);
    auto q = RandomTensor<float>(Shape{1, 1, 8}, random);
    auto k = RandomTensor<float>(Shape{1, 5, 8}, random);
    Tensor<uint8_t> padding(Shape{1, 5});
    for (int64_t j = 0; j < 5; ++j) padding[j] = 1;
    Tensor<float> output(q.shape()), scores(Shape{5});
    for (int64_t i = 0; i < output.size(); ++i) output[i] = 7.0f;
    TestContext test;
    test.ctx.isa = isa;
    AttentionForwardOneQuery<float>(q.view(), k.view(), k.view(), 2, padding.view(), output.view(),
                                    scores.view(), test.ctx);
    for (int64_t i = 0; i < output.size(); ++i) EXPECT_EQ(output[i], 0.0f) << IsaName(isa);
  }
}

TEST(AttentionOneQueryTest, BadShapesAreErrors) {
  TestContext test;
  Tensor<float> q(Shape{1, 1, 8}), k(Shape{1, 5, 8}), output(Shape{1, 1, 8}), scores(Shape{5});
  Tensor<float> two_queries(Shape{1, 2, 8}), short_scores(Shape{4}), odd_keys(Shape{1, 5, 6});
  EXPECT_THROW(AttentionForwardOneQuery<float>(two_queries.view(), k.view(), k.view(), 2, {},
                                               output.view(), scores.view(), test.ctx),
               Error);
  EXPECT_THROW(AttentionForwardOneQuery<float>(q.view(), k.view(), k.view(), 2, {}, output.view(),
                                               short_scores.view(), test.ctx),
               Error);
  EXPECT_THROW(AttentionForwardOneQuery<float>(q.view(), odd_keys.view(), odd_keys.view(), 2, {},
                                               output.view(), scores.view(), test.ctx),
               Error);
}

}  // namespace
}  // namespace qkv::ops
