// GELU, exact (x * Phi(x), torch's default) or with the tanh approximation (GPT-2's gelu_new,
// torch's approximate="tanh"). Derivatives: docs/derivations/activations.md.
#pragma once

#include "qkv/core/tensor_view.h"
#include "qkv/runtime/execution_context.h"

namespace qkv::ops {

enum class GeluApproximation { kNone, kTanh };

// input, output: same shape, any rank; output overwritten. It may alias input only when no
// backward pass follows (backward reads input).
template <typename T>
void GeluForward(ConstTensorView<T> input, GeluApproximation approximation, TensorView<T> output,
                 const ExecutionContext& ctx);

// Writes d_input (=); d_input may alias d_output.
template <typename T>
void GeluBackward(ConstTensorView<T> d_output, ConstTensorView<T> input,
                  GeluApproximation approximation, TensorView<T> d_input,
                  const ExecutionContext& ctx);

}  // namespace qkv::ops
