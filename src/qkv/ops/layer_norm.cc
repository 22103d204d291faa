#include "qkv/ops/layer_norm.h"

#include <cmath>
#include <type_traits>

#include "qkv/kernels/cpu/vector_kernels.h"
#include "qkv/ops/op_checks.h"
#include "qkv/runtime/parallel_for.h"

namespace qkv::ops {

namespace {

template <typename T>
void CheckLayerNormShapes(ConstTensorView<T> input, ConstTensorView<T> gamma,
                          LayerNormSaved<T> saved) {
  CheckRank("layer_norm", "input", input, 2);
  CheckPositive("layer_norm", "rows", input.dim(0));
  CheckPositive("layer_norm", "cols", input.dim(1));
  CheckShape("layer_norm", "gamma", gamma, Shape{input.dim(1)});
  CheckShape("layer_norm", "saved.mean", saved.mean, Shape{input.dim(0)});
  CheckShape("layer_norm", "saved.rstd", saved.rstd, Shape{input.dim(0)});
}

}  // namespace

template <typename T>
void LayerNormForward(ConstTensorView<T> input, ConstTensorView<T> gamma, ConstTensorView<T> beta,
                      T eps, TensorView<T> output, LayerNormSaved<T> saved,
                      const ExecutionContext& ctx) {
  CheckLayerNormShapes(input, gamma, saved);
  if (!beta.empty()) CheckShape("layer_norm", "beta", beta, gamma.shape());
  CheckShape("layer_norm", "output", output, input.shape());
  QKV_CHECK(eps > 0, "layer_norm: eps must be > 0, got ", eps);
  const int64_t rows = input.dim(0), cols = input.dim(1);
  ParallelFor(
      rows, ctx,
      [&](int64_t begin, int64_t end, int) {
        for (int64_t r = begin; r < end; ++r) {
          const T* x = input.data() + r * cols;
          T* y = output.data() + r * cols;
          if constexpr (std::is_same_v<T, float>) {
            kernels::VectorKernelsFor(ctx.isa).layer_norm_forward_row(
                x, gamma.data(), beta.empty() ? nullptr : beta.data(), eps, cols, y,
                saved.mean.data() + r, saved.rstd.data() + r);
            continue;
          }
          // Row statistics in double: two passes (mean, then squared deviations) avoid the
          // cancellation of E[x^2] - E[x]^2, and double keeps wide rows exact enough.
          double sum = 0;
          for (int64_t c = 0; c < cols; ++c) sum += x[c];
          const double mean = sum / cols;
          double squares = 0;
          for (int64_t c = 0; c < cols; ++c) squares += (x[c] - mean) * (x[c] - mean);
          const double rstd = 1.0 / std::sqrt(squares / cols + static_cast<double>(eps));
          const T mean_t = static_cast<T>(mean), rstd_t = static_cast<T>(rstd);
          for (int64_t c = 0; c < cols; ++c) {
            const T normalized = (x[c] - mean_t) * rstd_t;
            y[c] = normalized * gamma.data()[c] + (beta.empty() ? T(0) : beta.data()[c]);
          }
          saved.mean.data()[r] = mean_t;
          saved.rstd.data()[r] = rstd_t;
        }
      },
      4);
}

template <typename T>
void LayerNormBackward(ConstTensorView<T> d_output, ConstTensorView<T> input,
                       ConstTensorView<T> gamma, LayerNormSaved<T> saved, TensorView<T> d_input,
                       TensorView<T> d_gamma, TensorView<T> d_beta, const ExecutionContext& ctx) {
  CheckLayerNormShapes(input, gamma, saved);
  CheckShape("layer_norm", "d_output", d_output, input.shape());
  CheckShape("layer_norm", "d_input", d_input, input.shape());
  CheckShape("layer_norm", "d_gamma", d_gamma, gamma.shape());
  if (!d_beta.empty()) CheckShape("layer_norm", "d_beta", d_beta, gamma.shape());
  const int64_t rows = input.dim(0), cols = input.dim(1);

  // Pass 1, over rows: d_x = rstd * (g - mean(g) - x_hat * mean(g * x_hat)), g = d_y * gamma.
  ParallelFor(
      rows, ctx,
      [&](int64_t begin, int64_t end, int) {
        for (int64_t r = begin; r < end; ++r) {
          const T* x = input.data() + r * cols;
          const T* dy = d_output.data() + r * cols;
          T* dx = d_input.data() + r * cols;
          const T mean = saved.mean.data()[r], rstd = saved.rstd.data()[r];
          if constexpr (std::is_same_v<T, float>) {
            kernels::VectorKernelsFor(ctx.isa).layer_norm_backward_row(dy, x, gamma.data(), mean,
                                                                       rstd, cols, dx);
            continue;
          }
          double sum_g = 0, sum_g_xhat = 0;
          for (int64_t c = 0; c < cols; ++c) {
            const T g = dy[c] * gamma.data()[c];
            sum_g += g;
            sum_g_xhat += g * ((x[c] - mean) * rstd);
          }
          const T mean_g = static_cast<T>(sum_g / cols);
          const T mean_g_xhat = static_cast<T>(sum_g_xhat / cols);
          for (int64_t c = 0; c < cols; ++c) {
            const T x_hat = (x[c] - mean) * rstd;
            dx[c] = rstd * (dy[c] * gamma.data()[c] - mean_g - x_hat * mean_g_xhat);
          }
        }
      },
      4);

  // Pass 2, over columns: each thread sums its columns over all rows in row order, so the
  // parameter gradients do not depend on the thread count.
  ParallelFor(
      cols, ctx,
      [&](int64_t begin, int64_t end, int) {
        for (int64_t r = 0; r < rows; ++r) {
          const T* x = input.data() + r * cols;
          const T* dy = d_output.data() + r * cols;
          const T mean = saved.mean.data()[r], rstd = saved.rstd.data()[r];
          for (int64_t c = begin; c < end; ++c) {
            d_gamma.data()[c] += dy[c] * ((x[c] - mean) * rstd);
            if (!d_beta.empty()) d_beta.data()[c] += dy[c];
          }
        }
      },
      16);
}

template void LayerNormForward<float>(ConstTensorView<float>, ConstTensorView<float>,
                                      ConstTensorView<float>, float, TensorView<float>,
                                      LayerNormSaved<float>, const ExecutionContext&);
template void LayerNormForward<double>(ConstTensorView<double>, ConstTensorView<double>,
                                       ConstTensorView<double>, double, TensorView<double>,
                                       LayerNormSaved<double>, const ExecutionContext&);
template void LayerNormBackward<float>(ConstTensorView<float>, ConstTensorView<float>,
                                       ConstTensorView<float>, LayerNormSaved<float>,
                                       TensorView<float>, TensorView<float>, TensorView<float>,
                                       const ExecutionContext&);
template void LayerNormBackward<double>(ConstTensorView<double>, ConstTensorView<double>,
                                        ConstTensorView<double>, LayerNormSaved<double>,
                                        TensorView<double>, TensorView<double>, TensorView<double>,
                                        const ExecutionContext&);

}  // namespace qkv::ops
