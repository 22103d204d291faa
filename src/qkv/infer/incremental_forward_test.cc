// Cached decoding against recomputing the whole sequence with ModelForward, for every
// architecture option; the KV cache's bookkeeping and errors.
#include "qkv/infer/incremental_forward.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "qkv/core/bfloat16.h"
#include "qkv/kernels/bf16_weight_copies.h"
#include "qkv/model/transformer.h"
#include "qkv/testing/gradient_check.h"

namespace qkv::infer {
namespace {

using model::FfnKind;
using model::ModelConfig;
using model::NormKind;
using model::NormPlacement;
using model::PositionEncoding;

ModelConfig TinyConfig() {
  ModelConfig config;
  config.vocab_size = 11;
  config.context = 12;
  config.num_layers = 2;
  config.num_heads = 2;
  config.width = 8;
  config.ffn_dim = 12;
  return config;
}

model::Model RandomModel(const ModelConfig& config, uint64_t seed) {
  model::Model result = model::CreateModel(config);
  Random random(seed);
  model::InitializeParameters(config, result.params, random);
  // Larger weights than GPT-2's 0.02 so that attention is far from uniform and every path,
  // positions included, moves the logits.
  model::ForEachParameter(config, result.params,
                          [&](const model::ParameterInfo&, TensorView<float>& slot) {
                            for (float& value : slot)
                              value += static_cast<float>(0.3 * random.Normal());
                          });
  return result;
}

// Logits (T, V) of ModelForward over the whole of `tokens` at positions [0, T).
Tensor<float> FullLogits(const model::Model& m, const std::vector<int32_t>& tokens) {
  const int64_t seq = static_cast<int64_t>(tokens.size());
  Arena measure = Arena::MeasureOnly();
  model::AllocateModelActivations<float>(measure, m.config, 1, seq);
  Arena arena(measure.used_bytes());
  const model::ModelActivations<float> acts =
      model::AllocateModelActivations<float>(arena, m.config, 1, seq);
  testing::TestContext test(1);
  const ConstTensorView<int32_t> ids(tokens.data(), Shape{1, seq});
  model::ModelForward<float>(m.config, m.params, ids, {}, false, nullptr, acts, test.ctx);
  Tensor<float> logits(acts.logits.shape());
  std::copy(acts.logits.begin(), acts.logits.end(), logits.data());
  return logits;
}

struct Case {
  const char* name;
  PositionEncoding position;
  ops::RopeStyle rope_style;
  NormKind norm;
  NormPlacement placement;
  FfnKind ffn;
  bool bias;
  ops::RopeScaling rope_scaling = ops::RopeScaling::kNone;  // with factor 2 when set
  int64_t kv_heads = 0;   // set: 4 query heads sharing this many key/value heads
  int64_t head_size = 0;  // 0: width / heads
};

void PrintTo(const Case& param, std::ostream* out) { *out << param.name; }

class CachedDecodingTest : public ::testing::TestWithParam<Case> {};

TEST_P(CachedDecodingTest, MatchesRecomputingTheWholeSequence) {
  const Case& param = GetParam();
  ModelConfig config = TinyConfig();
  config.position = param.position;
  config.rope_style = param.rope_style;
  config.norm = param.norm;
  config.norm_placement = param.placement;
  config.ffn = param.ffn;
  config.bias = param.bias;
  if (param.rope_scaling != ops::RopeScaling::kNone) {
    config.rope_scaling = param.rope_scaling;
    config.rope_factor = 2.0;
    config.rope_original_context = config.context / 2;
  }
  if (param.kv_heads > 0) {
    config.num_heads = 4;
    config.num_kv_heads = param.kv_heads;
  }
  config.head_size = param.head_size;
  const model::Model m = RandomModel(config, 7);
  std::vector<int32_t> tokens(12);
  Random random(3);
  for (int32_t& token : tokens) token = static_cast<int32_t>(random.Below(11));
  const Tensor<float> reference = FullLogits(m, tokens);
  const int64_t vocab = config.vocab_size;

  ThreadPool threads(1);
  KvCache cache(config.num_layers, config.context, config.kv_width());
  DecodeWorkspace workspace(config, /*max_new_tokens=*/5, config.context);
  // Prefill 5, decode 3 one at a time, then a chunk of 3 and a last single token.
  const std::vector<int64_t> chunks = {5, 1, 1, 1, 3, 1};
  int64_t position = 0;
  for (const int64_t chunk : chunks) {
    const std::span<const int32_t> ids(tokens.data() + position, static_cast<size_t>(chunk));
    const ConstTensorView<float> logits = IncrementalForward(m, ids, cache, workspace, threads);
    ASSERT_EQ(logits.shape(), (Shape{chunk, vocab}));
    const ConstTensorView<float> expected(reference.data() + position * vocab, Shape{chunk, vocab});
    EXPECT_LT(testing::MaxRelativeError(logits, expected), 1e-5)
        << "positions [" << position << ", " << position + chunk << ")";
    position += chunk;
    EXPECT_EQ(cache.length(), position);
  }
  EXPECT_EQ(position, 12);

  // The same chunks asking for the last token's logits only (what generation reads).
  KvCache last_cache(config.num_layers, config.context, config.kv_width());
  position = 0;
  for (const int64_t chunk : chunks) {
    const std::span<const int32_t> ids(tokens.data() + position, static_cast<size_t>(chunk));
    const ConstTensorView<float> logits =
        IncrementalForward(m, ids, last_cache, workspace, threads, LogitRows::kLast);
    ASSERT_EQ(logits.shape(), (Shape{1, vocab}));
    position += chunk;
    const ConstTensorView<float> expected(reference.data() + (position - 1) * vocab,
                                          Shape{1, vocab});
    EXPECT_LT(testing::MaxRelativeError(logits, expected), 1e-5) << "position " << position - 1;
    EXPECT_EQ(last_cache.length(), position);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Architectures, CachedDecodingTest,
    ::testing::Values(
        Case{"Gpt2", PositionEncoding::kLearned, ops::RopeStyle::kHalf, NormKind::kLayerNorm,
             NormPlacement::kPre, FfnKind::kGeluTanh, true},
        Case{"LearnedPostNorm", PositionEncoding::kLearned, ops::RopeStyle::kHalf,
             NormKind::kLayerNorm, NormPlacement::kPost, FfnKind::kGelu, true},
        Case{"SinusoidalRelu", PositionEncoding::kSinusoidal, ops::RopeStyle::kHalf,
             NormKind::kLayerNorm, NormPlacement::kPre, FfnKind::kRelu, true},
        Case{"SinusoidalPostNorm", PositionEncoding::kSinusoidal, ops::RopeStyle::kHalf,
             NormKind::kLayerNorm, NormPlacement::kPost, FfnKind::kGeluTanh, false},
        Case{"RopeHalfRmsSwiGlu", PositionEncoding::kRope, ops::RopeStyle::kHalf,
             NormKind::kRmsNorm, NormPlacement::kPre, FfnKind::kSwiGlu, false},
        Case{"RopeInterleavedPostNorm", PositionEncoding::kRope, ops::RopeStyle::kInterleaved,
             NormKind::kLayerNorm, NormPlacement::kPost, FfnKind::kSwiGlu, true},
        Case{"RopeYarn", PositionEncoding::kRope, ops::RopeStyle::kHalf, NormKind::kLayerNorm,
             NormPlacement::kPre, FfnKind::kGeluTanh, true, ops::RopeScaling::kYarn},
        Case{"RopeLinearInterleaved", PositionEncoding::kRope, ops::RopeStyle::kInterleaved,
             NormKind::kRmsNorm, NormPlacement::kPre, FfnKind::kSwiGlu, false,
             ops::RopeScaling::kLinear},
        Case{"RopeNtk", PositionEncoding::kRope, ops::RopeStyle::kHalf, NormKind::kLayerNorm,
             NormPlacement::kPre, FfnKind::kGelu, true, ops::RopeScaling::kNtk},
        Case{"Alibi", PositionEncoding::kAlibi, ops::RopeStyle::kHalf, NormKind::kLayerNorm,
             NormPlacement::kPre, FfnKind::kGeluTanh, true},
        Case{"AlibiPostRmsSwiGlu", PositionEncoding::kAlibi, ops::RopeStyle::kHalf,
             NormKind::kRmsNorm, NormPlacement::kPost, FfnKind::kSwiGlu, false},
        Case{"NoPositionsRms", PositionEncoding::kNone, ops::RopeStyle::kHalf, NormKind::kRmsNorm,
             NormPlacement::kPre, FfnKind::kGelu, true},
        Case{"NoPositionsPostRms", PositionEncoding::kNone, ops::RopeStyle::kHalf,
             NormKind::kRmsNorm, NormPlacement::kPost, FfnKind::kRelu, false},
        // Llama-shaped, with grouped-query and multi-query attention (the cache holds the
        // key/value heads only), a head size of its own, and Llama's RoPE scalings.
        Case{"LlamaGroupedQuery", PositionEncoding::kRope, ops::RopeStyle::kHalf,
             NormKind::kRmsNorm, NormPlacement::kPre, FfnKind::kSwiGlu, false,
             ops::RopeScaling::kNone, 2},
        Case{"LlamaMultiQueryHeadSize6Llama3", PositionEncoding::kRope, ops::RopeStyle::kHalf,
             NormKind::kRmsNorm, NormPlacement::kPre, FfnKind::kSwiGlu, false,
             ops::RopeScaling::kLlama3, 1, 6},
        Case{"GroupedQueryDynamicNtk", PositionEncoding::kRope, ops::RopeStyle::kHalf,
             NormKind::kLayerNorm, NormPlacement::kPre, FfnKind::kGeluTanh, true,
             ops::RopeScaling::kDynamic, 2, 4},
        Case{"GroupedQueryLearned", PositionEncoding::kLearned, ops::RopeStyle::kHalf,
             NormKind::kLayerNorm, NormPlacement::kPre, FfnKind::kGeluTanh, true,
             ops::RopeScaling::kNone, 1}),
    [](const ::testing::TestParamInfo<Case>& param_info) { return param_info.param.name; });

TEST(CachedDecodingTest, FourThreadsAgreeWithOne) {
  const ModelConfig config = TinyConfig();
  const model::Model m = RandomModel(config, 9);
  const std::vector<int32_t> tokens = {1, 4, 1, 5, 9, 2, 6};
  std::vector<float> results[2];
  for (int run = 0; run < 2; ++run) {
    ThreadPool threads(run == 0 ? 1 : 4);
    KvCache cache(config.num_layers, config.context, config.kv_width());
    DecodeWorkspace workspace(config, 4, config.context);
    IncrementalForward(m, std::span<const int32_t>(tokens).first(4), cache, workspace, threads);
    for (size_t i = 4; i < tokens.size(); ++i) {
      const ConstTensorView<float> logits =
          IncrementalForward(m, std::span<const int32_t>(&tokens[i], 1), cache, workspace, threads);
      results[run].insert(results[run].end(), logits.begin(), logits.end());
    }
  }
  ASSERT_EQ(results[0].size(), results[1].size());
  for (size_t i = 0; i < results[0].size(); ++i) EXPECT_NEAR(results[0][i], results[1][i], 1e-5);
}

TEST(KvCacheTest, CopyContinuesLikeTheOriginal) {
  const ModelConfig config = TinyConfig();
  const model::Model m = RandomModel(config, 5);
  ThreadPool threads(1);
  KvCache cache(config.num_layers, config.context, config.kv_width());
  DecodeWorkspace workspace(config, 4, config.context);
  const std::vector<int32_t> prompt = {3, 1, 4, 1};
  IncrementalForward(m, prompt, cache, workspace, threads);
  KvCache copy = cache.Copy();
  EXPECT_EQ(copy.length(), 4);
  const int32_t next = 5;
  const ConstTensorView<float> a =
      IncrementalForward(m, std::span<const int32_t>(&next, 1), cache, workspace, threads);
  const std::vector<float> from_original(a.begin(), a.end());
  const ConstTensorView<float> b =
      IncrementalForward(m, std::span<const int32_t>(&next, 1), copy, workspace, threads);
  EXPECT_EQ(std::vector<float>(b.begin(), b.end()), from_original);
  EXPECT_EQ(cache.length(), 5);
  EXPECT_EQ(copy.length(), 5);
  cache.Reset();
  EXPECT_EQ(cache.length(), 0);
}

void ExpectErrorContaining(const std::function<void()>& run, const std::string& text) {
  try {
    run();
    FAIL() << "no error; expected one containing \"" << text << "\"";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find(text), std::string::npos) << error.what();
  }
}

TEST(CachedDecodingTest, ErrorsNameTheValues) {
  const ModelConfig config = TinyConfig();  // learned positions, context 12
  const model::Model m = RandomModel(config, 1);
  ThreadPool threads(1);
  // A cache longer than the learned table: the table, not the cache, is the limit.
  KvCache long_cache(config.num_layers, 2 * config.context, config.kv_width());
  DecodeWorkspace workspace(config, 6, 2 * config.context);
  const std::vector<int32_t> six = {0, 1, 2, 3, 4, 5};
  IncrementalForward(m, six, long_cache, workspace, threads);
  IncrementalForward(m, six, long_cache, workspace, threads);
  const int32_t one = 1;
  ExpectErrorContaining(
      [&] {
        IncrementalForward(m, std::span<const int32_t>(&one, 1), long_cache, workspace, threads);
      },
      "positions up to 12 are past the learned position table of 12 positions");
  EXPECT_EQ(long_cache.length(), 12);

  KvCache cache(config.num_layers, config.context, config.kv_width());
  const std::vector<int32_t> seven = {0, 1, 2, 3, 4, 5, 6};
  ExpectErrorContaining([&] { IncrementalForward(m, seven, cache, workspace, threads); },
                        "7 tokens at once exceed the workspace's chunk of 6");
  const std::vector<int32_t> bad_id = {0, 11};
  EXPECT_THROW(IncrementalForward(m, bad_id, cache, workspace, threads), Error);
  KvCache wrong(config.num_layers + 1, config.context, config.kv_width());
  ExpectErrorContaining([&] { IncrementalForward(m, six, wrong, workspace, threads); },
                        "a cache of 3 layers x width 8 does not fit a model of 2 layers");
  ExpectErrorContaining([&] { KvCache(2, 0, 8); }, "max_len must be > 0, got 0");
  EXPECT_THROW(KvCache(2, 4, 8).Advance(5), Error);
}

// bfloat16 copies of every weight matrix of m, and the model m would be with those matrices
// rounded to bfloat16, all but `kept` (a table only looked up, which stays float32).
struct RoundedWeights {
  Bf16WeightCopies copies;
  model::Model rounded;
};

RoundedWeights RoundWeights(const ModelConfig& config, const model::Model& m, uint64_t seed,
                            const std::string& kept) {
  RoundedWeights result{{}, RandomModel(config, seed)};
  const ThreadPool one_thread(1);
  const ExecutionContext copy_ctx{&one_thread};
  model::ModelParams<float> views = m.params;
  model::ForEachParameter(config, views, [&](const model::ParameterInfo&, TensorView<float>& w) {
    if (w.shape().rank() == 2) result.copies.Add(w, copy_ctx);
  });
  model::ForEachParameter(config, result.rounded.params,
                          [&](const model::ParameterInfo& info, TensorView<float>& w) {
                            if (w.shape().rank() != 2 || info.name == kept) return;
                            for (float& value : w) value = FromBfloat16(ToBfloat16(value));
                          });
  return result;
}

// In bf16 precision (where the CPU multiplies bfloat16 pairs) a decoding step also rounds its
// activations: close to the rounded-weights model, not bitwise; still the same bits on 1 and 2
// threads. The prefill runs bfloat16 GEMMs on the same copies.
TEST(CachedDecodingTest, Bf16PrecisionDecodesCloseToTheRoundedModel) {
  if (const std::string why = Bf16Unavailable(); !why.empty()) GTEST_SKIP() << why;
  ModelConfig config = TinyConfig();
  config.width = 64;
  config.num_heads = 4;
  const model::Model m = RandomModel(config, 14);
  RoundedWeights weights = RoundWeights(config, m, 14, "position_embedding");
  const Bf16WeightCopies& copies = weights.copies;
  const model::Model& rounded = weights.rounded;
  const std::vector<int32_t> tokens = {1, 5, 2, 9, 9, 0, 3, 7};
  const Tensor<float> full_rounded = FullLogits(rounded, tokens);
  const int64_t vocab = config.vocab_size;
  std::vector<std::vector<float>> steps_by_threads;
  for (const int num_threads : {1, 2}) {
    ThreadPool threads(num_threads);
    KvCache cache(config.num_layers, config.context, config.kv_width());
    DecodeWorkspace workspace(config, /*max_new_tokens=*/8, config.context);
    workspace.set_bf16_weights(&copies);
    workspace.set_precision(Precision::kBfloat16);
    std::vector<float> steps;
    int64_t position = 0;
    for (const int64_t chunk : {5, 1, 1, 1}) {  // a prefill (GEMMs), then single steps
      const ConstTensorView<float> logits = IncrementalForward(
          m, std::span<const int32_t>(tokens).subspan(static_cast<size_t>(position), chunk), cache,
          workspace, threads);
      const ConstTensorView<float> expected(full_rounded.data() + position * vocab,
                                            Shape{chunk, vocab});
      const double error = testing::MaxRelativeError(logits, expected);
      EXPECT_LT(error, 2e-2) << "position " << position;
      EXPECT_GT(error, 0.0) << "position " << position << ": the activations were not rounded";
      steps.insert(steps.end(), logits.begin(), logits.end());
      position += chunk;
    }
    steps_by_threads.push_back(steps);
  }
  EXPECT_EQ(steps_by_threads[0], steps_by_threads[1]);
}

}  // namespace
}  // namespace qkv::infer

