#include "qkv/train/pair_batches.h"

#include <algorithm>
#include <numeric>
#include <utility>

#include "qkv/core/check.h"

namespace qkv::train {

int64_t PairTokens(const TokenizedPair& pair) {
  return std::max(static_cast<int64_t>(pair.source.size()),
                  static_cast<int64_t>(pair.target.size()) + 1);
}

std::vector<std::vector<int64_t>> PlanTokenBatches(std::span<const TokenizedPair> pairs,
                                                   int64_t max_tokens, Random& random) {
  QKV_CHECK(max_tokens >= 1, "the batch-token limit must be at least 1, not ", max_tokens);
  const int64_t count = static_cast<int64_t>(pairs.size());
  for (int64_t i = 0; i < count; ++i) {
    const int64_t tokens = PairTokens(pairs[i]);
    QKV_CHECK(tokens <= max_tokens, "pair ", i, " (counting from 0) needs ", tokens,
              " tokens (source ", pairs[i].source.size(), ", target ", pairs[i].target.size(),
              " + 1), more than the batch-token limit ", max_tokens,
              "; raise --batch-tokens or leave out pairs this long");
  }

  std::vector<int64_t> order(static_cast<size_t>(count));
  std::iota(order.begin(), order.end(), int64_t{0});
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    const TokenizedPair &x = pairs[a], &y = pairs[b];
    if (x.source.size() != y.source.size()) return x.source.size() < y.source.size();
    return x.target.size() < y.target.size();
  });

  std::vector<std::vector<int64_t>> batches;
  std::vector<int64_t> current;
  int64_t longest = 0;  // the largest PairTokens in current
  for (int64_t index : order) {
    const int64_t tokens = std::max(longest, PairTokens(pairs[index]));
    if (!current.empty() && (static_cast<int64_t>(current.size()) + 1) * tokens > max_tokens) {
      batches.push_back(std::move(current));
      current.clear();
      longest = 0;
    }
    current.push_back(index);
    longest = std::max(longest, PairTokens(pairs[index]));
  }
  if (!current.empty()) batches.push_back(std::move(current));

  for (size_t i = batches.size(); i > 1; --i) {
    const size_t j = static_cast<size_t>(random.Below(i));
    std::swap(batches[i - 1], batches[j]);
  }
  return batches;
}

PairBatch BuildPairBatch(std::span<const TokenizedPair> pairs, std::span<const int64_t> indices,
                         const PairSpecialIds& ids) {
  QKV_CHECK(ids.pad_id >= 0 && ids.start_id >= 0 && ids.eos_id >= 0,
            "the pad, start and end ids must be set (>= 0), not ", ids.pad_id, ", ", ids.start_id,
            ", ", ids.eos_id);
  QKV_CHECK(!indices.empty(), "a batch needs at least one pair");
  const int64_t count = static_cast<int64_t>(pairs.size());
  PairBatch out;
  out.batch = static_cast<int64_t>(indices.size());
  for (int64_t index : indices) {
    QKV_CHECK(index >= 0 && index < count, "pair index ", index, " is out of range for ", count,
              " pairs");
    const TokenizedPair& pair = pairs[index];
    for (size_t p = 0; p < pair.source.size(); ++p) {
      QKV_CHECK(pair.source[p] >= 0, "pair ", index, ": source id ", pair.source[p],
                " at position ", p, " is negative");
    }
    for (size_t p = 0; p < pair.target.size(); ++p) {
      QKV_CHECK(pair.target[p] >= 0, "pair ", index, ": target id ", pair.target[p],
                " at position ", p, " is negative");
    }
    out.source_len = std::max(out.source_len, static_cast<int64_t>(pair.source.size()));
    out.target_len = std::max(out.target_len, static_cast<int64_t>(pair.target.size()) + 1);
  }

  const int64_t batch = out.batch, source_len = out.source_len, target_len = out.target_len;
  out.source_ids.assign(static_cast<size_t>(batch * source_len), ids.pad_id);
  out.source_padding.assign(static_cast<size_t>(batch * source_len), uint8_t{1});
  out.decoder_input.assign(static_cast<size_t>(batch * target_len), ids.pad_id);
  out.labels.assign(static_cast<size_t>(batch * target_len), kIgnoredLabel);
  for (int64_t b = 0; b < batch; ++b) {
    const TokenizedPair& pair = pairs[indices[b]];
    const int64_t s_len = static_cast<int64_t>(pair.source.size());
    const int64_t t_len = static_cast<int64_t>(pair.target.size());
    for (int64_t s = 0; s < s_len; ++s) {
      out.source_ids[b * source_len + s] = pair.source[s];
      out.source_padding[b * source_len + s] = 0;
    }
    int32_t* input = out.decoder_input.data() + b * target_len;
    int32_t* label = out.labels.data() + b * target_len;
    input[0] = ids.start_id;
    for (int64_t t = 0; t < t_len; ++t) {
      input[t + 1] = pair.target[t];
      label[t] = pair.target[t];
    }
    label[t_len] = ids.eos_id;
    out.source_tokens += s_len;
    out.target_tokens += t_len + 1;
  }
  return out;
}

}  // namespace qkv::train
