// SwiGLU gating: y = silu(gate) * up, silu(g) = g * sigmoid(g) (Shazeer 2020; Llama's FFN).
// gate and up are the two halves of the feed-forward up-projection.
// Derivatives: docs/derivations/activations.md.
#pragma once

#include "qkv/core/tensor_view.h"
#include "qkv/runtime/execution_context.h"

namespace qkv::ops {

// gate, up, output: (rows, hidden); output overwritten, must not alias gate or up.
template <typename T>
void SwiGluForward(ConstTensorView<T> gate, ConstTensorView<T> up, TensorView<T> output,
                   const ExecutionContext& ctx);

// Writes d_gate and d_up (=).
template <typename T>
void SwiGluBackward(ConstTensorView<T> d_output, ConstTensorView<T> gate, ConstTensorView<T> up,
                    TensorView<T> d_gate, TensorView<T> d_up, const ExecutionContext& ctx);

}  // namespace qkv::ops
