// Linear layer: output = input · weightᵀ + bias, with weight stored (out_features, in_features)
// as in torch.nn.Linear (GPT-2's Conv1D [in, out] layout is converted when a checkpoint loads).
// Derivation: docs/derivations/linear_and_embedding.md.
#pragma once

#include "qkv/core/tensor_view.h"
#include "qkv/runtime/execution_context.h"

namespace qkv::ops {

// input: (rows, in_features); weight: (out_features, in_features); bias: (out_features) or an
// empty view for no bias; output: (rows, out_features), overwritten. output must not alias
// input.
template <typename T>
void LinearForward(ConstTensorView<T> input, ConstTensorView<T> weight, ConstTensorView<T> bias,
                   TensorView<T> output, const ExecutionContext& ctx);

// Writes d_input (=) unless it is empty. Accumulates d_weight and d_bias (+=) so gradients of
// micro-batches and of shared weights sum; d_bias may be empty when there is no bias.
template <typename T>
void LinearBackward(ConstTensorView<T> d_output, ConstTensorView<T> input,
                    ConstTensorView<T> weight, TensorView<T> d_input, TensorView<T> d_weight,
                    TensorView<T> d_bias, const ExecutionContext& ctx);

}  // namespace qkv::ops
