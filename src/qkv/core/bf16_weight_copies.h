// bfloat16 copies of float32 weight matrices, found by the address of the float32 data: what
// ops::LinearForward reads instead of the float32 weights for a few rows at a time (batch-1
// decoding reads every weight once per token, so half the bytes is nearly twice the speed).
// The float32 weights stay: larger products (a prompt's prefill) keep using them.
#pragma once

#include <cstdint>
#include <unordered_map>
#include <vector>

#include "qkv/core/bfloat16.h"
#include "qkv/core/tensor_view.h"

namespace qkv {

class Bf16WeightCopies {
 public:
  // Adds a copy of weight (rounded to nearest even); adding the same data twice keeps one.
  void Add(ConstTensorView<float> weight) {
    std::vector<uint16_t>& copy = copies_[weight.data()];  // (size), weight's layout
    if (!copy.empty()) return;
    copy.resize(static_cast<size_t>(weight.size()));
    for (size_t i = 0; i < copy.size(); ++i) copy[i] = ToBfloat16(weight.data()[i]);
    bytes_ += copy.size() * sizeof(uint16_t);
  }

  // The copy of the float32 data at `weight`, or null when there is none.
  const uint16_t* Find(const float* weight) const {
    const auto found = copies_.find(weight);
    return found == copies_.end() ? nullptr : found->second.data();
  }

  size_t bytes() const { return bytes_; }

 private:
  std::unordered_map<const float*, std::vector<uint16_t>> copies_;
  size_t bytes_ = 0;
};

}  // namespace qkv
