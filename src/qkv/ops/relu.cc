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
      [in = input.data(), out = output.data()](int64_t begin, int64_t end, int) {
        // Pointers in locals and a select, not a branch: the loop vectorises (signs are random,
        // so a branch mispredicts half the time).
        for (int64_t i = begin; i < end; ++i) out[i] = in[i] < T(0) ? T(0) : in[i];
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
      [in = input.data(), d_out = d_output.data(), d_in = d_input.data()](int64_t begin,
                                                                          int64_t end, int) {
        for (int64_t i = begin; i < end; ++i) d_in[i] = in[i] > T(0) ? d_out[i] : T(0);
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
