// The Transformer block of an encoder-decoder: the decoder block with its cross-attention
// sublayer and the encoder block with padded keys, against finite differences in double for
// every parameter, the input and the memory, in both norm placements.
#include "qkv/layers/transformer_block.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "qkv/testing/gradient_check.h"

namespace qkv::layers {
namespace {

using testing::CheckGradients;
using testing::GradientToCheck;
using testing::RandomTensor;
using testing::TestContext;

struct BlockCase {
  const char* name;
  NormPlacement placement;
  bool cross;  // a decoder block (causal, cross-attention) or an encoder block (padded keys)
};

void PrintTo(const BlockCase& param, std::ostream* out) { *out << param.name; }

BlockConfig ConfigFor(const BlockCase& param, int64_t width) {
  BlockConfig config;
  config.attention = SelfAttentionConfig{width, 2, /*causal=*/param.cross, true, std::nullopt};
  config.norm = NormConfig{NormKind::kLayerNorm, width, true, 1e-5};
  config.ffn = FeedForwardConfig{width, 2 * width, FfnKind::kRelu, true};
  config.placement = param.placement;
  if (param.cross) config.cross_attention = CrossAttentionConfig{width, 2, true};
  return config;
}

class BlockGradientTest : public ::testing::TestWithParam<BlockCase> {};

TEST_P(BlockGradientTest, EveryGradientMatchesFiniteDifferences) {
  const int64_t batch = 2, seq = 4, memory_len = 5, width = 6;
  const BlockConfig config = ConfigFor(GetParam(), width);
  TestContext test(1, BlockBackwardScratchBytes(config, batch, seq, 1, sizeof(double), memory_len) +
                          (size_t{1} << 16));
  Arena arena(size_t{1} << 22);
  BlockParams<double> params, d_params;
  std::vector<GradientToCheck> checks;
  Random random(11);
  ForEachBlockParameter(config, params, [&](const ParameterInfo& info, TensorView<double>& slot) {
    slot = arena.Allocate<double>(info.shape);
    random.FillNormal(slot, info.init == ParameterInit::kOnes ? 1.0 : 0.0, 0.4);
  });
  ForEachBlockParameter(config, d_params, AllocateFrom<double>(arena));
  {
    // The same walk over both gives each parameter beside its gradient.
    std::vector<TensorView<double>> values, gradients;
    std::vector<std::string> names;
    ForEachBlockParameter(config, params, [&](const ParameterInfo& info, TensorView<double>& slot) {
      names.push_back(info.name);
      values.push_back(slot);
    });
    ForEachBlockParameter(config, d_params, [&](const ParameterInfo&, TensorView<double>& slot) {
      gradients.push_back(slot);
    });
    for (size_t i = 0; i < names.size(); ++i) checks.push_back({names[i], values[i], gradients[i]});
  }
  const BlockActivations<double> acts =
      AllocateBlockActivations<double>(arena, config, batch, seq, BlockPass::kTraining, memory_len);

  auto input = RandomTensor<double>(Shape{batch, seq, width}, random);
  auto memory = RandomTensor<double>(Shape{batch, memory_len, width}, random);
  auto d_output = RandomTensor<double>(input.shape(), random);
  Tensor<uint8_t> key_padding(Shape{batch, seq}), memory_padding(Shape{batch, memory_len});
  key_padding[1 * seq + 3] = 1;  // the encoder's second source is one token shorter
  memory_padding[0 * memory_len + 4] = 1;
  memory_padding[1 * memory_len + 3] = 1;
  memory_padding[1 * memory_len + 4] = 1;
  BlockContext<double> context;
  if (config.cross_attention) {
    context.memory = memory.view();
    context.memory_padding = memory_padding.view();
  } else {
    context.key_padding = key_padding.view();
  }
  Tensor<double> output(input.shape()), d_input(input.shape()), d_memory(memory.shape());
  auto forward = [&] {
    BlockForward<double>(config, params, input.view(), context, true, nullptr, acts, output.view(),
                         test.ctx);
  };
  forward();
  // d_memory accumulates: start from ones and take them off after.
  for (int64_t i = 0; i < d_memory.size(); ++i) d_memory[i] = 1.0;
  BlockBackward<double>(
      config, params, input.view(), context, acts, d_output.view(), d_input.view(),
      config.cross_attention ? d_memory.view() : TensorView<double>{}, d_params, test.ctx);
  for (int64_t i = 0; i < d_memory.size(); ++i) d_memory[i] -= 1.0;
  checks.push_back({"input", input.view(), d_input.view()});
  if (config.cross_attention)
    checks.push_back({"memory", memory.view(), d_memory.view()});
  else
    checks.push_back({"memory (unused)", memory.view(), d_memory.view()});
  for (const auto& result : CheckGradients(forward, output.view(), d_output.view(), checks)) {
    EXPECT_LT(result.relative_error, 1e-6) << result.name;
  }
  if (config.cross_attention) {
    // A padded memory position has no influence at all.
    for (int64_t c = 0; c < width; ++c) {
      EXPECT_EQ(d_memory[(1 * memory_len + 3) * width + c], 0.0);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Placements, BlockGradientTest,
                         ::testing::Values(BlockCase{"PostNormDecoder", NormPlacement::kPost, true},
                                           BlockCase{"PreNormDecoder", NormPlacement::kPre, true},
                                           BlockCase{"PostNormEncoder", NormPlacement::kPost,
                                                     false},
                                           BlockCase{"PreNormEncoder", NormPlacement::kPre, false}),
                         [](const auto& test_info) { return std::string(test_info.param.name); });

TEST(BlockTest, CrossAttentionBlockWithoutMemoryIsAnError) {
  TestContext test;
  const BlockConfig config = ConfigFor(BlockCase{"", NormPlacement::kPost, true}, 4);
  Arena arena(size_t{1} << 20);
  BlockParams<float> params;
  ForEachBlockParameter(config, params, AllocateFrom<float>(arena));
  const auto acts = AllocateBlockActivations<float>(arena, config, 1, 2, BlockPass::kTraining, 3);
  Tensor<float> input(Shape{1, 2, 4}), output(Shape{1, 2, 4});
  try {
    BlockForward<float>(config, params, input.view(), BlockContext<float>{}, false, nullptr, acts,
                        output.view(), test.ctx);
    FAIL() << "no error";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("memory"), std::string::npos) << error.what();
  }
}

}  // namespace
}  // namespace qkv::layers
