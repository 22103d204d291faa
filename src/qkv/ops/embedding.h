// Token embedding: x_i = E w_i, the row of the table E selected by token id w_i.
// Derivation: docs/derivations/linear_and_embedding.md.
#pragma once

#include <cstdint>

#include "qkv/core/tensor_view.h"
#include "qkv/runtime/execution_context.h"

namespace qkv::ops {

// tokens: (rows) ids in [0, vocab); table: (vocab, dim); output: (rows, dim), overwritten.
// An id outside [0, vocab) is an error naming the id and its position.
template <typename T>
void EmbeddingForward(ConstTensorView<int32_t> tokens, ConstTensorView<T> table,
                      TensorView<T> output, const ExecutionContext& ctx);

// Scatter-add: d_table[tokens[r]] += d_output[r] for every row r (+=, so a token that occurs
// several times collects every gradient, and a tied output head can add its own).
template <typename T>
void EmbeddingBackward(ConstTensorView<T> d_output, ConstTensorView<int32_t> tokens,
                       TensorView<T> d_table, const ExecutionContext& ctx);

}  // namespace qkv::ops
