#include "qkv/ops/position_add.h"

#include "qkv/ops/op_checks.h"
#include "qkv/runtime/parallel_for.h"

namespace qkv::ops {

namespace {

template <typename T, typename U>
void CheckPositionShapes(const TensorView<T>& sequence, const TensorView<U>& table,
                         int64_t start_position) {
  CheckRank("positions", "input", sequence, 3);
  CheckRank("positions", "table", table, 2);
  CheckPositive("positions", "batch", sequence.dim(0));
  CheckPositive("positions", "sequence length", sequence.dim(1));
  CheckPositive("positions", "dim", sequence.dim(2));
  QKV_CHECK(table.dim(1) == sequence.dim(2), "positions: the table has width ", table.dim(1),
            " but the input has width ", sequence.dim(2));
  QKV_CHECK(start_position >= 0, "positions: start position must be >= 0, got ", start_position);
  QKV_CHECK(start_position + sequence.dim(1) <= table.dim(0), "positions: positions ",
            start_position, "..", start_position + sequence.dim(1) - 1,
            " go past the position table, which holds ", table.dim(0),
            " positions (the model's maximum length)");
}

}  // namespace

template <typename T>
void AddPositionsForward(ConstTensorView<T> input, ConstTensorView<T> table, int64_t start_position,
                         TensorView<T> output, const ExecutionContext& ctx) {
  CheckPositionShapes(input, table, start_position);
  CheckShape("positions", "output", output, input.shape());
  const int64_t seq = input.dim(1), dim = input.dim(2);
  ParallelFor(
      input.dim(0) * seq, ctx,
      [&](int64_t begin, int64_t end, int) {
        for (int64_t row = begin; row < end; ++row) {
          const T* position = table.data() + (start_position + row % seq) * dim;
          const T* x = input.data() + row * dim;
          T* y = output.data() + row * dim;
          for (int64_t c = 0; c < dim; ++c) y[c] = x[c] + position[c];
        }
      },
      16);
}

template <typename T>
void AddPositionsBackward(ConstTensorView<T> d_output, int64_t start_position,
                          TensorView<T> d_table, const ExecutionContext& ctx) {
  CheckPositionShapes(d_output, d_table, start_position);
  const int64_t batch = d_output.dim(0), seq = d_output.dim(1), dim = d_output.dim(2);
  // Each thread owns whole positions and sums the batch in order: deterministic.
  ParallelFor(
      seq, ctx,
      [&](int64_t begin, int64_t end, int) {
        for (int64_t t = begin; t < end; ++t) {
          T* d_position = d_table.data() + (start_position + t) * dim;
          for (int64_t b = 0; b < batch; ++b) {
            const T* dy = d_output.data() + (b * seq + t) * dim;
            for (int64_t c = 0; c < dim; ++c) d_position[c] += dy[c];
          }
        }
      },
      4);
}

template void AddPositionsForward<float>(ConstTensorView<float>, ConstTensorView<float>, int64_t,
                                         TensorView<float>, const ExecutionContext&);
template void AddPositionsForward<double>(ConstTensorView<double>, ConstTensorView<double>, int64_t,
                                          TensorView<double>, const ExecutionContext&);
template void AddPositionsBackward<float>(ConstTensorView<float>, int64_t, TensorView<float>,
                                          const ExecutionContext&);
template void AddPositionsBackward<double>(ConstTensorView<double>, int64_t, TensorView<double>,
                                           const ExecutionContext&);

}  // namespace qkv::ops
