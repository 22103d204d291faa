#include "qkv/ops/relu.h"

#include "qkv/ops/op_checks.h"
#include "qkv/runtime/parallel_for.h"

namespace qkv::ops {

template <typename T>
void ReluForward(ConstTensorView<T> input, TensorView<T> output, const ExecutionContext& ctx) {
  CheckPositive("relu", "input size", input.size());
  CheckShape("relu", "output", output, input.shape());
  ParallelFor(
      input.size(), ctx,
      [&](int64_t begin, int64_t end, int) {
        for (int64_t i = begin; i < end; ++i) {
          output.data()[i] = input.data()[i] < T(0) ? T(0) : input.data()[i];
        }
      },
      16384);
}

template <typename T>
void ReluBackward(ConstTensorView<T> d_output, ConstTensorView<T> input, TensorView<T> d_input,
                  const ExecutionContext& ctx) {
  CheckPositive("relu", "input size", input.size());
  CheckShape("relu", "d_output", d_output, input.shape());
  CheckShape("relu", "d_input", d_input, input.shape());
  ParallelFor(
      input.size(), ctx,
      [&](int64_t begin, int64_t end, int) {
        for (int64_t i = begin; i < end; ++i) {
          d_input.data()[i] = input.data()[i] > T(0) ? d_output.data()[i] : T(0);
        }
      },
      16384);
}

template void ReluForward<float>(ConstTensorView<float>, TensorView<float>,
                                 const ExecutionContext&);
template void ReluForward<double>(ConstTensorView<double>, TensorView<double>,
                                  const ExecutionContext&);
template void ReluBackward<float>(ConstTensorView<float>, ConstTensorView<float>, TensorView<float>,
                                  const ExecutionContext&);
template void ReluBackward<double>(ConstTensorView<double>, ConstTensorView<double>,
                                   TensorView<double>, const ExecutionContext&);

}  // namespace qkv::ops
