// RMSNorm over the last dimension: y = x * rrms * gamma, rrms = 1 / sqrt(mean(x^2) + eps),
// as Llama's RMSNorm (no mean subtraction, no bias). Derivation: docs/derivations/layer_norm.md.
#pragma once

#include "qkv/core/tensor_view.h"
#include "qkv/runtime/execution_context.h"

namespace qkv::ops {

// input: (rows, cols); gamma: (cols); output: (rows, cols), overwritten (it may alias input only
// when no backward pass follows: backward reads input);
// saved_rrms: (rows), written for RmsNormBackward. eps > 0.
template <typename T>
void RmsNormForward(ConstTensorView<T> input, ConstTensorView<T> gamma, T eps, TensorView<T> output,
                    TensorView<T> saved_rrms, const ExecutionContext& ctx);

// Writes d_input (=); accumulates d_gamma (+=).
template <typename T>
void RmsNormBackward(ConstTensorView<T> d_output, ConstTensorView<T> input,
                     ConstTensorView<T> gamma, ConstTensorView<T> saved_rrms, TensorView<T> d_input,
                     TensorView<T> d_gamma, const ExecutionContext& ctx);

}  // namespace qkv::ops
