// Float kernels over contiguous arrays, written once (vector_kernels.inc) over a small vector
// type and compiled three times: scalar, AVX2 and AVX-512 (simd/*.inc). The ops call them for
// float through ActiveVectorKernels(); double keeps the plain loops of each op, which are the
// oracles the float paths are tested against (kernels/vector_kernels_test.cc).
//
// exp() here is a polynomial (Cephes' expf: range reduction by ln 2, degree-5 polynomial,
// within 2 ulp of the exact value on [-87.3, 88]); below -87.3 (including -inf) it is 0, above
// 88 it saturates at exp(88). Sums are kept in vector lanes and reduced in a fixed order, so
// results are the same on every run for a given ISA.
#pragma once

#include <cstdint>

#include "qkv/kernels/cpu/isa.h"

namespace qkv::kernels {

// AdamW's per-step scalars, formed in double and rounded once by the caller
// (train/adamw.cc): g = grad * grad_scale; p = p * decay_factor (when decayed);
// m = beta1 m + (1 - beta1) g;
// v = beta2 v + (1 - beta2) g²; p -= step_size * m / (sqrt(v) / bias_correction2_sqrt + eps).
struct AdamWScalars {
  bool decayed;
  float decay_factor, beta1, beta2, one_minus_beta1, one_minus_beta2;
  float step_size, bias_correction2_sqrt, eps;
  float grad_scale = 1.0f;  // gradient clipping's factor, applied as the gradient is read
};

struct VectorKernels {
  Isa isa;
  // max_i x[i]; -inf for n == 0.
  float (*max)(const float* x, int64_t n);
  // y[i] = exp(x[i] - shift), returns sum_i y[i]. y may alias x.
  float (*exp_shifted)(const float* x, float* y, int64_t n, float shift);
  // sum_i exp(x[i] - shift), nothing stored.
  float (*sum_exp_shifted)(const float* x, int64_t n, float shift);
  // x[i] *= factor.
  void (*scale)(float* x, int64_t n, float factor);
  // GPT-2's tanh GELU, as x * sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x³); y may alias x.
  void (*gelu_tanh_forward)(const float* x, float* y, int64_t n);
  // d_x[i] = d_y[i] * GELU'(x[i]); d_x may alias d_y.
  void (*gelu_tanh_backward)(const float* d_y, const float* x, float* d_x, int64_t n);
  // One LayerNorm row of n: y = (x - mean) * rstd * gamma + beta (beta may be null); writes
  // the row's mean and rstd = 1 / sqrt(var + eps) (two passes: no E[x²] - E[x]² cancellation).
  void (*layer_norm_forward_row)(const float* x, const float* gamma, const float* beta, float eps,
                                 int64_t n, float* y, float* mean, float* rstd);
  // d_x = rstd * (g - mean(g) - x_hat * mean(g * x_hat)), g = d_y * gamma, for one row.
  void (*layer_norm_backward_row)(const float* d_y, const float* x, const float* gamma, float mean,
                                  float rstd, int64_t n, float* d_x);
  // sums[c] += sum over r in order of x[r * row_stride + c], for c in [0, cols): each column
  // summed in row order, the same result as the plain loop.
  void (*add_column_sums)(const float* x, int64_t rows, int64_t cols, int64_t row_stride,
                          float* sums);
  // sum_i x[i]², accumulated in float lanes over blocks of 512 and the block sums in double.
  double (*sum_squares)(const float* x, int64_t n);
  void (*adamw_update)(float* params, const float* grads, float* m, float* v, int64_t n,
                       const AdamWScalars& scalars);
  // sum_i x[i] * w[i], w in bfloat16 (core/bfloat16.h), accumulated in float.
  float (*dot_bf16)(const float* x, const uint16_t* w, int64_t n);
  // y[i] = x[i] rounded to bfloat16, to nearest, ties to even; NaN stays a quiet NaN. Where
  // the CPU has AVX512-BF16 the avx512 kernels use its instruction (vcvtneps2bf16), which
  // also flushes subnormal inputs to a zero of their sign, as oneDNN's conversions do.
  void (*to_bf16)(const float* x, uint16_t* y, int64_t n);
  // sum_i x[i] * w[i], both bfloat16, accumulated in float; AVX512-BF16's vdpbf16ps where the
  // CPU has it (pairs of products summed, then added), widened to float and FMA elsewhere.
  float (*dot_bf16_pairs)(const uint16_t* x, const uint16_t* w, int64_t n);
  // One query of one head against key_len keys, as decoding attends (ops/attention_one_query.h):
  // scores[j] = scale * q · k_j, or -inf where padding[j] != 0 (padding may be null);
  // p = softmax(scores), left in scores; out (head_dim) = sum_j p_j v_j, all zero when every key
  // is padded. Key j's row starts at k + j * row_stride (v likewise).
  void (*attend_one_query)(const float* q, const float* k, const float* v, int64_t row_stride,
                           int64_t key_len, int64_t head_dim, float scale, const uint8_t* padding,
                           float* scores, float* out);
};

// The kernels compiled for isa; the CPU must support it (CpuSupports).
const VectorKernels& VectorKernelsFor(Isa isa);

// The avx512 kernels with AVX-512 F arithmetic only, even where the CPU has AVX512-BF16: the
// test of the bfloat16 conversion compares both.
const VectorKernels& Avx512VectorKernelsWithoutBf16Instructions();

// The kernels of ActiveIsa().
const VectorKernels& ActiveVectorKernels();

}  // namespace qkv::kernels
