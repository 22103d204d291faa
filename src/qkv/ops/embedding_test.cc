#include "qkv/ops/embedding.h"

#include <gtest/gtest.h>

#include "qkv/testing/gradient_check.h"

namespace qkv::ops {
namespace {

using testing::CheckGradients;
using testing::RandomTensor;
using testing::TestContext;

Tensor<int32_t> Tokens(std::initializer_list<int32_t> ids) {
  Tensor<int32_t> tokens(Shape{static_cast<int64_t>(ids.size())});
  int64_t i = 0;
  for (int32_t id : ids) tokens[i++] = id;
  return tokens;
}

TEST(EmbeddingTest, ForwardCopiesTheTokensRows) {
  TestContext test;
  Random random(1);
  auto table = RandomTensor<float>(Shape{6, 4}, random);
  auto tokens = Tokens({5, 0, 5, 2});
  Tensor<float> output(Shape{4, 4});
  EmbeddingForward<float>(tokens.view(), table.view(), output.view(), test.ctx);
  for (int64_t r = 0; r < 4; ++r) {
    for (int64_t c = 0; c < 4; ++c)
      EXPECT_EQ(output[r * 4 + c], table[static_cast<int64_t>(tokens[r]) * 4 + c]);
  }
}

TEST(EmbeddingTest, ScatterAddBackwardMatchesFiniteDifferences) {
  TestContext test;
  Random random(2);
  auto table = RandomTensor<double>(Shape{5, 3}, random);
  auto tokens = Tokens({1, 4, 1, 1, 0});  // repeated ids must sum
  auto d_output = RandomTensor<double>(Shape{5, 3}, random);
  Tensor<double> output(Shape{5, 3}), d_table(table.shape());
  auto forward = [&] {
    EmbeddingForward<double>(tokens.view(), table.view(), output.view(), test.ctx);
  };
  forward();
  EmbeddingBackward<double>(d_output.view(), tokens.view(), d_table.view(), test.ctx);
  for (const auto& result : CheckGradients(forward, output.view(), d_output.view(),
                                           {{"table", table.view(), d_table.view()}})) {
    EXPECT_LT(result.relative_error, 1e-8) << result.name;
  }
  // Row 2 and 3 were never used: exactly zero gradient.
  const int64_t width = table.dim(1);
  for (int64_t c = 0; c < width; ++c) {
    EXPECT_EQ(d_table[2 * width + c], 0.0);
    EXPECT_EQ(d_table[3 * width + c], 0.0);
  }
}

TEST(EmbeddingTest, TokenOutsideVocabularyIsAnErrorNamingIt) {
  TestContext test;
  Tensor<float> table(Shape{6, 4}), output(Shape{2, 4});
  for (int32_t bad : {6, -1}) {
    auto tokens = Tokens({0, bad});
    try {
      EmbeddingForward<float>(tokens.view(), table.view(), output.view(), test.ctx);
      FAIL() << "no error for token " << bad;
    } catch (const Error& error) {
      const std::string message = error.what();
      EXPECT_NE(message.find("token id " + std::to_string(bad) + " at position 1"),
                std::string::npos)
          << message;
    }
  }
}

}  // namespace
}  // namespace qkv::ops
