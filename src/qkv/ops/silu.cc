#include "qkv/ops/silu.h"

#include "qkv/ops/op_checks.h"
#include "qkv/runtime/parallel_for.h"

namespace qkv::ops {

template <typename T>
void SiluForward(ConstTensorView<T> input, TensorView<T> output, const ExecutionContext& ctx) {
  CheckPositive("silu", "input size", input.size());
  CheckShape("silu", "output", output, input.shape());
  ParallelFor(
      input.size(), ctx,
      [&](int64_t begin, int64_t end, int) {
        for (int64_t i = begin; i < end; ++i) {
          const T x = input.data()[i];
          output.data()[i] = x * Sigmoid(x);
        }
      },
      4096);
}

template <typename T>
void SiluBackward(ConstTensorView<T> d_output, ConstTensorView<T> input, TensorView<T> d_input,
                  const ExecutionContext& ctx) {
  CheckPositive("silu", "input size", input.size());
  CheckShape("silu", "d_output", d_output, input.shape());
  CheckShape("silu", "d_input", d_input, input.shape());
  ParallelFor(
      input.size(), ctx,
      [&](int64_t begin, int64_t end, int) {
        for (int64_t i = begin; i < end; ++i) {
          const T x = input.data()[i], s = Sigmoid(x);
          // silu'(x) = s * (1 + x * (1 - s))
          d_input.data()[i] = d_output.data()[i] * s * (T(1) + x * (T(1) - s));
        }
      },
      4096);
}

template void SiluForward<float>(ConstTensorView<float>, TensorView<float>,
                                 const ExecutionContext&);
template void SiluForward<double>(ConstTensorView<double>, TensorView<double>,
                                  const ExecutionContext&);
template void SiluBackward<float>(ConstTensorView<float>, ConstTensorView<float>, TensorView<float>,
                                  const ExecutionContext&);
template void SiluBackward<double>(ConstTensorView<double>, ConstTensorView<double>,
                                   TensorView<double>, const ExecutionContext&);

}  // namespace qkv::ops
