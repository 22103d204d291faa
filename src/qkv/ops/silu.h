// SiLU (swish): y = x * sigmoid(x) (Hendrycks & Gimpel 2016; Ramachandran et al. 2017), the
// activation of OPUS-MT's Marian models ("swish") and, gated, of SwiGLU (ops/swiglu.h).
// Derivative: docs/derivations/activations.md.
#pragma once

#include <cmath>

#include "qkv/core/tensor_view.h"
#include "qkv/runtime/execution_context.h"

namespace qkv::ops {

template <typename T>
T Sigmoid(T x) {
  return T(1) / (T(1) + std::exp(-x));
}

// input, output: same shape; output overwritten. It may alias input only when no backward
// pass follows (backward reads input).
template <typename T>
void SiluForward(ConstTensorView<T> input, TensorView<T> output, const ExecutionContext& ctx);

// Writes d_input (=); d_input may alias d_output.
template <typename T>
void SiluBackward(ConstTensorView<T> d_output, ConstTensorView<T> input, TensorView<T> d_input,
                  const ExecutionContext& ctx);

}  // namespace qkv::ops
