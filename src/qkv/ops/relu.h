// ReLU: y = max(x, 0). The gradient at exactly 0 is taken as 0, as PyTorch does.
#pragma once

#include "qkv/core/tensor_view.h"
#include "qkv/runtime/execution_context.h"

namespace qkv::ops {

// input, output: same shape; output overwritten, may alias input.
template <typename T>
void ReluForward(ConstTensorView<T> input, TensorView<T> output, const ExecutionContext& ctx);

// Writes d_input (=); d_input may alias d_output.
template <typename T>
void ReluBackward(ConstTensorView<T> d_output, ConstTensorView<T> input, TensorView<T> d_input,
                  const ExecutionContext& ctx);

}  // namespace qkv::ops
