#include "qkv/ops/linear.h"

#include <type_traits>
#include <vector>

#include "qkv/kernels/bf16_weight_copies.h"
#include "qkv/kernels/cpu/gemm.h"
#include "qkv/kernels/cpu/vector_kernels.h"
#include "qkv/ops/op_checks.h"
#include "qkv/runtime/parallel_for.h"

namespace qkv::ops {

using kernels::Gemm;
using kernels::Transpose;

namespace {

template <typename T>
void CheckLinearShapes(ConstTensorView<T> input, ConstTensorView<T> weight,
                       ConstTensorView<T> bias) {
  CheckRank("linear", "input", input, 2);
  CheckRank("linear", "weight", weight, 2);
  CheckPositive("linear", "rows", input.dim(0));
  CheckPositive("linear", "in_features", weight.dim(1));
  CheckPositive("linear", "out_features", weight.dim(0));
  QKV_CHECK(input.dim(1) == weight.dim(1), "linear: input has ", input.dim(1),
            " features but weight ", weight.shape().ToString(), " expects ", weight.dim(1));
  if (!bias.empty()) CheckShape("linear", "bias", bias, Shape{weight.dim(0)});
}

// Up to this many rows read bfloat16 weight copies (ExecutionContext::bf16_weights): a
// decoding step has one, a small batch a few. More rows reuse each weight enough for the
// float32 GEMM to be bound by arithmetic, not by reading the weights.
constexpr int64_t kBf16WeightRowsMax = 4;

// output (rows, out) (+)= input (rows, in) · weightᵀ, weight (out, in) in bfloat16; beta 1
// keeps the bias already in output. In bf16 precision the input rows are rounded to bfloat16
// too and the dots multiply bfloat16 pairs (AVX512-BF16's vdpbf16ps); otherwise float32
// inputs meet widened weights. Split over output features: each dot is one thread's, in a
// fixed order, so the result does not depend on the thread count.
void LinearForwardBf16Weights(ConstTensorView<float> input, const uint16_t* weight,
                              int64_t out_features, float beta, TensorView<float> output,
                              const ExecutionContext& ctx) {
  const int64_t rows = input.dim(0), in_features = input.dim(1);
  const kernels::VectorKernels& vector = kernels::VectorKernelsFor(ctx.isa);
  const bool round_inputs = ctx.precision == Precision::kBfloat16;
  thread_local std::vector<uint16_t> rounded;  // (rows, in_features), bf16 precision only
  if (round_inputs) {
    rounded.resize(static_cast<size_t>(rows * in_features));
    vector.to_bf16(input.data(), rounded.data(), rows * in_features);
  }
  const uint16_t* rounded_rows = rounded.data();
  const auto dot = [&](int64_t r, const uint16_t* weight_row) {
    return round_inputs
               ? vector.dot_bf16_pairs(rounded_rows + r * in_features, weight_row, in_features)
               : vector.dot_bf16(input.data() + r * in_features, weight_row, in_features);
  };
  ParallelFor(
      out_features, ctx,
      [&](int64_t begin, int64_t end, int) {
        for (int64_t o = begin; o < end; ++o) {
          const uint16_t* weight_row = weight + o * in_features;
          for (int64_t r = 0; r < rows; ++r) {
            float& out = output.data()[r * out_features + o];
            const float product = dot(r, weight_row);
            out = beta != 0 ? out + product : product;
          }
        }
      },
      64);
}

}  // namespace

template <typename T>
void LinearForward(ConstTensorView<T> input, ConstTensorView<T> weight, ConstTensorView<T> bias,
                   TensorView<T> output, const ExecutionContext& ctx) {
  CheckLinearShapes(input, weight, bias);
  const int64_t rows = input.dim(0), in_features = input.dim(1), out_features = weight.dim(0);
  CheckShape("linear", "output", output, Shape{rows, out_features});

  T beta = 0;
  if (!bias.empty()) {
    // Seed every output row with the bias so the GEMM adds onto it (beta = 1).
    ParallelFor(
        rows, ctx,
        [&](int64_t begin, int64_t end, int) {
          for (int64_t r = begin; r < end; ++r) {
            T* row = output.data() + r * out_features;
            for (int64_t o = 0; o < out_features; ++o) row[o] = bias.data()[o];
          }
        },
        64);
    beta = 1;
  }
  if constexpr (std::is_same_v<T, float>) {
    const uint16_t* weight_bf16 =
        ctx.bf16_weights != nullptr && rows <= kBf16WeightRowsMax
            ? ctx.bf16_weights->Find(weight.data(), in_features, weight.size())
            : nullptr;
    if (weight_bf16 != nullptr) {
      LinearForwardBf16Weights(input, weight_bf16, out_features, beta, output, ctx);
      return;
    }
  }
  Gemm<T>(Transpose::kNo, Transpose::kTranspose, rows, out_features, in_features, T(1),
          input.data(), in_features, weight.data(), in_features, beta, output.data(), out_features,
          ctx);
}

template <typename T>
void LinearBackward(ConstTensorView<T> d_output, ConstTensorView<T> input,
                    ConstTensorView<T> weight, TensorView<T> d_input, TensorView<T> d_weight,
                    TensorView<T> d_bias, const ExecutionContext& ctx) {
  CheckLinearShapes(input, weight, ConstTensorView<T>());
  const int64_t rows = input.dim(0), in_features = input.dim(1), out_features = weight.dim(0);
  CheckShape("linear", "d_output", d_output, Shape{rows, out_features});
  CheckShape("linear", "d_weight", d_weight, weight.shape());
  if (!d_input.empty()) CheckShape("linear", "d_input", d_input, input.shape());
  if (!d_bias.empty()) CheckShape("linear", "d_bias", d_bias, Shape{out_features});

  if (!d_input.empty()) {
    // d_input (rows, in) = d_output (rows, out) · weight (out, in)
    Gemm<T>(Transpose::kNo, Transpose::kNo, rows, in_features, out_features, T(1), d_output.data(),
            out_features, weight.data(), in_features, T(0), d_input.data(), in_features, ctx);
  }
  // d_weight (out, in) += d_outputᵀ (out, rows) · input (rows, in)
  Gemm<T>(Transpose::kTranspose, Transpose::kNo, out_features, in_features, rows, T(1),
          d_output.data(), out_features, input.data(), in_features, T(1), d_weight.data(),
          in_features, ctx);
  if (!d_bias.empty()) {
    // Split over output features so each thread sums whole columns in row order: the result
    // does not depend on the thread count.
    ParallelFor(
        out_features, ctx,
        [&](int64_t begin, int64_t end, int) {
          if constexpr (std::is_same_v<T, float>) {
            kernels::VectorKernelsFor(ctx.isa).add_column_sums(
                d_output.data() + begin, rows, end - begin, out_features, d_bias.data() + begin);
            return;
          }
          for (int64_t o = begin; o < end; ++o) {
            T sum = 0;
            for (int64_t r = 0; r < rows; ++r) sum += d_output.data()[r * out_features + o];
            d_bias.data()[o] += sum;
          }
        },
        64);
  }
}

template void LinearForward<float>(ConstTensorView<float>, ConstTensorView<float>,
                                   ConstTensorView<float>, TensorView<float>,
                                   const ExecutionContext&);
template void LinearForward<double>(ConstTensorView<double>, ConstTensorView<double>,
                                    ConstTensorView<double>, TensorView<double>,
                                    const ExecutionContext&);
template void LinearBackward<float>(ConstTensorView<float>, ConstTensorView<float>,
                                    ConstTensorView<float>, TensorView<float>, TensorView<float>,
                                    TensorView<float>, const ExecutionContext&);
template void LinearBackward<double>(ConstTensorView<double>, ConstTensorView<double>,
                                     ConstTensorView<double>, TensorView<double>,
                                     TensorView<double>, TensorView<double>,
                                     const ExecutionContext&);

}  // namespace qkv::ops
