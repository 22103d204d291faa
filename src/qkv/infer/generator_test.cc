// The generator: greedy generation equals recomputing every step with ModelForward, also
// across window slides; sliding at the context of a learned-position model (never reading
// past the table: the ASan build would catch it) with one notice; seeds; errors.
#include "qkv/infer/generator.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "qkv/model/transformer.h"
#include "qkv/testing/gradient_check.h"

namespace qkv::infer {
namespace {

using model::ModelConfig;
using model::PositionEncoding;

ModelConfig SmallConfig(PositionEncoding position, int64_t context) {
  ModelConfig config;
  config.vocab_size = 13;
  config.context = context;
  config.num_layers = 2;
  config.num_heads = 2;
  config.width = 8;
  config.ffn_dim = 16;
  config.position = position;
  return config;
}

model::Model RandomModel(const ModelConfig& config, uint64_t seed) {
  model::Model result = model::CreateModel(config);
  Random random(seed);
  model::InitializeParameters(config, result.params, random);
  model::ForEachParameter(config, result.params,
                          [&](const model::ParameterInfo&, TensorView<float>& slot) {
                            for (float& value : slot)
                              value += static_cast<float>(0.5 * random.Normal());
                          });
  return result;
}

// Greedy decoding without a cache: every step runs ModelForward over the current window,
// which follows the generator's documented policy (when it would exceed the context, keep
// its last context/2 tokens).
std::vector<int32_t> NaiveGreedy(const model::Model& m, std::vector<int32_t> window,
                                 int64_t new_tokens) {
  const int64_t context = m.config.context, vocab = m.config.vocab_size;
  const int64_t keep = std::max<int64_t>(1, context / 2);
  if (static_cast<int64_t>(window.size()) > context) {
    window.erase(window.begin(), window.end() - context);
  }
  testing::TestContext test(1);
  std::vector<int32_t> generated;
  for (int64_t step = 0; step < new_tokens; ++step) {
    const int64_t seq = static_cast<int64_t>(window.size());
    Arena measure = Arena::MeasureOnly();
    model::AllocateModelActivations<float>(measure, m.config, 1, seq);
    Arena arena(measure.used_bytes());
    const model::ModelActivations<float> acts =
        model::AllocateModelActivations<float>(arena, m.config, 1, seq);
    model::ModelForward<float>(m.config, m.params,
                               ConstTensorView<int32_t>(window.data(), Shape{1, seq}), {}, false,
                               nullptr, acts, test.ctx);
    const std::span<const float> last(acts.logits.data() + (seq - 1) * vocab,
                                      static_cast<size_t>(vocab));
    const int32_t next = Sampler::Argmax(last);
    generated.push_back(next);
    window.push_back(next);
    if (static_cast<int64_t>(window.size()) > context) {
      window.erase(window.begin(), window.end() - keep);
    }
  }
  return generated;
}

class GreedyTest : public ::testing::TestWithParam<PositionEncoding> {};

TEST_P(GreedyTest, EqualsRecomputingEveryStepAcrossWindowSlides) {
  const model::Model m = RandomModel(SmallConfig(GetParam(), 8), 21);
  ThreadPool threads(1);
  Generator generator(m, threads);
  const std::vector<int32_t> prompt = {3, 7, 1};
  std::vector<int32_t> streamed;
  const std::vector<int32_t> generated = generator.Generate(
      prompt, 30, {.temperature = 0}, [&](int32_t id) { streamed.push_back(id); });
  EXPECT_EQ(generated, streamed);
  EXPECT_EQ(generated, NaiveGreedy(m, prompt, 30));
  EXPECT_GT(generator.window_slides(), 2);
  EXPECT_EQ(generator.Generate(prompt, 30, {.temperature = 0}), generated);  // same every run
  std::vector<int32_t> stream_only;
  EXPECT_EQ(generator.Stream(prompt, 30, {.temperature = 0},
                             [&](int32_t id) { stream_only.push_back(id); }),
            30);
  EXPECT_EQ(stream_only, generated);
}

INSTANTIATE_TEST_SUITE_P(Positions, GreedyTest,
                         ::testing::Values(PositionEncoding::kLearned,
                                           PositionEncoding::kSinusoidal, PositionEncoding::kRope,
                                           PositionEncoding::kAlibi, PositionEncoding::kNone));

TEST(GeneratorTest, SlidesAtTheContextOfALearnedTableWithOneNotice) {
  for (const int64_t context : {1, 2, 5, 8}) {
    SCOPED_TRACE(context);
    const model::Model m = RandomModel(SmallConfig(PositionEncoding::kLearned, context), 2);
    ThreadPool threads(1);
    Generator generator(m, threads);
    std::vector<std::string> notices;
    generator.set_notice_callback([&](const std::string& notice) { notices.push_back(notice); });
    const std::vector<int32_t> prompt = {4};
    const std::vector<int32_t> generated =
        generator.Generate(prompt, 4 * context + 3, {.temperature = 1.0, .seed = 8});
    EXPECT_EQ(static_cast<int64_t>(generated.size()), 4 * context + 3);
    EXPECT_GT(generator.window_slides(), 0);
    ASSERT_EQ(notices.size(), 1u);
    EXPECT_NE(notices[0].find("context of " + std::to_string(context) + " tokens"),
              std::string::npos)
        << notices[0];
    EXPECT_EQ(generator.tokens_kept_on_slide(), std::max<int64_t>(1, context / 2));
  }
}

TEST(GeneratorTest, APromptLongerThanTheContextKeepsItsEnd) {
  const model::Model m = RandomModel(SmallConfig(PositionEncoding::kLearned, 6), 4);
  ThreadPool threads(1);
  Generator generator(m, threads);
  int notices = 0;
  generator.set_notice_callback([&](const std::string&) { ++notices; });
  const std::vector<int32_t> prompt = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  const std::vector<int32_t> generated = generator.Generate(prompt, 12, {.temperature = 0});
  EXPECT_EQ(generated, NaiveGreedy(m, prompt, 12));
  EXPECT_EQ(notices, 1);
}

TEST(GeneratorTest, SeedsReproduceAndDiffer) {
  const model::Model m = RandomModel(SmallConfig(PositionEncoding::kRope, 16), 6);
  ThreadPool threads(1);
  Generator generator(m, threads);
  const std::vector<int32_t> prompt = {0};
  const SamplerOptions a{.temperature = 1.0, .seed = 1}, b{.temperature = 1.0, .seed = 2};
  const std::vector<int32_t> first = generator.Generate(prompt, 40, a);
  EXPECT_EQ(generator.Generate(prompt, 40, a), first);
  EXPECT_NE(generator.Generate(prompt, 40, b), first);
  EXPECT_TRUE(generator.Generate(prompt, 0, a).empty());
}

TEST(GeneratorTest, PaddingRowsPastTheSampledVocabularyAreNeverSampled) {
  const model::Model m = RandomModel(SmallConfig(PositionEncoding::kRope, 64), 9);
  const int64_t vocab = m.config.vocab_size, sampled = vocab / 2;
  ThreadPool threads(1);
  Generator generator(m, threads);
  const std::vector<int32_t> prompt = {static_cast<int32_t>(vocab - 1)};  // a padding row is
                                                                          // still a valid input
  const SamplerOptions hot{.temperature = 100.0, .seed = 3};  // near-uniform over all ids
  const std::vector<int32_t> all = generator.Generate(prompt, 60, hot);
  EXPECT_TRUE(std::any_of(all.begin(), all.end(), [&](int32_t id) { return id >= sampled; }))
      << "the check below would pass without set_sampled_vocab";
  generator.set_sampled_vocab(sampled);
  const std::vector<int32_t> limited = generator.Generate(prompt, 60, hot);
  EXPECT_TRUE(
      std::all_of(limited.begin(), limited.end(), [&](int32_t id) { return id < sampled; }));
  EXPECT_THROW(generator.set_sampled_vocab(0), Error);
  EXPECT_THROW(generator.set_sampled_vocab(vocab + 1), Error);
}

// The bfloat16 copies cover what linear layers read: the blocks' matrices and the head, which
// is the token embedding only when tied (2 bytes per element; no copy of an embedding table
// that only lookups read).
TEST(GeneratorTest, Bfloat16CopiesHoldTheLinearLayersAndTheHead) {
  for (const bool tied : {true, false}) {
    ModelConfig config = SmallConfig(PositionEncoding::kLearned, 8);
    config.tie_embeddings = tied;
    const model::Model m = RandomModel(config, 4);
    ThreadPool threads(1);
    Generator generator(m, threads);
    int64_t block_elements = 0;
    model::ModelParams<float> views = m.params;
    model::ForEachParameter(config, views, [&](const auto& info, TensorView<float>& tensor) {
      if (info.name.starts_with("blocks.") && tensor.shape().rank() == 2) {
        block_elements += tensor.size();
      }
    });
    const int64_t head_elements = config.vocab_size * config.width;
    EXPECT_EQ(generator.UseBf16Weights(), static_cast<size_t>(2 * (block_elements + head_elements)))
        << (tied ? "tied" : "untied");
  }
}

TEST(GeneratorTest, BadPromptsAreErrorsAndStartTokenIsDocumented) {
  const model::Model m = RandomModel(SmallConfig(PositionEncoding::kLearned, 8), 6);
  ThreadPool threads(1);
  Generator generator(m, threads);
  EXPECT_THROW(generator.Generate({}, 5, {}), Error);
  const std::vector<int32_t> bad = {2, 13};
  try {
    generator.Generate(bad, 5, {});
    FAIL();
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("prompt token 1 is id 13, outside the vocabulary"),
              std::string::npos)
        << error.what();
  }
  EXPECT_THROW(generator.Generate(std::vector<int32_t>{1}, 5, {.top_p = 2}), Error);

