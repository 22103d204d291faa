#include "qkv/ops/gelu.h"

#include <cmath>
#include <type_traits>

#include "qkv/kernels/cpu/vector_kernels.h"
#include "qkv/ops/op_checks.h"
#include "qkv/runtime/parallel_for.h"

namespace qkv::ops {

namespace {

constexpr double kSqrtHalf = 0.70710678118654752440;       // 1 / sqrt(2)
constexpr double kSqrtTwoOverPi = 0.79788456080286535588;  // sqrt(2 / pi)
constexpr double kTanhCubic = 0.044715;
constexpr double kInvSqrtTwoPi = 0.39894228040143267794;  // 1 / sqrt(2 pi)

template <typename T>
T Gelu(T x, GeluApproximation approximation) {
  if (approximation == GeluApproximation::kNone) {
    return T(0.5) * x * (T(1) + std::erf(x * T(kSqrtHalf)));
  }
  // 0.5 x (1 + tanh(u)) == x * sigmoid(2u): one exp() instead of libm's much slower tanh(),
  // and no cancellation for negative u.
  const T inner = T(kSqrtTwoOverPi) * (x + T(kTanhCubic) * x * x * x);
  return x / (T(1) + std::exp(T(-2) * inner));
}

template <typename T>
T GeluDerivative(T x, GeluApproximation approximation) {
  if (approximation == GeluApproximation::kNone) {
    const T cdf = T(0.5) * (T(1) + std::erf(x * T(kSqrtHalf)));
    const T pdf = std::exp(T(-0.5) * x * x) * T(kInvSqrtTwoPi);
    return cdf + x * pdf;
  }
  // With s = sigmoid(2u) = (1 + tanh(u)) / 2:  d/dx [x s] = s + x * 2 s (1 - s) * du/dx.
  const T inner = T(kSqrtTwoOverPi) * (x + T(kTanhCubic) * x * x * x);
  const T s = T(1) / (T(1) + std::exp(T(-2) * inner));
  const T d_inner = T(kSqrtTwoOverPi) * (T(1) + T(3 * kTanhCubic) * x * x);
  return s + x * T(2) * s * (T(1) - s) * d_inner;
}

}  // namespace

template <typename T>
void GeluForward(ConstTensorView<T> input, GeluApproximation approximation, TensorView<T> output,
                 const ExecutionContext& ctx) {
  CheckPositive("gelu", "input size", input.size());
  CheckShape("gelu", "output", output, input.shape());
  ParallelFor(
      input.size(), ctx,
      [&](int64_t begin, int64_t end, int) {
        if constexpr (std::is_same_v<T, float>) {
          if (approximation == GeluApproximation::kTanh) {
            kernels::VectorKernelsFor(ctx.isa).gelu_tanh_forward(
                input.data() + begin, output.data() + begin, end - begin);
            return;
          }
        }
        for (int64_t i = begin; i < end; ++i) {
          output.data()[i] = Gelu(input.data()[i], approximation);
        }
      },
      4096);
}

template <typename T>
void GeluBackward(ConstTensorView<T> d_output, ConstTensorView<T> input,
                  GeluApproximation approximation, TensorView<T> d_input,
                  const ExecutionContext& ctx) {
  CheckPositive("gelu", "input size", input.size());
  CheckShape("gelu", "d_output", d_output, input.shape());
  CheckShape("gelu", "d_input", d_input, input.shape());
  ParallelFor(
      input.size(), ctx,
      [&](int64_t begin, int64_t end, int) {
        if constexpr (std::is_same_v<T, float>) {
          if (approximation == GeluApproximation::kTanh) {
            kernels::VectorKernelsFor(ctx.isa).gelu_tanh_backward(
                d_output.data() + begin, input.data() + begin, d_input.data() + begin, end - begin);
            return;
          }
        }
        for (int64_t i = begin; i < end; ++i) {
          d_input.data()[i] = d_output.data()[i] * GeluDerivative(input.data()[i], approximation);
        }
      },
      4096);
}

template void GeluForward<float>(ConstTensorView<float>, GeluApproximation, TensorView<float>,
                                 const ExecutionContext&);
template void GeluForward<double>(ConstTensorView<double>, GeluApproximation, TensorView<double>,
                                  const ExecutionContext&);
template void GeluBackward<float>(ConstTensorView<float>, ConstTensorView<float>, GeluApproximation,
                                  TensorView<float>, const ExecutionContext&);
template void GeluBackward<double>(ConstTensorView<double>, ConstTensorView<double>,
                                   GeluApproximation, TensorView<double>, const ExecutionContext&);

}  // namespace qkv::ops
