// KvCache: the keys and values of every layer for the tokens of ONE sequence seen so far, so
// that decoding a new token costs one row of projections per layer instead of recomputing
// the whole sequence. Keys are stored after RoPE (when the model uses it), exactly as the
// attention op consumes them.
//
//   KvCache cache(config.num_layers, config.context, config.kv_width());
//   IncrementalForward(..., prompt, cache, ...);   // cache.length() == prompt size
//   IncrementalForward(..., {next}, cache, ...);   // one more row per layer
#pragma once

#include <cstdint>
#include <vector>

#include "qkv/core/arena.h"
#include "qkv/core/tensor_view.h"

namespace qkv::infer {

class KvCache {
 public:
  // num_layers, max_len, width > 0. One allocation for every layer's K and V.
  KvCache(int64_t num_layers, int64_t max_len, int64_t width);

  // Move-only: a cache can be large, so a copy is spelled out (Copy) where it is wanted, e.g.
  // to branch several continuations from one prefilled prompt.
  KvCache(KvCache&&) noexcept = default;
  KvCache& operator=(KvCache&&) noexcept = default;
  KvCache(const KvCache&) = delete;
  KvCache& operator=(const KvCache&) = delete;
  KvCache Copy() const;

  int64_t num_layers() const { return num_layers_; }
  int64_t max_len() const { return max_len_; }
  int64_t width() const { return width_; }
  // Bytes the cache holds for every layer's keys and values: 2 * layers * max_len * width
  // floats (with grouped-query attention, width is the key/value heads' only).
  size_t bytes() const { return arena_.capacity_bytes(); }
  // Tokens cached: rows [0, length) of every layer's keys and values are valid.
  int64_t length() const { return length_; }

  // (max_len, Ckv) each, Ckv = key/value heads x head size; rows past length() are unspecified.
  TensorView<float> keys(int64_t layer) const;
  TensorView<float> values(int64_t layer) const;

  // Forgets every token (the memory is kept).
  void Reset() { length_ = 0; }
  // Marks `count` more rows as valid once the caller has written them; length() + count must
  // not exceed max_len().
  void Advance(int64_t count);

 private:
  int64_t num_layers_ = 0, max_len_ = 0, width_ = 0, length_ = 0;
  Arena arena_{0};
  std::vector<TensorView<float>> keys_, values_;  // num_layers views of (max_len, C)
};

}  // namespace qkv::infer
