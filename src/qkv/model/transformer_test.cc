// The whole language model: gradients against finite differences for every architecture
// option, the causal property end to end, and configuration errors.
#include "qkv/model/transformer.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "qkv/ops/cross_entropy.h"
#include "qkv/testing/gradient_check.h"

namespace qkv::model {
namespace {

using testing::TestContext;

ModelConfig TinyConfig() {
  ModelConfig config;
  config.vocab_size = 7;
  config.context = 6;
  config.num_layers = 2;
  config.num_heads = 2;
  config.width = 8;
  config.ffn_dim = 12;
  return config;
}

// A model in double with its gradients and activations, for finite differences.
template <typename T>
struct TinyModel {
  TinyModel(const ModelConfig& model_config, int64_t batch, int64_t seq, uint64_t seed)
      : config(model_config),
        arena(2 * ParameterBytes(model_config, sizeof(T)) + MeasureActivations(batch, seq)),
        test(1, ModelScratchBytes(model_config, batch, seq, 1, sizeof(T))) {
    params = AllocateModelParams<T>(arena, config);
    grads = AllocateModelParams<T>(arena, config);
    acts = AllocateModelActivations<T>(arena, config, batch, seq);
    Random random(seed);
    InitializeParameters(config, params, random);
    // Larger weights than GPT-2's 0.02 so that every path carries signal.
    ForEachParameter(config, params, [&](const ParameterInfo&, TensorView<T>& slot) {
      for (T& value : slot) value += static_cast<T>(0.3 * random.Normal());
    });
  }
  size_t MeasureActivations(int64_t batch, int64_t seq) const {
    Arena measure = Arena::MeasureOnly();
    AllocateModelActivations<T>(measure, config, batch, seq);
    return measure.used_bytes();
  }
  ModelConfig config;
  Arena arena;
  TestContext test;
  ModelParams<T> params, grads;
  ModelActivations<T> acts;
};

struct ModelCase {
  const char* name;
  PositionEncoding position;
  NormKind norm;
  NormPlacement placement;
  FfnKind ffn;
  bool bias;
  AttentionImpl attention = AttentionImpl::kAuto;  // the simple kernel at this length
};

void PrintTo(const ModelCase& param, std::ostream* out) { *out << param.name; }

class ModelGradientTest : public ::testing::TestWithParam<ModelCase> {};

TEST_P(ModelGradientTest, EveryParameterGradientMatchesFiniteDifferences) {
  const ModelCase& param = GetParam();
  ModelConfig config = TinyConfig();
  config.position = param.position;
  config.norm = param.norm;
  config.norm_placement = param.placement;
  config.ffn = param.ffn;
  config.bias = param.bias;
  config.attention = param.attention;
  const int64_t batch = 2, seq = 5;
  TinyModel<double> model(config, batch, seq, 1);
  Tensor<int32_t> tokens(Shape{batch, seq}), targets(Shape{batch, seq});
  Random random(2);
  for (int64_t i = 0; i < tokens.size(); ++i) {
    tokens[i] = static_cast<int32_t>(random.Below(7));
    targets[i] = static_cast<int32_t>(random.Below(7));
  }
  targets[3] = ops::kDefaultIgnoreIndex;
  auto loss = [&] {
    return ModelForward<double>(config, model.params, tokens.view(), targets.view(), false, nullptr,
                                model.acts, model.test.ctx);
  };
  loss();
  ModelBackward<double>(config, model.params, tokens.view(), targets.view(), 1.0, model.acts,
                        model.grads, model.test.ctx);
  ModelParams<double> grads = model.grads;
  std::vector<std::pair<ParameterInfo, TensorView<double>>> gradient_views;
  ForEachParameter(config, grads, [&](const ParameterInfo& info, TensorView<double>& slot) {
    gradient_views.push_back({info, slot});
  });
  size_t index = 0;
  ForEachParameter(config, model.params, [&](const ParameterInfo& info, TensorView<double>& slot) {
    Tensor<double> numerical = testing::NumericalGradient(slot, loss);
    const double error =
        testing::MaxRelativeError(gradient_views[index++].second, numerical.view());
    EXPECT_LT(error, 1e-6) << info.name;
  });
}

INSTANTIATE_TEST_SUITE_P(
    Architectures, ModelGradientTest,
    ::testing::Values(ModelCase{"Gpt2", PositionEncoding::kLearned, NormKind::kLayerNorm,
                                NormPlacement::kPre, FfnKind::kGeluTanh, true},
                      ModelCase{"SinusoidalPostNormRelu", PositionEncoding::kSinusoidal,
                                NormKind::kLayerNorm, NormPlacement::kPost, FfnKind::kRelu, true},
                      ModelCase{"RopeRmsSwiGluNoBias", PositionEncoding::kRope, NormKind::kRmsNorm,
                                NormPlacement::kPre, FfnKind::kSwiGlu, false},
                      ModelCase{"NoPositionsGeluPostRms", PositionEncoding::kNone,
                                NormKind::kRmsNorm, NormPlacement::kPost, FfnKind::kGelu, true},
                      ModelCase{"Gpt2FlashAttention", PositionEncoding::kLearned,
                                NormKind::kLayerNorm, NormPlacement::kPre, FfnKind::kGeluTanh, true,
                                AttentionImpl::kFlash},
                      ModelCase{"AlibiFlashAttentionPostNorm", PositionEncoding::kAlibi,
                                NormKind::kLayerNorm, NormPlacement::kPost, FfnKind::kGeluTanh,
                                true, AttentionImpl::kFlash}),
    [](const ::testing::TestParamInfo<ModelCase>& param_info) { return param_info.param.name; });

// Evaluation sizes its scratch with ModelForwardScratchBytes: enough for the flash kernel's
// forward pass (the arena throws when asked for more than it holds), nothing for the simple one,
// and the same logits either way.
TEST(ModelTest, ForwardScratchEstimateSufficesForBothKernels) {
  ModelConfig config = TinyConfig();
  config.context = 40;
  const int64_t batch = 2, seq = 40;
  Tensor<int32_t> tokens(Shape{batch, seq});
  for (int64_t t = 0; t < tokens.size(); ++t) tokens[t] = static_cast<int32_t>((t * 5) % 7);
  std::vector<std::vector<float>> logits;
  for (AttentionImpl kernel : {AttentionImpl::kSimple, AttentionImpl::kFlash}) {
    config.attention = kernel;
    TinyModel<float> model(config, batch, seq, 4);  // the same weights for both kernels
    const size_t bytes = ModelForwardScratchBytes(config, batch, seq, 2, sizeof(float));
    if (kernel == AttentionImpl::kSimple) {
      EXPECT_EQ(bytes, 0u);
    }
    TestContext forward_only(2, bytes);
    ModelForward<float>(config, model.params, tokens.view(), {}, false, nullptr, model.acts,
                        forward_only.ctx);
    logits.emplace_back(model.acts.logits.begin(), model.acts.logits.end());
  }
  ASSERT_EQ(logits[0].size(), logits[1].size());
  for (size_t i = 0; i < logits[0].size(); ++i) EXPECT_NEAR(logits[0][i], logits[1][i], 1e-5);
}

TEST(ModelTest, ChangingAFutureTokenLeavesEarlierLogitsBitwiseUnchanged) {
  ModelConfig config = TinyConfig();
  config.context = 8;
  const int64_t batch = 1, seq = 8;
  TinyModel<float> model(config, batch, seq, 3);
  Tensor<int32_t> tokens(Shape{batch, seq});
  for (int64_t t = 0; t < seq; ++t) tokens[t] = static_cast<int32_t>(t % 7);
  ModelForward<float>(config, model.params, tokens.view(), {}, false, nullptr, model.acts,
                      model.test.ctx);
  Tensor<float> reference(model.acts.logits.shape());
  std::memcpy(reference.data(), model.acts.logits.data(), reference.size() * sizeof(float));
  for (int64_t j = 1; j < seq; ++j) {
    Tensor<int32_t> changed = tokens.Clone();
    changed[j] = (changed[j] + 3) % 7;
    ModelForward<float>(config, model.params, changed.view(), {}, false, nullptr, model.acts,
                        model.test.ctx);
    EXPECT_EQ(std::memcmp(model.acts.logits.data(), reference.data(),
                          static_cast<size_t>(j * config.vocab_size) * sizeof(float)),
              0)
        << "logits before position " << j << " changed";
    EXPECT_NE(model.acts.logits[j * config.vocab_size], reference[j * config.vocab_size]);
  }
}

TEST(ModelConfigTest, JsonRoundTripAndErrorsNameTheValue) {
  ModelConfig config = TinyConfig();
  config.position = PositionEncoding::kRope;
  config.rope_style = ops::RopeStyle::kInterleaved;
  config.rope_theta = 500;
  config.norm = NormKind::kRmsNorm;
  config.ffn = FfnKind::kSwiGlu;
  config.bias = false;
  const ModelConfig loaded = ModelConfig::FromJson(config.ToJson());
  EXPECT_EQ(loaded.ToJson(), config.ToJson());
  EXPECT_EQ(loaded.position, PositionEncoding::kRope);
  EXPECT_EQ(loaded.rope_style, ops::RopeStyle::kInterleaved);

  nlohmann::json json = config.ToJson();
  json["n_head"] = 3;
  try {
    ModelConfig::FromJson(json);
    FAIL();
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("width 8 is not divisible by the 3 heads"),
              std::string::npos)
        << error.what();
  }
  json = config.ToJson();
  json.erase("n_embd");
  EXPECT_THROW(ModelConfig::FromJson(json), Error);
  json = config.ToJson();
  json["position_encoding"] = "spiral";
  try {
    ModelConfig::FromJson(json);
    FAIL();
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("'spiral' is not one of: learned, sinusoidal"),
              std::string::npos)
        << error.what();
  }
}

TEST(ModelConfigTest, HuggingFaceGpt2ConfigLoadsWithDefaults) {
  const nlohmann::json gpt2 = {{"n_layer", 12},
                               {"n_head", 12},
                               {"n_embd", 768},
                               {"n_positions", 1024},
                               {"vocab_size", 50257},
                               {"layer_norm_epsilon", 1e-5},
                               {"activation_function", "gelu_new"},
                               {"n_inner", nullptr}};
  const ModelConfig config = ModelConfig::FromJson(gpt2);
  EXPECT_EQ(config.position, PositionEncoding::kLearned);
  EXPECT_EQ(config.norm, NormKind::kLayerNorm);
  EXPECT_EQ(config.ffn, FfnKind::kGeluTanh);
  EXPECT_EQ(config.ffn_hidden(), 3072);
  EXPECT_TRUE(config.bias);
  EXPECT_EQ(CountParameters(config), 124439808);  // GPT-2 small, as published
}

}  // namespace
}  // namespace qkv::model
