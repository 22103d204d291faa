#include "qkv/ops/softmax.h"

#include "qkv/kernels/cpu/softmax_row.h"
#include "qkv/ops/op_checks.h"
#include "qkv/runtime/parallel_for.h"

namespace qkv::ops {

template <typename T>
void SoftmaxForward(ConstTensorView<T> input, TensorView<T> output, const ExecutionContext& ctx) {
  CheckRank("softmax", "input", input, 2);
  CheckPositive("softmax", "rows", input.dim(0));
  CheckPositive("softmax", "cols", input.dim(1));
  CheckShape("softmax", "output", output, input.shape());
  const int64_t cols = input.dim(1);
  ParallelFor(
      input.dim(0), ctx,
      [&](int64_t begin, int64_t end, int) {
        for (int64_t r = begin; r < end; ++r) {
          kernels::SoftmaxRow(input.data() + r * cols, output.data() + r * cols, cols);
        }
      },
      4);
}

template <typename T>
void SoftmaxBackward(ConstTensorView<T> d_output, ConstTensorView<T> output, TensorView<T> d_input,
                     const ExecutionContext& ctx) {
  CheckRank("softmax", "output", output, 2);
  CheckPositive("softmax", "rows", output.dim(0));
  CheckPositive("softmax", "cols", output.dim(1));
  CheckShape("softmax", "d_output", d_output, output.shape());
  CheckShape("softmax", "d_input", d_input, output.shape());
  const int64_t cols = output.dim(1);
  ParallelFor(
      output.dim(0), ctx,
      [&](int64_t begin, int64_t end, int) {
        for (int64_t r = begin; r < end; ++r) {
          kernels::SoftmaxRowBackward(d_output.data() + r * cols, output.data() + r * cols,
                                      d_input.data() + r * cols, cols);
        }
      },
      4);
}

template void SoftmaxForward<float>(ConstTensorView<float>, TensorView<float>,
                                    const ExecutionContext&);
template void SoftmaxForward<double>(ConstTensorView<double>, TensorView<double>,
                                     const ExecutionContext&);
template void SoftmaxBackward<float>(ConstTensorView<float>, ConstTensorView<float>,
                                     TensorView<float>, const ExecutionContext&);
template void SoftmaxBackward<double>(ConstTensorView<double>, ConstTensorView<double>,
                                      TensorView<double>, const ExecutionContext&);

}  // namespace qkv::ops
