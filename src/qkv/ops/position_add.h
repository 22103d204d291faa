// Absolute position vectors added to the token embeddings: x[b, t] + table[start + t].
// The table is either fixed (sinusoidal.h) or a trained parameter (learned positions), and
// never read past its end: a sequence longer than the table is an error naming both lengths.
// Derivation: docs/derivations/linear_and_embedding.md.
#pragma once

#include <cstdint>

#include "qkv/core/tensor_view.h"
#include "qkv/runtime/execution_context.h"

namespace qkv::ops {

// input, output: (batch, seq, dim); table: (max_len, dim); start_position >= 0 with
// start_position + seq <= max_len. output overwritten, may alias input.
template <typename T>
void AddPositionsForward(ConstTensorView<T> input, ConstTensorView<T> table, int64_t start_position,
                         TensorView<T> output, const ExecutionContext& ctx);

// d_input (=) is d_output itself, so callers just pass it on; this accumulates the table
// gradient (+=): d_table[start + t] += sum over the batch of d_output[b, t]. Only a learned
// table has a gradient.
template <typename T>
void AddPositionsBackward(ConstTensorView<T> d_output, int64_t start_position,
                          TensorView<T> d_table, const ExecutionContext& ctx);

}  // namespace qkv::ops
