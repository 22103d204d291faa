// ReLU: y = max(x, 0). The gradient at exactly 0 is taken as 0, as PyTorch does.
// Derivative: docs/derivations/activations.md.
#pragma once

#include "qkv/core/tensor_view.h"
#include "qkv/runtime/execution_context.h"

namespace qkv::ops {

// input, output: same shape; output overwritten. It may alias input only when no backward
// pass follows (backward reads input). NaN passes through, as in PyTorch.
template <typename T>
void ReluForward(ConstTensorView<T> input, TensorView<T> output, const ExecutionContext& ctx);

// Writes d_input (=); d_input may alias d_output.
template <typename T>
void ReluBackward(ConstTensorView<T> d_output, ConstTensorView<T> input, TensorView<T> d_input,
                  const ExecutionContext& ctx);

}  // namespace qkv::ops
