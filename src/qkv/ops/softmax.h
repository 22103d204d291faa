// Softmax over the last dimension (see kernels/cpu/softmax_row.h for -inf handling).
// Derivation of the backward pass: docs/derivations/softmax_cross_entropy.md.
#pragma once

#include "qkv/core/tensor_view.h"
#include "qkv/runtime/execution_context.h"

namespace qkv::ops {

// input, output: (rows, cols); output overwritten, may alias input.
template <typename T>
void SoftmaxForward(ConstTensorView<T> input, TensorView<T> output, const ExecutionContext& ctx);

// Needs only the forward output. Writes d_input (=); d_input may alias d_output.
template <typename T>
void SoftmaxBackward(ConstTensorView<T> d_output, ConstTensorView<T> output, TensorView<T> d_input,
                     const ExecutionContext& ctx);

}  // namespace qkv::ops
