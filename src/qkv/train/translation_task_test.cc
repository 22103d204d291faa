// The encoder-decoder's training task under the shared Trainer: an interrupted run resumes to
// bitwise the same losses and weights (also across an epoch boundary), an epoch trains on every
// pair once, evaluation is the token mean over the validation pairs (each pair alone, by a plain
// forward pass, gives the same), ranks' slices combine to the whole batch's gradient, and bad
// inputs are refused with messages that name them.
#include "qkv/train/translation_task.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "qkv/ops/cross_entropy.h"
#include "qkv/testing/temp_dir.h"
#include "qkv/train/trainer.h"

namespace qkv::train {
namespace {

using model::EncoderDecoderConfig;
using model::LoadedEncoderDecoder;
using testing::ErrorOf;

constexpr int32_t kPad = 15, kEos = 0;

EncoderDecoderConfig SmallConfig() {
  EncoderDecoderConfig config;
  config.vocab_size = 16;
  config.width = 16;
  config.num_heads = 2;
  config.ffn_dim = 24;
  config.encoder_layers = 1;
  config.decoder_layers = 1;
  config.max_positions = 12;
  config.dropout = 0.1f;  // resumption must restore the dropout stream too
  config.pad_id = kPad;
  config.eos_id = kEos;
  config.decoder_start_id = kPad;
  return config;
}

LoadedEncoderDecoder NewModel(const EncoderDecoderConfig& config, uint64_t seed = 7) {
  LoadedEncoderDecoder model = model::AllocateEncoderDecoder(config);
  Random random(seed);
  model::InitializeParameters(config, model.params, random);
  return model;
}

// Pairs of ids in [1, 15): the target is the source reversed, lengths 1 to 8.
std::vector<TokenizedPair> Pairs(int64_t count, uint64_t seed) {
  Random random(seed);
  std::vector<TokenizedPair> pairs;
  for (int64_t i = 0; i < count; ++i) {
    TokenizedPair pair;
    const int64_t length = 1 + static_cast<int64_t>(random.Below(8));
    for (int64_t t = 0; t < length; ++t) {
      pair.target.push_back(1 + static_cast<int32_t>(random.Below(14)));
    }
    pair.source.assign(pair.target.rbegin(), pair.target.rend());
    pair.source.push_back(kEos);
    pairs.push_back(pair);
  }
  return pairs;
}

TrainOptions Options(int64_t steps) {
  TrainOptions options;
  options.steps = steps;
  options.accum = 2;
  options.schedule = {3e-3, 3e-4, 3, steps};
  options.seed = 11;
  return options;
}

std::vector<float> Flatten(const ParameterList& list) {
  std::vector<float> flat;
  for (const auto& [info, view] : list) flat.insert(flat.end(), view.begin(), view.end());
  return flat;
}

TEST(TranslationTask, ResumesBitwiseAcrossAnEpochBoundary) {
  const EncoderDecoderConfig config = SmallConfig();
  const std::vector<TokenizedPair> train = Pairs(40, 1), val = Pairs(9, 2);
  const TranslationTaskOptions task_options{48, 0.1};
  const ThreadPool threads(2);
  constexpr int64_t kSteps = 12, kStop = 5;

  LoadedEncoderDecoder whole_model = NewModel(config);
  TranslationTask whole_task(whole_model, train, val, task_options);
  Trainer whole(whole_task, Options(kSteps), threads);
  std::vector<double> whole_losses;
  for (int64_t s = 0; s < kSteps; ++s) whole_losses.push_back(whole.Step().loss);
  ASSERT_GE(whole_task.epoch(), 2) << "the run must cross an epoch boundary";

  LoadedEncoderDecoder first_model = NewModel(config);
  TranslationTask first_task(first_model, train, val, task_options);
  Trainer first(first_task, Options(kSteps), threads);
  for (int64_t s = 0; s < kStop; ++s) EXPECT_EQ(first.Step().loss, whole_losses[s]);
  const io::SafetensorsFile state = first.SaveState();

  // A new process: the saved weights, a fresh task and trainer, the state file.
  LoadedEncoderDecoder resumed_model = NewModel(config, /*seed=*/99);
  const std::vector<float> saved = Flatten(first_task.parameters());
  CopyFromFlat(saved.data(), 0, static_cast<int64_t>(saved.size()),
               TranslationTask(resumed_model, train, val, task_options).parameters());
  TranslationTask resumed_task(resumed_model, train, val, task_options);
  Trainer resumed(resumed_task, Options(kSteps), threads);
  resumed.LoadState(state, "state");
  for (int64_t s = kStop; s < kSteps; ++s) EXPECT_EQ(resumed.Step().loss, whole_losses[s]) << s;
  EXPECT_EQ(Flatten(resumed_task.parameters()), Flatten(whole_task.parameters()));
  EXPECT_EQ(resumed.Evaluate(1, 0), whole.Evaluate(1, 0));
}

TEST(TranslationTask, AnEpochTrainsOnEveryPairOnce) {
  EncoderDecoderConfig config = SmallConfig();
  config.dropout = 0;
  const std::vector<TokenizedPair> train = Pairs(30, 3), val = Pairs(4, 4);
  LoadedEncoderDecoder model = NewModel(config);
  TranslationTask task(model, train, val, {40, 0.0});
  const ThreadPool threads(1);
  Arena scratch(task.ScratchBytes(1));
  const ExecutionContext ctx{&threads, &scratch};
  int64_t expected = 0;
  for (const TokenizedPair& pair : train) expected += static_cast<int64_t>(pair.target.size()) + 1;
  Random data(5);
  int64_t tokens = 0;
  while (task.epoch() <= 1) {
    tokens += task.TrainMicroBatch(data, nullptr, 1.0f, {}, ctx).tokens;
    if (tokens >= expected) break;
  }
  EXPECT_EQ(task.epoch(), 1);
  EXPECT_EQ(tokens, expected);
  task.TrainMicroBatch(data, nullptr, 1.0f, {}, ctx);
  EXPECT_EQ(task.epoch(), 2);
}

TEST(TranslationTask, EvaluationIsTheTokenMeanOfEachPairAlone) {
  EncoderDecoderConfig config = SmallConfig();
  config.dropout = 0;
  const std::vector<TokenizedPair> train = Pairs(10, 5), val = Pairs(13, 6);
  LoadedEncoderDecoder model = NewModel(config);
  TranslationTask task(model, train, val, {30, 0.2});
  ASSERT_GT(task.validation_batches(), 1);
  const ThreadPool threads(2);
  Trainer trainer(task, Options(1), threads);
  const double evaluated = trainer.Evaluate(20, 0);

  // Each pair alone, unpadded, with the plain model call (no smoothing).
  double total = 0, tokens = 0;
  Arena scratch(size_t{8} << 20);
  const ExecutionContext ctx{&threads, &scratch};
  for (int64_t i = 0; i < static_cast<int64_t>(val.size()); ++i) {
    const std::vector<int64_t> one{i};
    const PairBatch batch = BuildPairBatch(val, one, {kPad, kPad, kEos});
    Arena arena(size_t{8} << 20);
    const auto acts = model::AllocateEncoderDecoderActivations<float>(
        arena, config, 1, batch.source_len, batch.target_len);
    const double loss = model::EncoderDecoderForward<float>(config, model.params, batch.SourceIds(),
                                                            batch.DecoderInput(), batch.Labels(),
                                                            false, nullptr, acts, ctx);
    total += loss * static_cast<double>(batch.target_tokens);
    tokens += static_cast<double>(batch.target_tokens);
  }
  EXPECT_NEAR(evaluated, total / tokens, 1e-6 * total / tokens);
}

TEST(TranslationTask, RankSlicesCombineToTheWholeBatch) {
  EncoderDecoderConfig config = SmallConfig();
  config.dropout = 0;
  const std::vector<TokenizedPair> train = Pairs(24, 7), val = Pairs(3, 8);
  const ThreadPool threads(1);
  struct Rank {
    LoadedEncoderDecoder model;
    std::unique_ptr<TranslationTask> task;
    MicroBatchLoss measured;
  };
  std::vector<Rank> ranks(3);
  for (int r = 0; r < 3; ++r) {
    ranks[r].model = NewModel(config);
    ranks[r].task = std::make_unique<TranslationTask>(ranks[r].model, train, val,
                                                      TranslationTaskOptions{200, 0.1});
    Arena scratch(ranks[r].task->ScratchBytes(1));
    const ExecutionContext ctx{&threads, &scratch};
    Random data(3);  // the same stream on every rank
    // Rank 2 plays one process alone; ranks 0 and 1 split the batch.
    const RankSlice slice = r == 2 ? RankSlice{0, 1} : RankSlice{r, 2};
    ranks[r].measured = ranks[r].task->TrainMicroBatch(data, nullptr, 1.0f, slice, ctx);
  }
  const double c0 = ranks[0].measured.counted, c1 = ranks[1].measured.counted;
  ASSERT_GT(c0, 0);
  ASSERT_GT(c1, 0);
  EXPECT_EQ(c0 + c1, ranks[2].measured.counted);
  EXPECT_EQ(ranks[0].measured.tokens, ranks[2].measured.tokens);
  EXPECT_NEAR((ranks[0].measured.loss * c0 + ranks[1].measured.loss * c1) / (c0 + c1),
              ranks[2].measured.loss, 1e-6);
  const std::vector<float> g0 = Flatten(ranks[0].task->gradients());
  const std::vector<float> g1 = Flatten(ranks[1].task->gradients());
  const std::vector<float> whole = Flatten(ranks[2].task->gradients());
  double scale = 0;
  for (float value : whole) scale = std::max(scale, std::abs(static_cast<double>(value)));
  ASSERT_GT(scale, 0);
  for (size_t i = 0; i < whole.size(); ++i) {
    const double combined = (g0[i] * c0 + g1[i] * c1) / (c0 + c1);
    ASSERT_NEAR(combined, whole[i], 1e-5 * scale) << i;
  }
}

TEST(TranslationTask, RefusesPairsAndSettingsItCannotTake) {
  const EncoderDecoderConfig config = SmallConfig();
  LoadedEncoderDecoder model = NewModel(config);
  std::vector<TokenizedPair> train = Pairs(5, 9);
  const std::vector<TokenizedPair> val = Pairs(2, 10);
  train[3].target.assign(12, 1);  // 13 decoder positions > 12
  EXPECT_NE(ErrorOf([&] {
              TranslationTask task(model, train, val, {64, 0.1});
            }).find("training pair 4 is"),
            std::string::npos);
  train[3].target.assign(2, 1);
  EXPECT_NE(ErrorOf([&] {
              TranslationTask task(model, train, val, {64, 1.0});
            }).find("label smoothing must be in [0, 1), got 1"),
            std::string::npos);
  EXPECT_NE(ErrorOf([&] {
              TranslationTask task(model, train, {}, {64, 0.1});
            }).find("no validation pairs"),
            std::string::npos);
  EXPECT_NE(ErrorOf([&] {
              TranslationTask task(model, train, val, {4, 0.1});
            }).find("more than the batch-token limit 4"),
            std::string::npos);
}

}  // namespace
}  // namespace qkv::train
