// Inverted dropout: during training each element is zeroed with probability p and the rest are
// scaled by 1/(1-p), so nothing changes at inference time. The mask comes from the caller's
// Random, so a seed reproduces it (and a resumed run continues the same stream).
#pragma once

#include <cstdint>

#include "qkv/core/random.h"
#include "qkv/core/tensor_view.h"
#include "qkv/runtime/execution_context.h"

namespace qkv::ops {

// input, output: same shape (output may alias input); keep_mask: same shape, written (1 kept,
// 0 dropped). 0 <= p < 1; p == 0 copies input and sets every mask entry to 1.
template <typename T>
void DropoutForward(ConstTensorView<T> input, float p, Random& random,
                    TensorView<uint8_t> keep_mask, TensorView<T> output,
                    const ExecutionContext& ctx);

// d_input (=) = d_output * keep_mask / (1 - p); d_input may alias d_output.
template <typename T>
void DropoutBackward(ConstTensorView<T> d_output, ConstTensorView<uint8_t> keep_mask, float p,
                     TensorView<T> d_input, const ExecutionContext& ctx);

}  // namespace qkv::ops
