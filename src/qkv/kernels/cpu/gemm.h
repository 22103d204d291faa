// The one matrix-multiply entry point of qkv. Every matrix product in the engine goes through
// Matmul(), which takes the element types of its operands and result and the execution
// context (threads, device, precision), and dispatches to a kernel: float32 x float32 ->
// float32 on oneDNN's sgemm (chosen by measurement, docs/gemm.md); bfloat16 x bfloat16 ->
// float32 on oneDNN's matmul primitive (kernels/cpu/matmul_bf16.h), which is also where float32
// operands go when ctx.precision is kBfloat16 (rounded to nearest even here, or read from
// ctx.bf16_weights' copy of a weight matrix); float64 (the gradient checks) on the scalar
// reference (kernels/reference/gemm_reference.h). Another device adds a case here, not a change
// to the ops.
//
// Threading: called outside a parallel region, the product uses ctx's thread count (set on
// the calling thread for oneDNN, which reads OpenMP's team size); called from inside a
// ParallelFor body it runs on the calling thread alone (nesting is disabled).
#pragma once

#include <cstdint>

#include "qkv/core/data_type.h"
#include "qkv/kernels/gemm_types.h"
#include "qkv/runtime/execution_context.h"

namespace qkv::kernels {

// A row-major matrix operand: op(A) is (rows, cols) of the product; A is stored (rows, cols)
// with row stride ld, or (cols, rows) when transpose is kTranspose.
struct MatrixOperand {
  const void* data = nullptr;
  DataType type = DataType::kFloat32;
  int64_t ld = 0;
  Transpose transpose = Transpose::kNo;
};

struct MatrixResult {
  void* data = nullptr;
  DataType type = DataType::kFloat32;
  int64_t ld = 0;
};

// C(m, n) = alpha * op(A)(m, k) * op(B)(k, n) + beta * C. beta == 0 overwrites C (NaNs in C are
// not propagated). C must not alias A or B. Throws qkv::Error for a combination of types or a
// device that has no kernel.
void Matmul(int64_t m, int64_t n, int64_t k, double alpha, const MatrixOperand& a,
            const MatrixOperand& b, double beta, const MatrixResult& c,
            const ExecutionContext& ctx);

// The same for one element type throughout (float or double), in BLAS argument order.
template <typename T>
void Gemm(Transpose trans_a, Transpose trans_b, int64_t m, int64_t n, int64_t k, T alpha,
          const T* a, int64_t lda, const T* b, int64_t ldb, T beta, T* c, int64_t ldc,
          const ExecutionContext& ctx) {
  constexpr DataType kType = DataTypeOf<T>();
  Matmul(m, n, k, alpha, {a, kType, lda, trans_a}, {b, kType, ldb, trans_b}, beta, {c, kType, ldc},
         ctx);
}

}  // namespace qkv::kernels
