#include "qkv/infer/kv_cache.h"

#include <cstring>

#include "qkv/core/memory.h"

namespace qkv::infer {

namespace {

size_t CacheBytes(int64_t num_layers, int64_t max_len, int64_t width) {
  Arena measure = Arena::MeasureOnly();
  for (int64_t i = 0; i < 2 * num_layers; ++i) measure.Allocate<float>(Shape{max_len, width});
  return measure.used_bytes();
}

}  // namespace

KvCache::KvCache(int64_t num_layers, int64_t max_len, int64_t width)
    : num_layers_(num_layers), max_len_(max_len), width_(width) {
  QKV_CHECK(num_layers > 0, "kv_cache: num_layers must be > 0, got ", num_layers);
  QKV_CHECK(max_len > 0, "kv_cache: max_len must be > 0, got ", max_len);
  QKV_CHECK(width > 0, "kv_cache: width must be > 0, got ", width);
  const size_t bytes = CacheBytes(num_layers, max_len, width);
  CheckFitsInMemory(bytes, internal::StrCat("the KV cache of ", num_layers, " layers x ", max_len,
                                            " positions x width ", width));
  arena_ = Arena(bytes);
  for (int64_t layer = 0; layer < num_layers; ++layer) {
    keys_.push_back(arena_.Allocate<float>(Shape{max_len, width}));
    values_.push_back(arena_.Allocate<float>(Shape{max_len, width}));
  }
}

KvCache KvCache::Copy() const {
  KvCache copy(num_layers_, max_len_, width_);
  const size_t bytes = static_cast<size_t>(length_ * width_) * sizeof(float);
  for (int64_t layer = 0; layer < num_layers_; ++layer) {
    if (bytes == 0) break;
    std::memcpy(copy.keys_[layer].data(), keys_[layer].data(), bytes);
    std::memcpy(copy.values_[layer].data(), values_[layer].data(), bytes);
  }
  copy.length_ = length_;
  return copy;
}

TensorView<float> KvCache::keys(int64_t layer) const {
  QKV_CHECK(layer >= 0 && layer < num_layers_, "kv_cache: layer ", layer, " is outside [0, ",
            num_layers_, ")");
  return keys_[layer];
}

TensorView<float> KvCache::values(int64_t layer) const {
  QKV_CHECK(layer >= 0 && layer < num_layers_, "kv_cache: layer ", layer, " is outside [0, ",
            num_layers_, ")");
  return values_[layer];
}

void KvCache::Advance(int64_t count) {
  QKV_CHECK(count >= 0 && length_ + count <= max_len_, "kv_cache: cannot add ", count,
            " tokens to ", length_, " cached in a cache of ", max_len_);
  length_ += count;
}

}  // namespace qkv::infer
