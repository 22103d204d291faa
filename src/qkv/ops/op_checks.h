// Argument checks shared by the ops. Each throws qkv::Error naming the op, the argument and
// the values, e.g. "layer_norm: gamma has shape [32], expected [64]".
#pragma once

#include <string_view>

#include "qkv/core/check.h"
#include "qkv/core/tensor_view.h"

namespace qkv::ops {

template <typename T>
void CheckShape(std::string_view op, std::string_view name, const TensorView<T>& view,
                const Shape& expected) {
  QKV_CHECK(view.shape() == expected, op, ": ", name, " has shape ", view.shape().ToString(),
            ", expected ", expected.ToString());
  QKV_CHECK(view.data() != nullptr || expected.NumElements() == 0, op, ": ", name, " has no data");
}

template <typename T>
void CheckRank(std::string_view op, std::string_view name, const TensorView<T>& view, int rank) {
  QKV_CHECK(view.rank() == rank, op, ": ", name, " must have rank ", rank, ", got shape ",
            view.shape().ToString());
  QKV_CHECK(view.data() != nullptr || view.size() == 0, op, ": ", name, " has no data");
}

inline void CheckPositive(std::string_view op, std::string_view name, int64_t value) {
  QKV_CHECK(value > 0, op, ": ", name, " must be > 0, got ", value);
}

}  // namespace qkv::ops
