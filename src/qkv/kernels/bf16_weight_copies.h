// bfloat16 copies of float32 weight matrices, found by the address of the float32 data: what
// the matrix products read instead of the float32 weights when they want bfloat16 (training
// and evaluation in bf16 precision: kernels::Matmul; decoding a few rows at a time:
// ops::LinearForward, where half the bytes per token is nearly twice the speed). The float32
// weights stay the master copy; Refresh() rounds them again after they change (once per
// optimizer step, not once per product).
#pragma once

#include <cstdint>
#include <unordered_map>
#include <vector>

#include "qkv/core/tensor_view.h"
#include "qkv/runtime/execution_context.h"

namespace qkv {

class Bf16WeightCopies {
 public:
  // Adds a copy of weight (rows, cols), rounded to nearest even now; adding the same data
  // twice keeps one.
  void Add(ConstTensorView<float> weight, const ExecutionContext& ctx);

  // Rounds every copy again from its float32 weights (on ctx's threads).
  void Refresh(const ExecutionContext& ctx);

  // The copy of the float32 matrix at `weight` whose rows are `row_stride` floats apart and
  // that spans at least `elements` values, or null when there is none of that layout.
  const uint16_t* Find(const float* weight, int64_t row_stride, int64_t elements) const;

  size_t bytes() const { return bytes_; }

 private:
  struct Copy {
    int64_t cols = 0;
    std::vector<uint16_t> values;  // (rows, cols), the weight's layout
  };
  std::unordered_map<const float*, Copy> copies_;
  size_t bytes_ = 0;
};

}  // namespace qkv