  const auto with_newline = tokenizer::TrainTokenizer("char", "ab\ncd");
  EXPECT_EQ(Generator::StartToken(*with_newline), with_newline->Encode("\n")[0]);
  EXPECT_EQ(Generator::StartToken(*tokenizer::TrainTokenizer("char", "bcd")), 0);
  EXPECT_EQ(Generator::StartToken(*tokenizer::TrainTokenizer("byte", "")), 10);

  // A tokenizer that puts a BOS before every text (SentencePiece's add_bos, a Hugging Face
  // template) starts from it, though it also encodes "\n" (as [BOS, "\n"]).
  class WithBos : public tokenizer::Tokenizer {
   public:
    std::string name() const override { return "with-bos"; }
    int64_t vocab_size() const override { return 8; }
    nlohmann::json Save(const std::string&) const override { return {}; }

   private:
    std::vector<int32_t> DoEncode(std::string_view text,
                                  const tokenizer::EncodeOptions&) const override {
      std::vector<int32_t> ids = {7};
      for (const char c : text) ids.push_back(c == '\n' ? 3 : 4);
      return ids;
    }
    std::string DoDecode(std::span<const int32_t>) const override { return ""; }
  };
  EXPECT_EQ(Generator::StartToken(WithBos()), 7);
}

}  // namespace
}  // namespace qkv::infer

