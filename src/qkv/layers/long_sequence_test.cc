// One causal sequence of 16,384 tokens through a self-attention layer of 12 heads of 64 with
// the flash kernel: forward, backward and one gradient step, with every buffer counted. The
// simple kernel would need its (H, T, T) probabilities alone, 12 GiB; flash's whole layer
// (parameters, activations, gradients, scratch) must stay below one T×T float matrix, 1 GiB.
// A few seconds in release builds; skipped under the sanitizers, which make it minutes.
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <cmath>

#include "qkv/layers/self_attention.h"
#include "qkv/testing/gradient_check.h"

namespace qkv::layers {
namespace {

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif

TEST(LongSequenceTest, SixteenThousandTokensTrainWithoutATokenByTokenMatrix) {
  if (kSanitized) GTEST_SKIP() << "16k-token attention takes minutes under the sanitizers";
  const int64_t seq = 16384, width = 768, heads = 12, batch = 1;
  SelfAttentionConfig config{width, heads, /*causal=*/true, /*bias=*/true, ops::RopeConfig{}};
  config.kernel = AttentionKernel::kFlash;
  const int threads = 2;

  Arena measure = Arena::MeasureOnly();
  AllocateSelfAttentionParams<float>(measure, config);
  AllocateSelfAttentionParams<float>(measure, config);
  AllocateSelfAttentionActivations<float>(measure, config, batch, seq);
  const size_t layer_bytes = measure.used_bytes();
  const size_t scratch_bytes =
      SelfAttentionScratchBytes(config, batch, seq, threads, sizeof(float));
  const size_t io_bytes = 3 * sizeof(float) * static_cast<size_t>(seq * width);  // x, dy, dx
  const size_t token_by_token = sizeof(float) * static_cast<size_t>(seq) * seq;
  EXPECT_LT(layer_bytes + scratch_bytes + io_bytes, token_by_token);

  Arena arena(layer_bytes);
  SelfAttentionParams<float> params = AllocateSelfAttentionParams<float>(arena, config);
  SelfAttentionParams<float> grads = AllocateSelfAttentionParams<float>(arena, config);
  SelfAttentionActivations<float> acts =
      AllocateSelfAttentionActivations<float>(arena, config, batch, seq);
  EXPECT_TRUE(acts.probs.empty());
  testing::TestContext test(threads, scratch_bytes);
  Random random(1);
  random.FillNormal(params.qkv_weight, 0.0, 0.05);
  random.FillNormal(params.out_weight, 0.0, 0.05);
  auto input = testing::RandomTensor<float>(Shape{batch, seq, width}, random);
  Tensor<float> output(input.shape()), d_input(input.shape());

  // Loss = 0.5 * |output|², so d_output = output and one small step must lower it.
  auto loss = [&] {
    SelfAttentionForward<float>(config, params, input.view(), 0, {}, acts, output.view(), test.ctx);
    double sum = 0;
    for (float value : output.view()) sum += 0.5 * static_cast<double>(value) * value;
    return sum;
  };
  const double before = loss();
  ASSERT_TRUE(std::isfinite(before));
  SelfAttentionBackward<float>(config, params, input.view(), 0, {}, acts, output.view(),
                               d_input.view(), grads, test.ctx);
  double squared_norm = 0;
  for (TensorView<float> grad :
       {grads.qkv_weight, grads.qkv_bias, grads.out_weight, grads.out_bias}) {
    for (float value : grad) squared_norm += static_cast<double>(value) * value;
  }
  ASSERT_GT(squared_norm, 0);
  const float step = static_cast<float>(1e-3 * before / squared_norm);
  for (auto [param, grad] :
       {std::pair{params.qkv_weight, grads.qkv_weight}, std::pair{params.qkv_bias, grads.qkv_bias},
        std::pair{params.out_weight, grads.out_weight},
        std::pair{params.out_bias, grads.out_bias}}) {
    for (int64_t i = 0; i < param.size(); ++i) param.data()[i] -= step * grad.data()[i];
  }
  const double after = loss();
  EXPECT_LT(after, before);
  // A first-order step of size 1e-3 * loss / |g|² lowers the loss by about 1e-3 * loss.
  EXPECT_NEAR((before - after) / before, 1e-3, 5e-4);

  // The whole process, this test's buffers included, never held a T×T matrix's worth more.
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  const size_t peak_bytes = static_cast<size_t>(usage.ru_maxrss) * 1024;
  EXPECT_LT(peak_bytes, layer_bytes + scratch_bytes + io_bytes + token_by_token / 2);
}

}  // namespace
}  // namespace qkv::layers
