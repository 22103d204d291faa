#include "qkv/ops/swiglu.h"

#include "qkv/ops/op_checks.h"
#include "qkv/ops/silu.h"
#include "qkv/runtime/parallel_for.h"

namespace qkv::ops {

namespace {

template <typename T>
void CheckSwiGluShapes(ConstTensorView<T> gate, ConstTensorView<T> up) {
  CheckRank("swiglu", "gate", gate, 2);
  CheckPositive("swiglu", "gate size", gate.size());
  CheckShape("swiglu", "up", up, gate.shape());
}

}  // namespace

template <typename T>
void SwiGluForward(ConstTensorView<T> gate, ConstTensorView<T> up, TensorView<T> output,
                   const ExecutionContext& ctx) {
  CheckSwiGluShapes(gate, up);
  CheckShape("swiglu", "output", output, gate.shape());
  ParallelFor(
      gate.size(), ctx,
      [&](int64_t begin, int64_t end, int) {
        for (int64_t i = begin; i < end; ++i) {
          const T g = gate.data()[i];
          output.data()[i] = g * Sigmoid(g) * up.data()[i];
        }
      },
      4096);
}

template <typename T>
void SwiGluBackward(ConstTensorView<T> d_output, ConstTensorView<T> gate, ConstTensorView<T> up,
                    TensorView<T> d_gate, TensorView<T> d_up, const ExecutionContext& ctx) {
  CheckSwiGluShapes(gate, up);
  CheckShape("swiglu", "d_output", d_output, gate.shape());
  CheckShape("swiglu", "d_gate", d_gate, gate.shape());
  CheckShape("swiglu", "d_up", d_up, gate.shape());
  ParallelFor(
      gate.size(), ctx,
      [&](int64_t begin, int64_t end, int) {
        for (int64_t i = begin; i < end; ++i) {
          const T g = gate.data()[i], s = Sigmoid(g), dy = d_output.data()[i];
          // silu'(g) = s * (1 + g * (1 - s))
          d_gate.data()[i] = dy * up.data()[i] * s * (T(1) + g * (T(1) - s));
          d_up.data()[i] = dy * g * s;
        }
      },
      4096);
}

template void SwiGluForward<float>(ConstTensorView<float>, ConstTensorView<float>,
                                   TensorView<float>, const ExecutionContext&);
template void SwiGluForward<double>(ConstTensorView<double>, ConstTensorView<double>,
                                    TensorView<double>, const ExecutionContext&);
template void SwiGluBackward<float>(ConstTensorView<float>, ConstTensorView<float>,
                                    ConstTensorView<float>, TensorView<float>, TensorView<float>,
                                    const ExecutionContext&);
template void SwiGluBackward<double>(ConstTensorView<double>, ConstTensorView<double>,
                                     ConstTensorView<double>, TensorView<double>,
                                     TensorView<double>, const ExecutionContext&);

}  // namespace qkv::ops
