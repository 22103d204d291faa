// Self-attention and cross-attention layers: gradients, the causal property, determinism.
#include <gtest/gtest.h>

#include <cstring>

#include "qkv/layers/cross_attention.h"
#include "qkv/layers/self_attention.h"
#include "qkv/testing/gradient_check.h"

namespace qkv::layers {
namespace {

using testing::CheckGradients;
using testing::GradientToCheck;
using testing::RandomTensor;
using testing::TestContext;

// Parameters, their gradients and activations of one self-attention layer, in arenas.
template <typename T>
struct SelfAttentionFixture {
  SelfAttentionFixture(const SelfAttentionConfig& config_in, int64_t batch, int64_t seq,
                       uint64_t seed)
      : config(config_in), arena(Measure(config_in, batch, seq)) {
    params = AllocateSelfAttentionParams<T>(arena, config);
    d_params = AllocateSelfAttentionParams<T>(arena, config);
    acts = AllocateSelfAttentionActivations<T>(arena, config, batch, seq);
    Random random(seed);
    for (TensorView<T> view :
         {params.qkv_weight, params.qkv_bias, params.out_weight, params.out_bias}) {
      if (!view.empty()) random.FillNormal(view, 0.0, 0.4);
    }
  }
  static size_t Measure(const SelfAttentionConfig& config, int64_t batch, int64_t seq) {
    Arena measure = Arena::MeasureOnly();
    AllocateSelfAttentionParams<T>(measure, config);
    AllocateSelfAttentionParams<T>(measure, config);
    AllocateSelfAttentionActivations<T>(measure, config, batch, seq);
    return measure.used_bytes();
  }
  std::vector<GradientToCheck> Checks() requires std::is_same_v<T, double> {
    std::vector<GradientToCheck> checks = {{"qkv_weight", params.qkv_weight, d_params.qkv_weight},
                                           {"out_weight", params.out_weight, d_params.out_weight}};
    if (config.bias) {
      checks.push_back({"qkv_bias", params.qkv_bias, d_params.qkv_bias});
      checks.push_back({"out_bias", params.out_bias, d_params.out_bias});
    }
    return checks;
  }

