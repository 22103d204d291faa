// Batches of sentence pairs for encoder-decoder training, formed by token count as fairseq's
// --max-tokens does: pairs of similar length go together so that little of a batch is padding.
//
// A pair of source length s and target length t (the TokenizedPair sizes) occupies
// max(s, t + 1) positions: the encoder reads s ids, the decoder t + 1 (the start id and the
// target as input; the target and the end id as labels). A batch of B pairs is padded to
// S = the longest source and T = the longest target + 1, and costs B * max(S, T) tokens: the
// padded tokens of the longer side (fairseq's num_tokens_fn = max(src_len, tgt_len), with the
// decoder's extra position counted). PlanTokenBatches keeps every batch at or under max_tokens.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "qkv/core/random.h"
#include "qkv/core/tensor_view.h"
#include "qkv/ops/cross_entropy.h"

namespace qkv::train {

struct TokenizedPair {
  std::vector<int32_t> source;  // the source ids, with the end id </s> already appended
  std::vector<int32_t> target;  // the target ids alone: no start id, no end id
};

// max(source.size(), target.size() + 1): the positions the pair occupies in a batch.
int64_t PairTokens(const TokenizedPair& pair);

// The batches of one epoch, each a list of indices into pairs. The rule, exactly:
//   1. The indices 0..n-1 are sorted by (source length, target length), stably: equal lengths
//      keep their order in pairs. This step does not use random.
//   2. The sorted list is cut greedily into consecutive runs: the next index joins the current
//      batch when (batch size + 1) * max(its PairTokens and those already in the batch) <=
//      max_tokens, and otherwise starts the next batch. Inside a batch the indices stay sorted.
//   3. The order of the batches is shuffled with random: Fisher-Yates from the last batch down,
//      batch i swapped with batch random.Below(i + 1). So one seed (and one random state) gives
//      the same epoch everywhere, and each call draws a new order from the stream.
// Every index appears in exactly one batch. No pairs give no batches. Throws qkv::Error when
// max_tokens < 1 or when one pair alone exceeds max_tokens (naming its index, its PairTokens
// and max_tokens; the first such pair is named).
std::vector<std::vector<int64_t>> PlanTokenBatches(std::span<const TokenizedPair> pairs,
                                                   int64_t max_tokens, Random& random);

// The ids BuildPairBatch writes besides the pairs' own. Each must be set (>= 0).
struct PairSpecialIds {
  int32_t pad_id = -1;    // fills source_ids and decoder_input past each pair's end
  int32_t start_id = -1;  // first decoder input of every pair (<s>, or fairseq's </s>)
  int32_t eos_id = -1;    // last label of every pair (</s>)
};

// The label of a padding position: the loss skips it (ops::CrossEntropyForward's ignore_index,
// as the decoder-only trainer uses).
inline constexpr int32_t kIgnoredLabel = ops::kDefaultIgnoreIndex;

// One padded batch, row b for the pair indices[b]. Row-major buffers; the shapes are given with
// B = batch, S = source_len, T = target_len.
struct PairBatch {
  int64_t batch = 0;       // B: pairs in the batch
  int64_t source_len = 0;  // S: the longest source of the batch
  int64_t target_len = 0;  // T: the longest target of the batch + 1

  std::vector<int32_t> source_ids;      // (B, S): the source, then pad_id
  std::vector<uint8_t> source_padding;  // (B, S): 1 where source_ids is padding, else 0
  std::vector<int32_t> decoder_input;   // (B, T): start_id, the target, then pad_id
  std::vector<int32_t> labels;          // (B, T): the target, eos_id, then kIgnoredLabel

  int64_t source_tokens = 0;  // sum of the source lengths: the entries of source_padding == 0
  int64_t target_tokens = 0;  // sum of (target length + 1): the labels != kIgnoredLabel

  // The buffers as tensor views of the shapes above (valid while the batch lives, unmoved).
  ConstTensorView<int32_t> SourceIds() const { return {source_ids.data(), {batch, source_len}}; }
  ConstTensorView<uint8_t> SourcePadding() const {
    return {source_padding.data(), {batch, source_len}};
  }
  ConstTensorView<int32_t> DecoderInput() const {
    return {decoder_input.data(), {batch, target_len}};
  }
  ConstTensorView<int32_t> Labels() const { return {labels.data(), {batch, target_len}}; }
};

// The padded tensors of the pairs at indices (as PlanTokenBatches returns them; any order,
// each row follows indices). Throws qkv::Error for no indices, an index out of range, or an
// unset special id.
PairBatch BuildPairBatch(std::span<const TokenizedPair> pairs, std::span<const int64_t> indices,
                         const PairSpecialIds& ids);

}  // namespace qkv::train
