// The parameters (or their gradients) of a model as one list of named views, in
// model::ForEachParameter order, and the copies between such a list and its flat
// concatenation that the collectives and the optimizer state files work on.
#pragma once

#include <cstdint>
#include <cstring>
#include <span>
#include <utility>
#include <vector>

#include "qkv/model/parameters.h"
#include "qkv/train/concatenation.h"

namespace qkv::train {

using ParameterList = std::vector<std::pair<model::ParameterInfo, TensorView<float>>>;

// Any model's: a decoder-only ModelConfig with its ModelParams<float>, or an
// EncoderDecoderConfig with its EncoderDecoderParams<float> (ForEachParameter is found by
// argument-dependent lookup, so this header need not include every model).
template <typename Config, typename Params>
ParameterList ListParameters(const Config& config, Params& params) {
  ParameterList list;
  ForEachParameter(config, params, [&](const model::ParameterInfo& info, TensorView<float>& slot) {
    list.emplace_back(info, slot);
  });
  return list;
}

inline int64_t CountElements(const ParameterList& list) {
  int64_t count = 0;
  for (const auto& [info, view] : list) count += view.size();
  return count;
}

// flat[i - begin] = concatenation[i] for i in [begin, end).
inline void CopyToFlat(const ParameterList& list, int64_t begin, int64_t end, float* flat) {
  ForEachOverlap(
      std::span<const ParameterList::value_type>(list), begin, end,
      [](const auto& entry) { return entry.second.size(); },
      [&](const auto& entry, int64_t from, int64_t to) {
        std::memcpy(flat, entry.second.data() + from,
                    static_cast<size_t>(to - from) * sizeof(float));
        flat += to - from;
      });
}

// concatenation[i] = flat[i - begin] for i in [begin, end).
inline void CopyFromFlat(const float* flat, int64_t begin, int64_t end, const ParameterList& list) {
  ForEachOverlap(
      std::span<const ParameterList::value_type>(list), begin, end,
      [](const auto& entry) { return entry.second.size(); },
      [&](const auto& entry, int64_t from, int64_t to) {
        std::memcpy(entry.second.data() + from, flat,
                    static_cast<size_t>(to - from) * sizeof(float));
        flat += to - from;
      });
}

}  // namespace qkv::train
