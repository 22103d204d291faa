// Elementwise sum of two tensors of the same size: the residual connection. Its backward is
// the identity into both inputs, which callers do by reusing (or adding) the gradient.
#pragma once

#include "qkv/core/tensor_view.h"
#include "qkv/runtime/execution_context.h"

namespace qkv::ops {

// out = a + b; a, b, out of equal element counts (shapes may differ: (B, T, C) and (B*T, C));
// out may alias a or b.
template <typename T>
void AddForward(ConstTensorView<T> a, ConstTensorView<T> b, TensorView<T> out,
                const ExecutionContext& ctx);

}  // namespace qkv::ops