namespace qkv::infer {
namespace {

// With grouped-query attention the cache holds the key/value heads only: per token and layer
// 2 x kv_heads x head_dim floats, kv_heads / heads of the multi-head model's. Measured on the
// generator's own allocation.
TEST(GeneratorTest, KeyValueCacheHoldsOnlyTheKeyValueHeads) {
  const ThreadPool threads(1);
  ModelConfig config = SmallConfig(PositionEncoding::kRope, 32);
  config.num_heads = 4;
  config.width = 32;  // head size 8
  size_t multi_head_bytes = 0;
  for (const int64_t kv_heads : {4, 2, 1}) {
    config.num_kv_heads = kv_heads;
    const model::Model m = RandomModel(config, 3);
    const Generator generator(m, threads);
    const size_t expected = sizeof(float) * 2 * static_cast<size_t>(config.num_layers) *
                            static_cast<size_t>(config.context * kv_heads * config.head_dim());
    EXPECT_EQ(generator.cache_bytes(), expected) << kv_heads << " key/value heads";
    if (kv_heads == 4) multi_head_bytes = generator.cache_bytes();
    EXPECT_EQ(generator.cache_bytes() * 4, multi_head_bytes * static_cast<size_t>(kv_heads));
    // And it decodes: greedy generation through the small cache runs to the end.
    const std::vector<int32_t> prompt = {1, 2, 3};
    EXPECT_EQ(Generator(m, threads).Generate(prompt, 40, {.temperature = 0.0}).size(), 40u);
  }
}

}  // namespace
}  // namespace qkv::infer
