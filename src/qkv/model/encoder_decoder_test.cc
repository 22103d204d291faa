// The encoder-decoder model: every parameter's gradient against finite differences in double,
// padding invariance (a pair alone and inside a padded batch), the flash kernel against the
// simple one, and config errors.
#include "qkv/model/encoder_decoder.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <string>
#include <vector>

#include "qkv/core/random.h"
#include "qkv/ops/cross_entropy.h"
#include "qkv/testing/gradient_check.h"

namespace qkv::model {
namespace {

using testing::NumericalGradient;
using testing::TestContext;

EncoderDecoderConfig TinyConfig(NormPlacement placement, PositionEncoding position) {
  EncoderDecoderConfig config;
  config.vocab_size = 9;
  config.width = 4;
  config.num_heads = 2;
  config.ffn_dim = 6;
  config.encoder_layers = 2;
  config.decoder_layers = 2;
  config.max_positions = 8;
  config.position = position;
  config.norm_placement = placement;
  config.pad_id = 0;
  config.eos_id = 1;
  config.decoder_start_id = 0;
  config.ffn = FfnKind::kGelu;  // smooth: ReLU's kinks would make finite differences noisy
  return config;
}

// A model's parameters, gradients and activations for one batch size and lengths.
template <typename T>
struct Fixture {
  Fixture(const EncoderDecoderConfig& config_in, int64_t batch, int64_t source_len,
          int64_t target_len, uint64_t seed, ActivationUse use = ActivationUse::kTraining)
      : config(config_in),
        arena(size_t{16} << 20),
        test(1,
             EncoderDecoderScratchBytes(config_in, batch, source_len, target_len, 1, sizeof(T))) {
    ForEachParameter(config, params, layers::AllocateFrom<T>(arena));
    ForEachParameter(config, grads, layers::AllocateFrom<T>(arena));
    Random random(seed);
    // Larger than the training init so that every path carries a visible gradient.
    ForEachParameter(config, params, [&](const layers::ParameterInfo& info, TensorView<T>& slot) {
      random.FillNormal(slot, info.init == layers::ParameterInit::kOnes ? 1.0 : 0.0, 0.5);
    });
    acts = AllocateEncoderDecoderActivations<T>(arena, config, batch, source_len, target_len, use);
  }
  T Loss(const Tensor<int32_t>& source, const Tensor<int32_t>& decoder_input,
         const Tensor<int32_t>& labels) {
    return EncoderDecoderForward<T>(config, params, source.view(), decoder_input.view(),
                                    labels.view(), false, nullptr, acts, test.ctx);
  }

