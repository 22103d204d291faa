// LayerNorm over the last dimension: y = (x - mean) * rstd * gamma + beta, with
// rstd = 1 / sqrt(var + eps) and the biased variance, as torch.nn.LayerNorm.
// Derivation of the backward pass: docs/derivations/layer_norm.md.
#pragma once

#include "qkv/core/tensor_view.h"
#include "qkv/runtime/execution_context.h"

namespace qkv::ops {

// Saved by LayerNormForward for LayerNormBackward. mean, rstd: (rows).
template <typename T>
struct LayerNormSaved {
  TensorView<T> mean;
  TensorView<T> rstd;
};

// input: (rows, cols); gamma, beta: (cols) (beta may be empty: no bias); output: (rows, cols),
// overwritten; it may alias input only when no backward pass follows (backward reads input).
// eps > 0.
template <typename T>
void LayerNormForward(ConstTensorView<T> input, ConstTensorView<T> gamma, ConstTensorView<T> beta,
                      T eps, TensorView<T> output, LayerNormSaved<T> saved,
                      const ExecutionContext& ctx);

// Writes d_input (=). Accumulates d_gamma, d_beta (+=); d_beta may be empty.
template <typename T>
void LayerNormBackward(ConstTensorView<T> d_output, ConstTensorView<T> input,
                       ConstTensorView<T> gamma, LayerNormSaved<T> saved, TensorView<T> d_input,
                       TensorView<T> d_gamma, TensorView<T> d_beta, const ExecutionContext& ctx);

}  // namespace qkv::ops