  SelfAttentionConfig config;
  Arena arena;
  SelfAttentionParams<T> params, d_params;
  SelfAttentionActivations<T> acts;
};

struct SelfAttentionCase {
  const char* name;
  bool causal, bias, rope, padding;
  AttentionKernel kernel = AttentionKernel::kSimple;
  int64_t kv_heads = 0;   // set: 4 query heads sharing this many key/value heads
  int64_t head_size = 0;  // 0: width / heads
};

void PrintTo(const SelfAttentionCase& param, std::ostream* out) { *out << param.name; }

class SelfAttentionGradientTest : public ::testing::TestWithParam<SelfAttentionCase> {};

TEST_P(SelfAttentionGradientTest, BackwardMatchesFiniteDifferences) {
  const SelfAttentionCase& param = GetParam();
  TestContext test;
  SelfAttentionConfig config{8, 2, param.causal, param.bias, std::nullopt};
  if (param.rope) config.rope = ops::RopeConfig{100.0, ops::RopeStyle::kHalf};
  config.kernel = param.kernel;
  if (param.kv_heads > 0) {
    config.num_heads = 4;
    config.num_kv_heads = param.kv_heads;
  }
  config.head_size = param.head_size;
  const int64_t batch = 2, seq = 4, start = 3;
  SelfAttentionFixture<double> layer(config, batch, seq, 1);
  Random random(2);
  auto input = RandomTensor<double>(Shape{batch, seq, 8}, random);
  auto d_output = RandomTensor<double>(input.shape(), random);
  Tensor<uint8_t> padding(Shape{batch, seq});
  padding[1 * seq + 0] = 1;
  ConstTensorView<uint8_t> padding_view =
      param.padding ? ConstTensorView<uint8_t>(padding.view()) : ConstTensorView<uint8_t>();
  Tensor<double> output(input.shape()), d_input(input.shape());
  auto forward = [&] {
    SelfAttentionForward<double>(config, layer.params, input.view(), start, padding_view,
                                 layer.acts, output.view(), test.ctx);
  };
  forward();
  SelfAttentionBackward<double>(config, layer.params, input.view(), start, padding_view, layer.acts,
                                d_output.view(), d_input.view(), layer.d_params, test.ctx);
  auto checks = layer.Checks();
  checks.push_back({"input", input.view(), d_input.view()});
  for (const auto& result : CheckGradients(forward, output.view(), d_output.view(), checks)) {
    EXPECT_LT(result.relative_error, 1e-7) << result.name;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Options, SelfAttentionGradientTest,
    ::testing::Values(
        SelfAttentionCase{"CausalBias", true, true, false, false},
        SelfAttentionCase{"CausalRope", true, true, true, false},
        SelfAttentionCase{"NoBiasRopePadding", false, false, true, true},
        SelfAttentionCase{"Bidirectional", false, true, false, false},
        SelfAttentionCase{"FlashCausalRope", true, true, true, false, AttentionKernel::kFlash},
        SelfAttentionCase{"FlashNoBiasRopePadding", false, false, true, true,
                          AttentionKernel::kFlash},
        SelfAttentionCase{"GroupedQueryRope", true, true, true, false, AttentionKernel::kSimple, 2},
        SelfAttentionCase{"MultiQueryHeadSize6Padding", true, false, true, true,
                          AttentionKernel::kSimple, 1, 6},
        SelfAttentionCase{"FlashGroupedQueryHeadSize4", true, true, true, true,
                          AttentionKernel::kFlash, 2, 4}),
    [](const ::testing::TestParamInfo<SelfAttentionCase>& param_info) {
      return param_info.param.name;
    });

// Under the causal mask, changing the token at position j leaves every output at positions
// < j bitwise unchanged — the property that lets a whole sequence train in parallel.
TEST(SelfAttentionTest, CausalMaskHidesTheFutureBitwise) {
  for (bool rope : {false, true}) {
    TestContext test(2);
    SelfAttentionConfig config{16, 4, true, true, std::nullopt};
    if (rope) config.rope = ops::RopeConfig{};
    const int64_t batch = 2, seq = 9, width = 16;
    SelfAttentionFixture<float> layer(config, batch, seq, 3);
    Random random(4);
    auto input = RandomTensor<float>(Shape{batch, seq, width}, random);
    Tensor<float> reference(input.shape());
    SelfAttentionForward<float>(config, layer.params, input.view(), 0, {}, layer.acts,
                                reference.view(), test.ctx);
    for (int64_t j = 0; j < seq; ++j) {
      Tensor<float> changed = input.Clone();
      for (int64_t b = 0; b < batch; ++b) {
        for (int64_t c = 0; c < width; ++c) changed[(b * seq + j) * width + c] += 5.0f;
      }
      Tensor<float> output(input.shape());
      SelfAttentionForward<float>(config, layer.params, changed.view(), 0, {}, layer.acts,
                                  output.view(), test.ctx);
      for (int64_t b = 0; b < batch; ++b) {
        const size_t before_j = static_cast<size_t>(j * width) * sizeof(float);
        EXPECT_EQ(std::memcmp(output.data() + b * seq * width, reference.data() + b * seq * width,
                              before_j),
                  0)
            << "positions before " << j << " changed (batch " << b << ", rope " << rope << ")";
        // Position j itself must change, or the test would pass vacuously.
        EXPECT_NE(output[(b * seq + j) * width], reference[(b * seq + j) * width]);
      }
    }
  }
}

TEST(SelfAttentionTest, SameInputsAndThreadsGiveBitwiseIdenticalResults) {
  SelfAttentionConfig config{32, 4, true, true, ops::RopeConfig{}};
  const int64_t batch = 3, seq = 17;
  auto run = [&](Tensor<float>& output, Tensor<float>& d_input, std::vector<float>& d_params) {
    TestContext test(2);
    SelfAttentionFixture<float> layer(config, batch, seq, 5);
    Random random(6);
    auto input = RandomTensor<float>(Shape{batch, seq, 32}, random);
    auto d_output = RandomTensor<float>(input.shape(), random);
    SelfAttentionForward<float>(config, layer.params, input.view(), 0, {}, layer.acts,
                                output.view(), test.ctx);
    SelfAttentionBackward<float>(config, layer.params, input.view(), 0, {}, layer.acts,
                                 d_output.view(), d_input.view(), layer.d_params, test.ctx);
    d_params.assign(layer.d_params.qkv_weight.begin(), layer.d_params.qkv_weight.end());
    d_params.insert(d_params.end(), layer.d_params.out_bias.begin(), layer.d_params.out_bias.end());
  };
  Tensor<float> output_a(Shape{batch, seq, 32}), output_b(Shape{batch, seq, 32});
  Tensor<float> d_input_a(output_a.shape()), d_input_b(output_a.shape());
  std::vector<float> d_params_a, d_params_b;
  run(output_a, d_input_a, d_params_a);
  run(output_b, d_input_b, d_params_b);
  const size_t bytes = static_cast<size_t>(output_a.size()) * sizeof(float);
  EXPECT_EQ(std::memcmp(output_a.data(), output_b.data(), bytes), 0);
  EXPECT_EQ(std::memcmp(d_input_a.data(), d_input_b.data(), bytes), 0);
  EXPECT_EQ(d_params_a, d_params_b);
}

TEST(SelfAttentionTest, ConfigErrorsNameTheValues) {
  auto message_of = [](const SelfAttentionConfig& config) {
    try {
      config.Validate();
    } catch (const Error& error) {
      return std::string(error.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message_of({10, 3, true, true, std::nullopt})
                .find("width 10 is not divisible by "
                      "num_heads 3"),
            std::string::npos);
  EXPECT_NE(message_of({12, 4, true, true, ops::RopeConfig{}}).find("even head size, got 3"),
            std::string::npos);
  EXPECT_NE(message_of({0, 1, true, true, std::nullopt}).find("width must be > 0, got 0"),
            std::string::npos);
  EXPECT_NE(message_of({8, -2, true, true, std::nullopt}).find("num_heads must be > 0, got -2"),
            std::string::npos);
}

TEST(CrossAttentionTest, BackwardMatchesFiniteDifferences) {
  TestContext test;
  CrossAttentionConfig config{6, 2, true};
  const int64_t batch = 2, query_len = 3, key_len = 5;
  Arena arena(1 << 20);
  auto params = AllocateCrossAttentionParams<double>(arena, config);
  auto d_params = AllocateCrossAttentionParams<double>(arena, config);
  auto acts = AllocateCrossAttentionActivations<double>(arena, config, batch, query_len, key_len);
  Random random(7);
  for (TensorView<double> view : {params.q_weight, params.q_bias, params.kv_weight, params.kv_bias,
                                  params.out_weight, params.out_bias}) {
    random.FillNormal(view, 0.0, 0.5);
  }
  auto input = RandomTensor<double>(Shape{batch, query_len, 6}, random);
  auto memory = RandomTensor<double>(Shape{batch, key_len, 6}, random);
  auto d_output = RandomTensor<double>(input.shape(), random);
  Tensor<uint8_t> padding(Shape{batch, key_len});
  padding[0 * key_len + 4] = 1;
  padding[1 * key_len + 1] = 1;
  Tensor<double> output(input.shape()), d_input(input.shape()), d_memory(memory.shape());
  auto forward = [&] {
    CrossAttentionForward<double>(config, params, input.view(), memory.view(), padding.view(), acts,
                                  output.view(), test.ctx);
  };
  forward();
  CrossAttentionBackward<double>(config, params, input.view(), memory.view(), padding.view(), acts,
                                 d_output.view(), d_input.view(), d_memory.view(), d_params,
                                 test.ctx);
  for (const auto& result : CheckGradients(forward, output.view(), d_output.view(),
                                           {{"input", input.view(), d_input.view()},
                                            {"memory", memory.view(), d_memory.view()},
                                            {"q_weight", params.q_weight, d_params.q_weight},
                                            {"q_bias", params.q_bias, d_params.q_bias},
                                            {"kv_weight", params.kv_weight, d_params.kv_weight},
                                            {"kv_bias", params.kv_bias, d_params.kv_bias},
                                            {"out_weight", params.out_weight, d_params.out_weight},
                                            {"out_bias", params.out_bias, d_params.out_bias}})) {
    EXPECT_LT(result.relative_error, 1e-7) << result.name;
  }
  // A padded memory position has no influence at all: its gradient is exactly zero.
  for (int64_t c = 0; c < 6; ++c) EXPECT_EQ(d_memory[(0 * key_len + 4) * 6 + c], 0.0);
}

TEST(CrossAttentionTest, MismatchedBatchOrWidthIsAnError) {
  TestContext test;
  CrossAttentionConfig config{4, 2, false};
  Arena arena(1 << 16);
  auto params = AllocateCrossAttentionParams<float>(arena, config);
  auto acts = AllocateCrossAttentionActivations<float>(arena, config, 1, 2, 3);
  Tensor<float> input(Shape{1, 2, 4}), memory(Shape{2, 3, 4}), output(Shape{1, 2, 4});
  EXPECT_THROW(CrossAttentionForward<float>(config, params, input.view(), memory.view(), {}, acts,
                                            output.view(), test.ctx),
               Error);
  Tensor<float> narrow_memory(Shape{1, 3, 5});
  EXPECT_THROW(CrossAttentionForward<float>(config, params, input.view(), narrow_memory.view(), {},
                                            acts, output.view(), test.ctx),
               Error);
}

}  // namespace
}  // namespace qkv::layers

namespace qkv::layers {
namespace {

// Without position information and without the causal mask, attention cannot tell positions
// apart: permuting the input tokens permutes the outputs the same way (NoPE's property).
TEST(SelfAttentionTest, NoPositionsWithoutMaskIsPermutationEquivariant) {
  testing::TestContext test;
  SelfAttentionConfig config{8, 2, /*causal=*/false, true, std::nullopt};
  const int64_t seq = 5;
  SelfAttentionFixture<double> layer(config, 1, seq, 21);
  Random random(22);
  auto input = testing::RandomTensor<double>(Shape{1, seq, 8}, random);
  const int64_t permutation[seq] = {3, 0, 4, 1, 2};
  Tensor<double> permuted(input.shape()), output(input.shape()), permuted_output(input.shape());
  for (int64_t t = 0; t < seq; ++t) {
    for (int64_t c = 0; c < 8; ++c) permuted[t * 8 + c] = input[permutation[t] * 8 + c];
  }
  SelfAttentionForward<double>(config, layer.params, input.view(), 0, {}, layer.acts, output.view(),
                               test.ctx);
  SelfAttentionForward<double>(config, layer.params, permuted.view(), 0, {}, layer.acts,
                               permuted_output.view(), test.ctx);
  for (int64_t t = 0; t < seq; ++t) {
    for (int64_t c = 0; c < 8; ++c) {
      EXPECT_NEAR(permuted_output[t * 8 + c], output[permutation[t] * 8 + c], 1e-12);
    }
  }
  // With RoPE the same permutation changes the outputs (the property is not vacuous).
  config.rope = ops::RopeConfig{};
  SelfAttentionForward<double>(config, layer.params, permuted.view(), 0, {}, layer.acts,
                               permuted_output.view(), test.ctx);
  SelfAttentionForward<double>(config, layer.params, input.view(), 0, {}, layer.acts, output.view(),
                               test.ctx);
  EXPECT_GT(std::abs(permuted_output[0] - output[permutation[0] * 8]), 1e-6);
}

}  // namespace
}  // namespace qkv::layers