  EncoderDecoderConfig config;
  Arena arena;
  TestContext test;
  EncoderDecoderParams<T> params, grads;
  EncoderDecoderActivations<T> acts;
};

Tensor<int32_t> Ids(Shape shape, std::vector<int32_t> values) {
  Tensor<int32_t> ids(shape);
  for (int64_t i = 0; i < ids.size(); ++i) ids[i] = values[static_cast<size_t>(i)];
  return ids;
}

constexpr int32_t kIgnore = ops::kDefaultIgnoreIndex;

struct ModelCase {
  const char* name;
  NormPlacement placement;
  PositionEncoding position;
  AttentionImpl attention = AttentionImpl::kSimple;
};

class EncoderDecoderGradientTest : public ::testing::TestWithParam<ModelCase> {};

TEST_P(EncoderDecoderGradientTest, EveryParameterGradientMatchesFiniteDifferences) {
  EncoderDecoderConfig config = TinyConfig(GetParam().placement, GetParam().position);
  config.attention = GetParam().attention;
  Fixture<double> model(config, 2, 4, 3, 5);
  // Two pairs: the second source one token shorter (padded), the second target shorter too.
  const auto source = Ids(Shape{2, 4}, {5, 3, 7, 1, 4, 8, 1, 0});
  const auto decoder_input = Ids(Shape{2, 3}, {0, 6, 2, 0, 3, 0});
  const auto labels = Ids(Shape{2, 3}, {6, 2, 1, 3, 1, kIgnore});
  model.Loss(source, decoder_input, labels);
  EncoderDecoderBackward<double>(config, model.params, source.view(), decoder_input.view(),
                                 labels.view(), 1.0, model.acts, model.grads, model.test.ctx);
  std::vector<TensorView<double>> values, gradients;
  std::vector<std::string> names;
  ForEachParameter(config, model.params,
                   [&](const layers::ParameterInfo& info, TensorView<double>& slot) {
                     names.push_back(info.name);
                     values.push_back(slot);
                   });
  ForEachParameter(
      config, model.grads,
      [&](const layers::ParameterInfo&, TensorView<double>& slot) { gradients.push_back(slot); });
  for (size_t i = 0; i < names.size(); ++i) {
    // Cross-attention's query gradients are small in this tiny model (the normalised memory
    // rows are alike, so its softmax is nearly flat), so the step balances rounding noise (h
    // 1e-6 gives up to 7e-6) against truncation (h 1e-4: 2e-6 elsewhere); a wrong gradient is
    // off by far more.
    const Tensor<double> numerical = NumericalGradient(
        values[i], [&] { return model.Loss(source, decoder_input, labels); }, 1e-5);
    EXPECT_LT(testing::MaxRelativeError(ConstTensorView<double>(gradients[i]), numerical.view()),
              1e-5)
        << names[i];
  }
}

INSTANTIATE_TEST_SUITE_P(
    Architectures, EncoderDecoderGradientTest,
    ::testing::Values(
        ModelCase{"PostNormSinusoidal", NormPlacement::kPost, PositionEncoding::kSinusoidal},
        ModelCase{"PreNormSinusoidal", NormPlacement::kPre, PositionEncoding::kSinusoidal},
        ModelCase{"PostNormLearned", NormPlacement::kPost, PositionEncoding::kLearned},
        ModelCase{"PreNormNoPositions", NormPlacement::kPre, PositionEncoding::kNone},
        // Every attention sublayer (encoder, decoder, cross) through ops/flash_attention.
        ModelCase{"PostNormFlash", NormPlacement::kPost, PositionEncoding::kSinusoidal,
                  AttentionImpl::kFlash}),
    [](const auto& test_info) { return std::string(test_info.param.name); });

TEST(EncoderDecoderTest, APairAloneAndInsideAPaddedBatchHaveTheSameLoss) {
  for (NormPlacement placement : {NormPlacement::kPost, NormPlacement::kPre}) {
    const EncoderDecoderConfig config = TinyConfig(placement, PositionEncoding::kSinusoidal);
    Fixture<double> alone(config, 1, 3, 2, 9), batched(config, 2, 5, 4, 9);
    // The same parameters in both (same seed): the first pair is padded in the batch.
    const double loss_alone =
        alone.Loss(Ids(Shape{1, 3}, {5, 3, 1}), Ids(Shape{1, 2}, {0, 6}), Ids(Shape{1, 2}, {6, 1}));
    // In the batch the second pair's labels are all ignored, so the mean is the first pair's.
    const double loss_batched = batched.Loss(
        Ids(Shape{2, 5}, {5, 3, 1, 0, 0, 4, 8, 2, 7, 1}),
        Ids(Shape{2, 4}, {0, 6, 0, 0, 0, 3, 2, 4}),
        Ids(Shape{2, 4}, {6, 1, kIgnore, kIgnore, kIgnore, kIgnore, kIgnore, kIgnore}));
    EXPECT_NEAR(loss_batched, loss_alone, 1e-12 * std::abs(loss_alone)) << ToString(placement);
  }
}

// Forward-only activations share one block's bytes across the layers of a stack: the same
// loss and logits to the bit in less memory, and a backward or training pass is refused.
TEST(EncoderDecoderTest, ForwardOnlyActivationsGiveTheSameLogitsInLessMemory) {
  const auto source = Ids(Shape{2, 4}, {5, 3, 7, 1, 4, 8, 1, 0});
  const auto decoder_input = Ids(Shape{2, 3}, {0, 6, 2, 0, 3, 0});
  const auto labels = Ids(Shape{2, 3}, {6, 2, 1, 3, 1, kIgnore});
  for (NormPlacement placement : {NormPlacement::kPost, NormPlacement::kPre}) {
    EncoderDecoderConfig config = TinyConfig(placement, PositionEncoding::kSinusoidal);
    config.encoder_layers = config.decoder_layers = 3;
    Fixture<double> training(config, 2, 4, 3, 4);
    Fixture<double> forward_only(config, 2, 4, 3, 4, ActivationUse::kForwardOnly);
    EXPECT_EQ(forward_only.Loss(source, decoder_input, labels),
              training.Loss(source, decoder_input, labels))
        << ToString(placement);
    ASSERT_EQ(forward_only.acts.logits.size(), training.acts.logits.size());
    for (int64_t i = 0; i < training.acts.logits.size(); ++i) {
      ASSERT_EQ(forward_only.acts.logits[i], training.acts.logits[i]) << i;
    }
    std::array<size_t, 2> bytes{};
    for (const ActivationUse use : {ActivationUse::kTraining, ActivationUse::kForwardOnly}) {
      Arena measure = Arena::MeasureOnly();
      AllocateEncoderDecoderActivations<double>(measure, config, 2, 4, 3, use);
      bytes[static_cast<size_t>(use)] = measure.used_bytes();
    }
    EXPECT_LT(bytes[1] * 2, bytes[0]) << "3 layers per stack share one block's activations";
    EXPECT_THAT(
        [&] {
          EncoderDecoderBackward<double>(
              config, forward_only.params, source.view(), decoder_input.view(), labels.view(), 1.0,
              forward_only.acts, forward_only.grads, forward_only.test.ctx);
        },
        ::testing::ThrowsMessage<Error>(::testing::HasSubstr("not forward only")));
    EXPECT_THAT(
        [&] {
          EncoderDecoderForward<double>(config, forward_only.params, source.view(),
                                        decoder_input.view(), labels.view(), true, nullptr,
                                        forward_only.acts, forward_only.test.ctx);
        },
        ::testing::ThrowsMessage<Error>(::testing::HasSubstr("allocated for training")));
  }
}

// Over several 64-key tiles, with the second source's trailing padding spanning whole tiles
// (which the flash kernel skips) and a short second target: the flash kernel's loss and
// gradients equal the simple kernel's to double rounding.
TEST(EncoderDecoderTest, TheFlashKernelGivesTheSimpleKernelsLossAndGradients) {
  const int64_t batch = 2, source_len = 150, target_len = 70;
  Tensor<int32_t> source(Shape{batch, source_len}), decoder_input(Shape{batch, target_len}),
      labels(Shape{batch, target_len});
  Random random(21);
  auto token = [&] { return static_cast<int32_t>(2 + random.NextU64() % 7); };  // not pad/eos
  for (int64_t b = 0; b < batch; ++b) {
    const int64_t source_tokens = b == 0 ? source_len : 20, target_tokens = b == 0 ? 70 : 9;
    for (int64_t j = 0; j < source_len; ++j) {
      source[b * source_len + j] = j + 1 < source_tokens ? token() : j + 1 == source_tokens ? 1 : 0;
    }
    for (int64_t t = 0; t < target_len; ++t) {
      const bool real = t < target_tokens;
      labels[b * target_len + t] = real ? token() : kIgnore;
      decoder_input[b * target_len + t] = t == 0 ? 0 : real ? labels[b * target_len + t - 1] : 0;
    }
  }
  std::vector<double> losses;
  std::vector<std::vector<double>> gradients;
  for (AttentionImpl attention : {AttentionImpl::kSimple, AttentionImpl::kFlash}) {
    EncoderDecoderConfig config = TinyConfig(NormPlacement::kPost, PositionEncoding::kSinusoidal);
    config.max_positions = source_len;
    config.attention = attention;
    Fixture<double> model(config, batch, source_len, target_len, 5);
    ASSERT_EQ(model.acts.decoder_config.cross_attention->kernel,
              attention == AttentionImpl::kFlash ? layers::AttentionKernel::kFlash
                                                 : layers::AttentionKernel::kSimple);
    losses.push_back(model.Loss(source, decoder_input, labels));
    EncoderDecoderBackward<double>(config, model.params, source.view(), decoder_input.view(),
                                   labels.view(), 1.0, model.acts, model.grads, model.test.ctx);
    std::vector<double>& flat = gradients.emplace_back();
    ForEachParameter(config, model.grads,
                     [&](const layers::ParameterInfo&, TensorView<double>& slot) {
                       flat.insert(flat.end(), slot.begin(), slot.end());
                     });
  }
  EXPECT_NEAR(losses[1], losses[0], 1e-12 * std::abs(losses[0]));
  ASSERT_EQ(gradients[1].size(), gradients[0].size());
  double largest = 0, worst = 0;
  for (size_t i = 0; i < gradients[0].size(); ++i) {
    largest = std::max(largest, std::abs(gradients[0][i]));
    worst = std::max(worst, std::abs(gradients[1][i] - gradients[0][i]));
  }
  EXPECT_GT(largest, 0.0);
  EXPECT_LT(worst, 1e-11 * largest);
}

TEST(EncoderDecoderTest, ConfigErrorsNameTheValue) {
  auto error_of = [](EncoderDecoderConfig config) {
    try {
      config.Validate();
    } catch (const Error& error) {
      return std::string(error.what());
    }
    return std::string("no error");
  };
  EncoderDecoderConfig config = TinyConfig(NormPlacement::kPost, PositionEncoding::kSinusoidal);
  EXPECT_EQ(error_of(config), "no error");
  auto heads = config;
  heads.num_heads = 3;
  EXPECT_NE(error_of(heads).find("not divisible by the 3 attention heads"), std::string::npos)
      << error_of(heads);
  auto rope = config;
  rope.position = PositionEncoding::kRope;
  EXPECT_NE(error_of(rope).find("rope is not supported"), std::string::npos) << error_of(rope);
  auto pad = config;
  pad.pad_id = 9;
  EXPECT_NE(error_of(pad).find("pad_token_id 9 is outside the vocabulary [0, 9)"),
            std::string::npos)
      << error_of(pad);
}

TEST(EncoderDecoderTest, SourceLongerThanThePositionTableIsAnError) {
  const EncoderDecoderConfig config = TinyConfig(NormPlacement::kPost, PositionEncoding::kLearned);
  Arena arena(size_t{1} << 20);
  try {
    AllocateEncoderDecoderActivations<float>(arena, config, 1, 9, 2);
    FAIL() << "no error";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("source length 9"), std::string::npos) << error.what();
  }
}

}  // namespace
}  // namespace qkv::model
