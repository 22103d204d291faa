// Token-count batches of sentence pairs: the plan covers every pair once, keeps the padded token
// bound, groups by sorted length, cuts greedily, shuffles the batches reproducibly (and
// uniformly); the padded tensors hold exactly the ids, masks and labels the trainer expects.
#include "qkv/train/pair_batches.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "qkv/testing/temp_dir.h"

namespace qkv::train {
namespace {

using testing::ErrorOf;
using Batches = std::vector<std::vector<int64_t>>;

// A pair with a source of s ids and a target of t ids; the ids encode the pair and position so
// that a misplaced id shows.
TokenizedPair PairOfLengths(int64_t index, int64_t s, int64_t t) {
  TokenizedPair pair;
  for (int64_t i = 0; i < s; ++i) pair.source.push_back(static_cast<int32_t>(1000 * index + i));
  for (int64_t i = 0; i < t; ++i)
    pair.target.push_back(static_cast<int32_t>(1000 * index + 500 + i));
  return pair;
}

std::vector<TokenizedPair> RandomPairs(int64_t count, int64_t max_len, Random& random) {
  std::vector<TokenizedPair> pairs;
  for (int64_t i = 0; i < count; ++i) {
    const int64_t s = 1 + static_cast<int64_t>(random.Below(static_cast<uint64_t>(max_len)));
    const int64_t t = static_cast<int64_t>(random.Below(static_cast<uint64_t>(max_len)));
    pairs.push_back(PairOfLengths(i, s, t));
  }
  return pairs;
}

std::pair<size_t, size_t> Lengths(const TokenizedPair& pair) {
  return {pair.source.size(), pair.target.size()};
}

// Checks every promise of PlanTokenBatches's rule for this plan.
void CheckPlan(const std::vector<TokenizedPair>& pairs, int64_t max_tokens, const Batches& plan) {
  const int64_t count = static_cast<int64_t>(pairs.size());
  std::vector<int> seen(pairs.size(), 0);
  for (const auto& batch : plan) {
    ASSERT_FALSE(batch.empty());
    int64_t longest = 0;
    for (size_t k = 0; k < batch.size(); ++k) {
      ASSERT_GE(batch[k], 0);
      ASSERT_LT(batch[k], count);
      ++seen[batch[k]];
      longest = std::max(longest, PairTokens(pairs[batch[k]]));
      if (k > 0) {
        // Sorted by (source, target) length; equal lengths in input order (stable).
        const auto previous = Lengths(pairs[batch[k - 1]]), here = Lengths(pairs[batch[k]]);
        EXPECT_TRUE(previous < here || (previous == here && batch[k - 1] < batch[k]))
            << "batch not sorted at " << k;
      }
    }
    EXPECT_LE(static_cast<int64_t>(batch.size()) * longest, max_tokens);
    // The padded tensors keep the same bound.
    const PairBatch built = BuildPairBatch(pairs, batch, {.pad_id = 0, .start_id = 1, .eos_id = 2});
    EXPECT_LE(built.batch * std::max(built.source_len, built.target_len), max_tokens);
  }
  for (int64_t i = 0; i < count; ++i) EXPECT_EQ(seen[i], 1) << "pair " << i;

  // Unshuffled, the batches are consecutive runs of the stable sort, each as long as the
  // greedy rule allows: the first pair of the next run would have broken the bound.
  Batches runs = plan;
  std::sort(runs.begin(), runs.end(), [&](const auto& a, const auto& b) {
    const auto x = Lengths(pairs[a[0]]), y = Lengths(pairs[b[0]]);
    return x < y || (x == y && a[0] < b[0]);
  });
  std::vector<int64_t> concatenated, sorted(pairs.size());
  for (const auto& run : runs) concatenated.insert(concatenated.end(), run.begin(), run.end());
  for (int64_t i = 0; i < count; ++i) sorted[i] = i;
  std::stable_sort(sorted.begin(), sorted.end(),
                   [&](int64_t a, int64_t b) { return Lengths(pairs[a]) < Lengths(pairs[b]); });
  EXPECT_EQ(concatenated, sorted);
  for (size_t r = 0; r + 1 < runs.size(); ++r) {
    int64_t longest = PairTokens(pairs[runs[r + 1][0]]);
    for (int64_t index : runs[r]) longest = std::max(longest, PairTokens(pairs[index]));
    EXPECT_GT(static_cast<int64_t>(runs[r].size() + 1) * longest, max_tokens)
        << "run " << r << " could have taken one more pair";
  }
}

TEST(PairBatchesTest, PairTokensCountsTheLongerSideWithTheDecoderExtraPosition) {
  EXPECT_EQ(PairTokens(PairOfLengths(0, 5, 3)), 5);
  EXPECT_EQ(PairTokens(PairOfLengths(0, 5, 4)), 5);
  EXPECT_EQ(PairTokens(PairOfLengths(0, 5, 5)), 6);
  EXPECT_EQ(PairTokens(PairOfLengths(0, 1, 0)), 1);
}

TEST(PairBatchesTest, AHandExampleCutsWhereTheRuleSays) {
  // PairTokens: 0 -> 3, 1 -> 2, 2 -> 4, 3 -> 3, 4 -> 8, 5 -> 2. Sorted by (source, target):
  // 5 (2,0), 1 (2,1), 3 (3,1), 0 (3,2), 2 (4,1), 4 (6,7). With 8 tokens: {5, 1, 3} costs
  // 3 * 3 = 9 > 8, so {5, 1}; {3, 0} = 6, {3, 0, 2} = 12; {2} + 4 = 2 * 8; {4} = 8.
  const std::vector<TokenizedPair> pairs = {PairOfLengths(0, 3, 2), PairOfLengths(1, 2, 1),
                                            PairOfLengths(2, 4, 1), PairOfLengths(3, 3, 1),
                                            PairOfLengths(4, 6, 7), PairOfLengths(5, 2, 0)};
  Random random(1);
  Batches plan = PlanTokenBatches(pairs, 8, random);
  CheckPlan(pairs, 8, plan);
  std::sort(plan.begin(), plan.end());
  EXPECT_EQ(plan, (Batches{{2}, {3, 0}, {4}, {5, 1}}));
}

TEST(PairBatchesTest, RandomPlansKeepEveryInvariant) {
  Random data_random(2);
  for (int trial = 0; trial < 40; ++trial) {
    const int64_t count = 1 + static_cast<int64_t>(data_random.Below(300));
    const int64_t max_len = 1 + static_cast<int64_t>(data_random.Below(60));
    const std::vector<TokenizedPair> pairs = RandomPairs(count, max_len, data_random);
    int64_t longest = 0;
    for (const auto& pair : pairs) longest = std::max(longest, PairTokens(pair));
    // From the tightest limit (one pair of the longest alone) to several hundred pairs a batch.
    for (int64_t max_tokens :
         {longest, longest + 1, 2 * longest + 3, 50 * longest, int64_t{4096}}) {
      Random random(static_cast<uint64_t>(trial));
      SCOPED_TRACE("trial " + std::to_string(trial) + ", max_tokens " + std::to_string(max_tokens));
      CheckPlan(pairs, max_tokens, PlanTokenBatches(pairs, max_tokens, random));
    }
  }
}

TEST(PairBatchesTest, EqualLengthsFillBatchesExactly) {
  // 100 pairs of 4 tokens, limit 40: ten batches of ten, in input order.
  std::vector<TokenizedPair> pairs;
  for (int64_t i = 0; i < 100; ++i) pairs.push_back(PairOfLengths(i, 4, 3));
  Random random(3);
  Batches plan = PlanTokenBatches(pairs, 40, random);
  CheckPlan(pairs, 40, plan);
  ASSERT_EQ(plan.size(), 10u);
  std::sort(plan.begin(), plan.end());
  for (int64_t b = 0; b < 10; ++b) {
    std::vector<int64_t> expected;
    for (int64_t i = 0; i < 10; ++i) expected.push_back(10 * b + i);
    EXPECT_EQ(plan[b], expected);
  }
}

TEST(PairBatchesTest, TheSameSeedGivesTheSamePlanAndAnotherSeedAnotherOrder) {
  Random data_random(4);
  const std::vector<TokenizedPair> pairs = RandomPairs(500, 50, data_random);
  const auto plan = [&](uint64_t seed) {
    Random random(seed);
    return PlanTokenBatches(pairs, 200, random);
  };
  const Batches a = plan(7);
  ASSERT_GE(a.size(), 20u);  // 20! orders: two seeds agree by chance with probability ~4e-19
  EXPECT_EQ(plan(7), a);
  const Batches b = plan(8);
  EXPECT_NE(b, a);
  // The same batches, only in another order: the contents do not depend on the seed.
  Batches sorted_a = a, sorted_b = b;
  std::sort(sorted_a.begin(), sorted_a.end());
  std::sort(sorted_b.begin(), sorted_b.end());
  EXPECT_EQ(sorted_a, sorted_b);
}

TEST(PairBatchesTest, EachCallDrawsANewOrderFromTheStream) {
  Random data_random(5);
  const std::vector<TokenizedPair> pairs = RandomPairs(500, 50, data_random);
  Random random(9);
  const Batches first = PlanTokenBatches(pairs, 200, random);
  const Batches second = PlanTokenBatches(pairs, 200, random);
  EXPECT_NE(first, second);
  // And restoring the state repeats an epoch, as resuming from a checkpoint does.
  Random other(1);
  other.SetState(Random(9).State());
  EXPECT_EQ(PlanTokenBatches(pairs, 200, other), first);
}

TEST(PairBatchesTest, TheBatchOrderIsUniformOverAllPermutations) {
  // Three batches of one pair each: 6 orders, 6000 draws, 1000 expected of each with standard
  // deviation sqrt(6000 * 1/6 * 5/6) = 28.9. Within 6 of them (173) fails by chance with
  // probability ~1e-8; Sattolo's variant (Below(i) for Below(i + 1)) never gives 4 of the
  // orders and a biased shuffle misses by hundreds.
  const std::vector<TokenizedPair> pairs = {PairOfLengths(0, 4, 0), PairOfLengths(1, 5, 0),
                                            PairOfLengths(2, 6, 0)};
  Random random(10);
  std::map<Batches, int> histogram;
  for (int draw = 0; draw < 6000; ++draw) ++histogram[PlanTokenBatches(pairs, 6, random)];
  EXPECT_EQ(histogram.size(), 6u);
  for (const auto& [order, seen] : histogram) EXPECT_NEAR(seen, 1000, 6 * 28.9);
}

TEST(PairBatchesTest, APairAtTheLimitFitsAlone) {
  const std::vector<TokenizedPair> pairs = {PairOfLengths(0, 3, 9), PairOfLengths(1, 10, 2)};
  Random random(11);
  Batches plan = PlanTokenBatches(pairs, 10, random);
  std::sort(plan.begin(), plan.end());
  EXPECT_EQ(plan, (Batches{{0}, {1}}));
}

TEST(PairBatchesTest, NoPairsGiveNoBatches) {
  Random random(12);
  EXPECT_TRUE(PlanTokenBatches({}, 100, random).empty());
}

TEST(PairBatchesTest, APairLongerThanTheLimitIsAnErrorNamingIt) {
  std::vector<TokenizedPair> pairs = {PairOfLengths(0, 3, 2), PairOfLengths(1, 4, 20),
                                      PairOfLengths(2, 30, 1), PairOfLengths(3, 2, 1)};
  Random random(13);
  // The first pair over the limit is named; the target counts with its extra position.
  EXPECT_EQ(ErrorOf([&] { PlanTokenBatches(pairs, 20, random); }),
            "pair 1 (counting from 0) needs 21 tokens (source 4, target 20 + 1), more than the "
            "batch-token limit 20; raise --batch-tokens or leave out pairs this long");
  pairs[1] = PairOfLengths(1, 4, 19);
  EXPECT_EQ(ErrorOf([&] { PlanTokenBatches(pairs, 20, random); }),
            "pair 2 (counting from 0) needs 30 tokens (source 30, target 1 + 1), more than the "
            "batch-token limit 20; raise --batch-tokens or leave out pairs this long");
}

TEST(PairBatchesTest, ALimitBelowOneIsAnError) {
  const std::vector<TokenizedPair> pairs = {PairOfLengths(0, 1, 0)};
  Random random(14);
  EXPECT_EQ(ErrorOf([&] { PlanTokenBatches(pairs, 0, random); }),
            "the batch-token limit must be at least 1, not 0");
  EXPECT_EQ(ErrorOf([&] { PlanTokenBatches(pairs, -5, random); }),
            "the batch-token limit must be at least 1, not -5");
}

TEST(PairBatchesTest, BuildsThePaddedTensorsOfAHandExample) {
  // Source ids end with </s> = 2; targets are plain. pad 0, start 1, end 2.
  const std::vector<TokenizedPair> pairs = {
      {.source = {5, 6, 7, 2}, .target = {8, 9}},
      {.source = {10, 2}, .target = {11, 12, 13}},
      {.source = {20, 2}, .target = {}},
  };
  const std::vector<int64_t> indices = {1, 0, 2};  // rows follow indices
  const PairBatch batch = BuildPairBatch(pairs, indices, {.pad_id = 0, .start_id = 1, .eos_id = 2});
  constexpr int32_t kSkip = kIgnoredLabel;
  EXPECT_EQ(kSkip, -100);  // ops::kDefaultIgnoreIndex, what the loss skips
  EXPECT_EQ(batch.batch, 3);
  EXPECT_EQ(batch.source_len, 4);
  EXPECT_EQ(batch.target_len, 4);
  EXPECT_EQ(batch.source_ids, (std::vector<int32_t>{10, 2, 0, 0,  //
                                                    5, 6, 7, 2,   //
                                                    20, 2, 0, 0}));
  EXPECT_EQ(batch.source_padding, (std::vector<uint8_t>{0, 0, 1, 1,  //
                                                        0, 0, 0, 0,  //
                                                        0, 0, 1, 1}));
  EXPECT_EQ(batch.decoder_input, (std::vector<int32_t>{1, 11, 12, 13,  //
                                                       1, 8, 9, 0,     //
                                                       1, 0, 0, 0}));
  EXPECT_EQ(batch.labels, (std::vector<int32_t>{11, 12, 13, 2,   //
                                                8, 9, 2, kSkip,  //
                                                2, kSkip, kSkip, kSkip}));
  EXPECT_EQ(batch.source_tokens, 2 + 4 + 2);
  EXPECT_EQ(batch.target_tokens, 4 + 3 + 1);

  EXPECT_EQ(batch.SourceIds().shape(), (Shape{3, 4}));
  EXPECT_EQ(batch.SourcePadding().shape(), (Shape{3, 4}));
  EXPECT_EQ(batch.DecoderInput().shape(), (Shape{3, 4}));
  EXPECT_EQ(batch.Labels().shape(), (Shape{3, 4}));
  EXPECT_EQ(batch.SourceIds().data(), batch.source_ids.data());
  EXPECT_EQ(batch.Labels()[7], kSkip);
}

TEST(PairBatchesTest, TheLongerTargetSetsTheDecoderLength) {
  const std::vector<TokenizedPair> pairs = {{.source = {3, 2}, .target = {7, 7, 7, 7, 7}}};
  const PairBatch batch =
      BuildPairBatch(pairs, std::vector<int64_t>{0}, {.pad_id = 9, .start_id = 8, .eos_id = 2});
  EXPECT_EQ(batch.source_len, 2);
  EXPECT_EQ(batch.target_len, 6);
  EXPECT_EQ(batch.source_padding, (std::vector<uint8_t>{0, 0}));
  EXPECT_EQ(batch.decoder_input, (std::vector<int32_t>{8, 7, 7, 7, 7, 7}));
  EXPECT_EQ(batch.labels, (std::vector<int32_t>{7, 7, 7, 7, 7, 2}));
  EXPECT_EQ(batch.target_tokens, 6);
}

TEST(PairBatchesTest, RandomBatchesMatchTheirPairs) {
  Random random(15);
  const std::vector<TokenizedPair> pairs = RandomPairs(200, 30, random);
  const PairSpecialIds ids = {.pad_id = 3, .start_id = 4, .eos_id = 5};
  for (const auto& indices : PlanTokenBatches(pairs, 120, random)) {
    const PairBatch batch = BuildPairBatch(pairs, indices, ids);
    int64_t source_tokens = 0, target_tokens = 0;
    for (int64_t b = 0; b < batch.batch; ++b) {
      const TokenizedPair& pair = pairs[indices[b]];
      const int64_t s_len = static_cast<int64_t>(pair.source.size());
      const int64_t t_len = static_cast<int64_t>(pair.target.size());
      for (int64_t s = 0; s < batch.source_len; ++s) {
        const int64_t at = b * batch.source_len + s;
        EXPECT_EQ(batch.source_ids[at], s < s_len ? pair.source[s] : ids.pad_id);
        EXPECT_EQ(batch.source_padding[at], s < s_len ? 0 : 1);
        source_tokens += batch.source_padding[at] == 0;
      }
      for (int64_t t = 0; t < batch.target_len; ++t) {
        const int64_t at = b * batch.target_len + t;
        EXPECT_EQ(batch.decoder_input[at], t == 0       ? ids.start_id
                                           : t <= t_len ? pair.target[t - 1]
                                                        : ids.pad_id);
        EXPECT_EQ(batch.labels[at], t < t_len    ? pair.target[t]
                                    : t == t_len ? ids.eos_id
                                                 : kIgnoredLabel);
        target_tokens += batch.labels[at] != kIgnoredLabel;
      }
    }
    EXPECT_EQ(batch.source_tokens, source_tokens);
    EXPECT_EQ(batch.target_tokens, target_tokens);
  }
}

TEST(PairBatchesTest, BadBatchRequestsAreErrors) {
  const std::vector<TokenizedPair> pairs = {{.source = {3, 2}, .target = {4}}};
  const PairSpecialIds ids = {.pad_id = 0, .start_id = 1, .eos_id = 2};
  EXPECT_EQ(ErrorOf([&] { BuildPairBatch(pairs, {}, ids); }), "a batch needs at least one pair");
  EXPECT_EQ(ErrorOf([&] {
              BuildPairBatch(pairs, std::vector<int64_t>{0, 1}, ids);
            }),
            "pair index 1 is out of range for 1 pairs");
  EXPECT_EQ(ErrorOf([&] { BuildPairBatch(pairs, std::vector<int64_t>{-1}, ids); }),
            "pair index -1 is out of range for 1 pairs");
  EXPECT_EQ(ErrorOf([&] { BuildPairBatch(pairs, std::vector<int64_t>{0}, {.pad_id = 0}); }),
            "the pad, start and end ids must be set (>= 0), not 0, -1, -1");
  const std::vector<TokenizedPair> negative = {{.source = {3, 2}, .target = {4, -100}}};
  EXPECT_EQ(ErrorOf([&] { BuildPairBatch(negative, std::vector<int64_t>{0}, ids); }),
            "pair 0: target id -100 at position 1 is negative");
}

}  // namespace
}  // namespace qkv::train
