#include "qkv/ops/embedding.h"

#include <cstring>

#include "qkv/ops/op_checks.h"
#include "qkv/runtime/parallel_for.h"

namespace qkv::ops {

namespace {

void CheckTokens(ConstTensorView<int32_t> tokens, int64_t vocab) {
  CheckRank("embedding", "tokens", tokens, 1);
  CheckPositive("embedding", "number of tokens", tokens.size());
  for (int64_t r = 0; r < tokens.size(); ++r) {
    QKV_CHECK(tokens[r] >= 0 && tokens[r] < vocab, "embedding: token id ", tokens[r],
              " at position ", r, " is outside the vocabulary [0, ", vocab, ")");
  }
}

}  // namespace

template <typename T>
void EmbeddingForward(ConstTensorView<int32_t> tokens, ConstTensorView<T> table,
                      TensorView<T> output, const ExecutionContext& ctx) {
  CheckRank("embedding", "table", table, 2);
  CheckPositive("embedding", "vocabulary size", table.dim(0));
  CheckPositive("embedding", "embedding dim", table.dim(1));
  CheckTokens(tokens, table.dim(0));
  const int64_t rows = tokens.size(), dim = table.dim(1);
  CheckShape("embedding", "output", output, Shape{rows, dim});
  ParallelFor(
      rows, ctx,
      [&](int64_t begin, int64_t end, int) {
        for (int64_t r = begin; r < end; ++r) {
          std::memcpy(output.data() + r * dim, table.data() + tokens[r] * dim, dim * sizeof(T));
        }
      },
      16);
}

template <typename T>
void EmbeddingBackward(ConstTensorView<T> d_output, ConstTensorView<int32_t> tokens,
                       TensorView<T> d_table, const ExecutionContext& ctx) {
  CheckRank("embedding", "d_table", d_table, 2);
  CheckTokens(tokens, d_table.dim(0));
  const int64_t rows = tokens.size(), dim = d_table.dim(1);
  CheckShape("embedding", "d_output", d_output, Shape{rows, dim});
  // Threads own disjoint column ranges and walk the rows in order, so repeated tokens are
  // summed without races and in the same order for every thread count.
  ParallelFor(
      dim, ctx,
      [&](int64_t begin, int64_t end, int) {
        for (int64_t r = 0; r < rows; ++r) {
          const T* source = d_output.data() + r * dim;
          T* target = d_table.data() + tokens[r] * dim;
          for (int64_t c = begin; c < end; ++c) target[c] += source[c];
        }
      },
      16);
}

template void EmbeddingForward<float>(ConstTensorView<int32_t>, ConstTensorView<float>,
                                      TensorView<float>, const ExecutionContext&);
template void EmbeddingForward<double>(ConstTensorView<int32_t>, ConstTensorView<double>,
                                       TensorView<double>, const ExecutionContext&);
template void EmbeddingBackward<float>(ConstTensorView<float>, ConstTensorView<int32_t>,
                                       TensorView<float>, const ExecutionContext&);
template void EmbeddingBackward<double>(ConstTensorView<double>, ConstTensorView<int32_t>,
                                        TensorView<double>, const ExecutionContext&);

}  // namespace qkv::ops
