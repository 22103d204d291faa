#include "qkv/ops/rms_norm.h"

#include <cmath>

#include "qkv/ops/op_checks.h"
#include "qkv/runtime/parallel_for.h"

namespace qkv::ops {

namespace {

template <typename T>
void CheckRmsNormShapes(ConstTensorView<T> input, ConstTensorView<T> gamma,
                        ConstTensorView<T> saved_rrms) {
  CheckRank("rms_norm", "input", input, 2);
  CheckPositive("rms_norm", "rows", input.dim(0));
  CheckPositive("rms_norm", "cols", input.dim(1));
  CheckShape("rms_norm", "gamma", gamma, Shape{input.dim(1)});
  CheckShape("rms_norm", "saved_rrms", saved_rrms, Shape{input.dim(0)});
}

}  // namespace

template <typename T>
void RmsNormForward(ConstTensorView<T> input, ConstTensorView<T> gamma, T eps, TensorView<T> output,
                    TensorView<T> saved_rrms, const ExecutionContext& ctx) {
  CheckRmsNormShapes(input, gamma, ConstTensorView<T>(saved_rrms));
  CheckShape("rms_norm", "output", output, input.shape());
  QKV_CHECK(eps > 0, "rms_norm: eps must be > 0, got ", eps);
  const int64_t rows = input.dim(0), cols = input.dim(1);
  ParallelFor(
      rows, ctx,
      [&](int64_t begin, int64_t end, int) {
        for (int64_t r = begin; r < end; ++r) {
          const T* x = input.data() + r * cols;
          T* y = output.data() + r * cols;
          double squares = 0;  // double: see layer_norm.cc
          for (int64_t c = 0; c < cols; ++c) squares += static_cast<double>(x[c]) * x[c];
          const T rrms = static_cast<T>(1.0 / std::sqrt(squares / cols + static_cast<double>(eps)));
          for (int64_t c = 0; c < cols; ++c) y[c] = x[c] * rrms * gamma.data()[c];
          saved_rrms.data()[r] = rrms;
        }
      },
      4);
}

template <typename T>
void RmsNormBackward(ConstTensorView<T> d_output, ConstTensorView<T> input,
                     ConstTensorView<T> gamma, ConstTensorView<T> saved_rrms, TensorView<T> d_input,
                     TensorView<T> d_gamma, const ExecutionContext& ctx) {
  CheckRmsNormShapes(input, gamma, saved_rrms);
  CheckShape("rms_norm", "d_output", d_output, input.shape());
  CheckShape("rms_norm", "d_input", d_input, input.shape());
  CheckShape("rms_norm", "d_gamma", d_gamma, gamma.shape());
  const int64_t rows = input.dim(0), cols = input.dim(1);
  // d_x = rrms * (g - x_hat * mean(g * x_hat)), g = d_y * gamma, x_hat = x * rrms.
  ParallelFor(
      rows, ctx,
      [&](int64_t begin, int64_t end, int) {
        for (int64_t r = begin; r < end; ++r) {
          const T* x = input.data() + r * cols;
          const T* dy = d_output.data() + r * cols;
          T* dx = d_input.data() + r * cols;
          const T rrms = saved_rrms.data()[r];
          double sum_g_xhat = 0;
          for (int64_t c = 0; c < cols; ++c) sum_g_xhat += dy[c] * gamma.data()[c] * x[c] * rrms;
          const T mean_g_xhat = static_cast<T>(sum_g_xhat / cols);
          for (int64_t c = 0; c < cols; ++c) {
            dx[c] = rrms * (dy[c] * gamma.data()[c] - x[c] * rrms * mean_g_xhat);
          }
        }
      },
      4);
  // Over columns, rows in order: independent of the thread count (see layer_norm.cc).
  ParallelFor(
      cols, ctx,
      [&](int64_t begin, int64_t end, int) {
        for (int64_t r = 0; r < rows; ++r) {
          const T* x = input.data() + r * cols;
          const T* dy = d_output.data() + r * cols;
          const T rrms = saved_rrms.data()[r];
          for (int64_t c = begin; c < end; ++c) d_gamma.data()[c] += dy[c] * x[c] * rrms;
        }
      },
      16);
}

template void RmsNormForward<float>(ConstTensorView<float>, ConstTensorView<float>, float,
                                    TensorView<float>, TensorView<float>, const ExecutionContext&);
template void RmsNormForward<double>(ConstTensorView<double>, ConstTensorView<double>, double,
                                     TensorView<double>, TensorView<double>,
                                     const ExecutionContext&);
template void RmsNormBackward<float>(ConstTensorView<float>, ConstTensorView<float>,
                                     ConstTensorView<float>, ConstTensorView<float>,
                                     TensorView<float>, TensorView<float>, const ExecutionContext&);
template void RmsNormBackward<double>(ConstTensorView<double>, ConstTensorView<double>,
                                      ConstTensorView<double>, ConstTensorView<double>,
                                      TensorView<double>, TensorView<double>,
                                      const ExecutionContext&);

}  // namespace qkv::ops