namespace qkv::infer {
namespace {

// Decoding with bfloat16 copies of the weights (ExecutionContext::bf16_weights) is decoding
// the model whose weights were rounded to bfloat16, up to float summation order, for calls of
// at most 4 tokens (a short prompt, then every single-token step), with the same bits on 1
// and 2 threads; a longer chunk (a prompt's prefill) keeps the float32 GEMM on the float32
// weights: exactly the float32 model's logits.
TEST(CachedDecodingTest, Bfloat16WeightCopiesDecodeTheRoundedModel) {
  ModelConfig config = TinyConfig();
  config.position = PositionEncoding::kRope;
  config.norm = NormKind::kRmsNorm;
  config.ffn = FfnKind::kSwiGlu;
  config.bias = false;
  config.tie_embeddings = false;
  config.width = 32;
  config.ffn_dim = 40;  // dots with a tail after the vector part
  config.num_heads = 4;
  config.num_kv_heads = 2;
  const model::Model m = RandomModel(config, 12);
  // Every matrix a linear layer reads; the embedding lookup keeps reading float32 rows.
  RoundedWeights weights = RoundWeights(config, m, 12, "token_embedding");
  const Bf16WeightCopies& copies = weights.copies;
  const model::Model& rounded = weights.rounded;
  const std::vector<int32_t> tokens = {1, 5, 2, 9, 9, 0, 3, 7};
  const Tensor<float> full_rounded = FullLogits(rounded, tokens);
  const Tensor<float> full = FullLogits(m, tokens);
  const int64_t vocab = config.vocab_size;
  std::vector<std::vector<float>> steps_by_threads;
  for (const int num_threads : {1, 2}) {
    ThreadPool threads(num_threads);
    KvCache cache(config.num_layers, config.context, config.kv_width());
    DecodeWorkspace workspace(config, /*max_new_tokens=*/8, config.context);
    workspace.set_bf16_weights(&copies);
    std::vector<float> steps;
    int64_t position = 0;
    for (const int64_t chunk : {3, 1, 1, 1, 1, 1}) {
      const ConstTensorView<float> logits = IncrementalForward(
          m, std::span<const int32_t>(tokens).subspan(static_cast<size_t>(position), chunk), cache,
          workspace, threads);
      const ConstTensorView<float> expected(full_rounded.data() + position * vocab,
                                            Shape{chunk, vocab});
      const ConstTensorView<float> unrounded(full.data() + position * vocab, Shape{chunk, vocab});
      EXPECT_LT(testing::MaxRelativeError(logits, expected), 1e-5) << "position " << position;
      // Not the float32 model's logits: the copies were read.
      EXPECT_GT(testing::MaxRelativeError(logits, unrounded), 1e-4) << "position " << position;
      steps.insert(steps.end(), logits.begin(), logits.end());
      position += chunk;
    }
    steps_by_threads.push_back(steps);

    KvCache long_cache(config.num_layers, config.context, config.kv_width());
    const ConstTensorView<float> prefill = IncrementalForward(
        m, std::span<const int32_t>(tokens).first(5), long_cache, workspace, threads);
    EXPECT_LT(
        testing::MaxRelativeError(prefill, ConstTensorView<float>(full.data(), Shape{5, vocab})),
        1e-5);
  }
  EXPECT_EQ(steps_by_threads[0], steps_by_threads[1]);
}

}  // namespace
}  // namespace qkv::infer
