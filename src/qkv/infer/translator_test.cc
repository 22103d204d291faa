// Translation: the cached lockstep decoder against recomputing the whole decoder at every step
// (greedy and beam search, both norm placements, both position tables), greedy decoding
// against an independent argmax loop, and the options' errors.
#include "qkv/infer/translator.h"

#include <gtest/gtest.h>

#include <cmath>
#include <initializer_list>
#include <set>
#include <string>
#include <vector>

#include "qkv/core/tensor.h"

namespace qkv::infer {
namespace {

using model::EncoderDecoderConfig;
using model::EncoderDecoderParams;

EncoderDecoderConfig SmallConfig(model::NormPlacement placement, model::PositionEncoding position) {
  EncoderDecoderConfig config;
  config.vocab_size = 13;
  config.width = 16;
  config.num_heads = 2;
  config.ffn_dim = 24;
  config.encoder_layers = 2;
  config.decoder_layers = 2;
  config.max_positions = 12;
  config.position = position;
  config.norm_placement = placement;
  config.ffn = model::FfnKind::kGelu;
  config.pad_id = 12;  // Marian's place for it: the last id
  config.eos_id = 0;
  config.decoder_start_id = 12;
  return config;
}

constexpr double kStddev = 0.3;

struct Model {
  explicit Model(const EncoderDecoderConfig& config_in, uint64_t seed, double eos_bias = 1.0)
      : config(config_in), arena(size_t{8} << 20) {
    model::ForEachParameter(config, params, layers::AllocateFrom<float>(arena));
    Random random(seed);
    // Far from the 0.02 init, so that the distributions are peaked enough that the beams
    // disagree with greedy decoding (much larger and one token dominates every step).
    model::ForEachParameter(
        config, params, [&](const layers::ParameterInfo& info, TensorView<float>& slot) {
          const double mean = info.init == layers::ParameterInit::kOnes ? 1.0 : 0.0;
          random.FillNormal(slot, mean, kStddev);
        });
    // Make </s> likely enough that some translations end before the last position.
    params.final_logits_bias[config.eos_id] += static_cast<float>(eos_bias);
  }
  EncoderDecoderConfig config;
  Arena arena;
  EncoderDecoderParams<float> params;
};

std::vector<std::vector<int32_t>> Sources() {
  return {{3, 5, 7, 2, 0}, {4, 0}, {9, 8, 7, 6, 5, 4, 3, 0}, {1, 11, 0}};
}

// Sources() with `first` put before each: more sources of other lengths and contents.
std::vector<std::vector<int32_t>> Prefixed(std::initializer_list<int32_t> first) {
  std::vector<std::vector<int32_t>> sources = Sources();
  for (auto& source : sources) source.insert(source.begin(), first);
  return sources;
}

// a, then b's sources after it.
std::vector<std::vector<int32_t>> Joined(std::vector<std::vector<int32_t>> a,
                                         const std::vector<std::vector<int32_t>>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

struct TranslatorCase {
  const char* name;
  model::NormPlacement placement;
  model::PositionEncoding position;
};

class TranslatorTest : public ::testing::TestWithParam<TranslatorCase> {};

TEST_P(TranslatorTest, CachedDecodingEqualsRecomputingEveryStep) {
  const Model model(SmallConfig(GetParam().placement, GetParam().position), 3);
  const ThreadPool threads(2);
  std::set<size_t> lengths;
  for (const int64_t beam : {1, 3}) {
    for (const double penalty : {1.0, 0.5}) {
      TranslateOptions options;
      options.beam = beam;
      options.length_penalty = penalty;
      const auto cached = Translate(model.config, model.params, Sources(), options, threads);
      options.recompute = true;
      const auto recomputed = Translate(model.config, model.params, Sources(), options, threads);
      ASSERT_EQ(cached.size(), Sources().size());
      for (size_t i = 0; i < cached.size(); ++i) {
        lengths.insert(cached[i].tokens.size());
        EXPECT_EQ(cached[i].tokens, recomputed[i].tokens) << "beam " << beam << " source " << i;
        EXPECT_NEAR(cached[i].score, recomputed[i].score, 1e-4 * std::abs(recomputed[i].score))
            << "beam " << beam << " source " << i;
      }
    }
  }
  // Translations of several lengths: both the ends and the reordering were exercised.
  EXPECT_GE(lengths.size(), 3u);
}

// A Translator keeps its buffers from batch to batch (grown when a batch is larger, and its
// arenas never zeroed): every batch must come out as from a Translator of its own, to the bit,
// whatever ran before it. The batches shrink, grow past what was reserved and change source
// length, so that stale bytes of earlier batches lie everywhere a step could read.
TEST_P(TranslatorTest, OneTranslatorForManyBatchesGivesEachBatchsBits) {
  const Model model(SmallConfig(GetParam().placement, GetParam().position), 3);
  const ThreadPool threads(2);
  const std::vector<std::vector<int32_t>> many = Joined(Sources(), Prefixed({10, 6}));
  const std::vector<std::vector<std::vector<int32_t>>> batches = {
      {Sources()[0], Sources()[2]}, many, {Sources()[1]}, {many[5], many[6], Sources()[3]}};
  for (const int64_t beam : {1, 3}) {
    for (const bool recompute : {false, true}) {
      TranslateOptions options;
      options.beam = beam;
      options.recompute = recompute;
      Translator translator(model.config, model.params, options, threads);
      translator.Reserve(2, 8);
      for (size_t k = 0; k < batches.size(); ++k) {
        const auto reused = translator.Translate(batches[k]);
        const auto fresh = Translate(model.config, model.params, batches[k], options, threads);
        ASSERT_EQ(reused.size(), batches[k].size());
        for (size_t i = 0; i < fresh.size(); ++i) {
          EXPECT_EQ(reused[i].tokens, fresh[i].tokens)
              << "beam " << beam << " recompute " << recompute << " batch " << k << " source " << i;
          EXPECT_EQ(reused[i].score, fresh[i].score)
              << "beam " << beam << " recompute " << recompute << " batch " << k << " source " << i;
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Architectures, TranslatorTest,
    ::testing::Values(TranslatorCase{"PostNormSinusoidal", model::NormPlacement::kPost,
                                     model::PositionEncoding::kSinusoidal},
                      TranslatorCase{"PreNormLearned", model::NormPlacement::kPre,
                                     model::PositionEncoding::kLearned}),
    [](const auto& test_info) { return std::string(test_info.param.name); });

// Greedy decoding written out plainly: the whole decoder over the prefix, the argmax over
// every token but padding, until </s> or the last position (where </s> is forced).
std::vector<int32_t> PlainGreedy(const Model& model, const std::vector<int32_t>& source,
                                 int64_t max_length) {
  const EncoderDecoderConfig& config = model.config;
  const ThreadPool threads(1);
  std::vector<int32_t> prefix = {config.decoder_start_id};
  const int64_t s = static_cast<int64_t>(source.size());
  Tensor<int32_t> source_ids(Shape{1, s});
  for (int64_t i = 0; i < s; ++i) source_ids[i] = source[static_cast<size_t>(i)];
  while (static_cast<int64_t>(prefix.size()) < max_length) {
    const int64_t t = static_cast<int64_t>(prefix.size());
    Arena arena(size_t{16} << 20);
    Arena scratch(model::EncoderDecoderScratchBytes(config, 1, s, t, 1, sizeof(float)));
    const ExecutionContext ctx{&threads, &scratch};
    const auto acts = model::AllocateEncoderDecoderActivations<float>(arena, config, 1, s, t);
    Tensor<int32_t> input(Shape{1, t});
    for (int64_t i = 0; i < t; ++i) input[i] = prefix[static_cast<size_t>(i)];
    model::EncoderDecoderForward<float>(config, model.params, source_ids.view(), input.view(), {},
                                        false, nullptr, acts, ctx);
    const float* row = acts.logits.data() + (t - 1) * config.vocab_size;
    int32_t best = -1;
    for (int32_t v = 0; v < config.vocab_size; ++v) {
      if (v == config.pad_id) continue;
      if (best < 0 || row[v] > row[best]) best = v;
    }
    if (t + 1 == max_length) best = config.eos_id;
    if (best == config.eos_id) break;
    prefix.push_back(best);
  }
  return std::vector<int32_t>(prefix.begin() + 1, prefix.end());
}

TEST(TranslatorTest, BeamOneIsPlainGreedyDecoding) {
  const Model model(SmallConfig(model::NormPlacement::kPost, model::PositionEncoding::kSinusoidal),
                    3);
  const ThreadPool threads(2);
  for (const int64_t max_length : {12, 4}) {
    TranslateOptions options;
    options.max_length = max_length;
    const auto translations = Translate(model.config, model.params, Sources(), options, threads);
    bool some_stopped_early = false;
    for (size_t i = 0; i < Sources().size(); ++i) {
      const auto expected = PlainGreedy(model, Sources()[i], max_length);
      EXPECT_EQ(translations[i].tokens, expected) << "source " << i << " max_length " << max_length;
      EXPECT_LE(static_cast<int64_t>(expected.size()), max_length - 2);
      some_stopped_early |= static_cast<int64_t>(expected.size()) < max_length - 2;
    }
    if (max_length == 12) {
      EXPECT_TRUE(some_stopped_early) << "no source ended with </s>";
    }
  }
}

// Steps of more than a few hypotheses run on one thread or on all, as measured in the first
// steps of each call (StepThreadingChoice): the choice must not change a bit of the result. With
// two threads a call runs some steps each way; with one, all on one thread. (Under 32
// hypotheses a step is never cut into parts, so one and two threads run the same products.)
TEST(TranslatorTest, OneAndTwoThreadsGiveTheSameBits) {
  const Model model(SmallConfig(model::NormPlacement::kPre, model::PositionEncoding::kLearned), 5);
  // 8 sources: more live rows than the serial bound.
  const std::vector<std::vector<int32_t>> sources = Joined(Sources(), Prefixed({10}));
  const ThreadPool one(1), two(2);
  for (const int64_t beam : {1, 3}) {
    TranslateOptions options;
    options.beam = beam;
    const auto serial = Translate(model.config, model.params, sources, options, one);
    const auto threaded = Translate(model.config, model.params, sources, options, two);
    ASSERT_EQ(serial.size(), sources.size());
    ASSERT_EQ(threaded.size(), sources.size());
    for (size_t i = 0; i < sources.size(); ++i) {
      EXPECT_EQ(serial[i].tokens, threaded[i].tokens) << "beam " << beam << " source " << i;
      EXPECT_EQ(serial[i].score, threaded[i].score) << "beam " << beam << " source " << i;
    }
  }
}

// Steps of 32 or more hypotheses on two threads run in two parts side by side, each through
// the whole decoder on its own rows: the same translations as recomputing the decoder, and as
// one thread's whole steps (scores to float noise: a part's products have other row counts).
TEST(TranslatorTest, StepsInPartsTranslateAsWholeSteps) {
  const Model model(SmallConfig(model::NormPlacement::kPre, model::PositionEncoding::kLearned), 5);
  // 12 sources: 36 hypotheses with beam 3.
  const std::vector<std::vector<int32_t>> sources =
      Joined(Joined(Prefixed({1}), Prefixed({2})), Prefixed({3}));
  const ThreadPool one(1), two(2);
  for (const int64_t beam : {3, 4}) {
    TranslateOptions options;
    options.beam = beam;
    const auto parts = Translate(model.config, model.params, sources, options, two);
    const auto whole = Translate(model.config, model.params, sources, options, one);
    options.recompute = true;
    const auto recomputed = Translate(model.config, model.params, sources, options, two);
    ASSERT_EQ(parts.size(), sources.size());
    for (size_t i = 0; i < sources.size(); ++i) {
      EXPECT_EQ(parts[i].tokens, whole[i].tokens) << "beam " << beam << " source " << i;
      EXPECT_EQ(parts[i].tokens, recomputed[i].tokens) << "beam " << beam << " source " << i;
      EXPECT_NEAR(parts[i].score, whole[i].score, 1e-5 * std::abs(whole[i].score))
          << "beam " << beam << " source " << i;
      EXPECT_NEAR(parts[i].score, recomputed[i].score, 1e-4 * std::abs(recomputed[i].score))
          << "beam " << beam << " source " << i;
    }
  }
}

TEST(TranslatorTest, BeamSearchFindsAtLeastGreedysScore) {
  const Model model(SmallConfig(model::NormPlacement::kPost, model::PositionEncoding::kSinusoidal),
                    7);
  const ThreadPool threads(2);
  TranslateOptions greedy, beam;
  greedy.length_penalty = beam.length_penalty = 0.0;  // plain summed log-probabilities
  beam.beam = 4;
  const auto greedy_out = Translate(model.config, model.params, Sources(), greedy, threads);
  const auto beam_out = Translate(model.config, model.params, Sources(), beam, threads);
  bool some_differ = false;
  for (size_t i = 0; i < Sources().size(); ++i) {
    // Float noise only: the same tokens score up to a few 1e-7 apart in the two searches (the
    // projections' GEMM rounds a row differently when the step holds another number of rows).
    EXPECT_GE(beam_out[i].score, greedy_out[i].score - 1e-5 * std::abs(greedy_out[i].score))
        << "source " << i;
    some_differ |= beam_out[i].tokens != greedy_out[i].tokens;
  }
  EXPECT_TRUE(some_differ) << "beam search never changed a translation: the case tests little";
}

TEST(TranslatorTest, BadOptionsAndSourcesAreErrors) {
  const Model model(SmallConfig(model::NormPlacement::kPost, model::PositionEncoding::kSinusoidal),
                    1);
  const ThreadPool threads(1);
  auto error_of = [&](const TranslateOptions& options,
                      const std::vector<std::vector<int32_t>>& sources) {
    try {
      Translate(model.config, model.params, sources, options, threads);
    } catch (const Error& error) {
      return std::string(error.what());
    }
    return std::string("no error");
  };
  TranslateOptions zero_beam;
  zero_beam.beam = 0;
  EXPECT_NE(error_of(zero_beam, Sources()).find("--beam must be at least 1, got 0"),
            std::string::npos);
  TranslateOptions long_max;
  long_max.max_length = 13;
  EXPECT_NE(error_of(long_max, Sources()).find("--max-length must be in [2, 12]"),
            std::string::npos);
  EXPECT_NE(error_of({}, {{3, 4}}).find("source 0 does not end with </s>"), std::string::npos);
  EXPECT_NE(error_of({}, {std::vector<int32_t>(13, 0)}).find("more than the model's 12"),
            std::string::npos);
  Translator translator(model.config, model.params, {}, threads);
  for (const auto& [batch, length] : {std::pair{0, 3}, std::pair{2, 13}}) {
    try {
      translator.Reserve(batch, length);
      ADD_FAILURE() << "Reserve(" << batch << ", " << length << ") was accepted";
    } catch (const Error& error) {
      EXPECT_NE(std::string(error.what()).find("cannot reserve"), std::string::npos)
          << error.what();
    }
  }
}

}  // namespace
}  // namespace qkv::infer
