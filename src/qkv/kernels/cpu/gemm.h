// The one GEMM entry point of qkv. Every matrix product in the engine goes through Gemm(), so
// the library behind it can be replaced in one file. float runs on oneDNN (chosen by
// measurement, see docs/gemm.md); double, which only the gradient checks use, runs on the
// scalar reference.
//
// Threading: called outside a parallel region, the float path uses the whole ThreadPool team;
// called from inside a ParallelFor body it runs on the calling thread alone.
#pragma once

#include <cstdint>

#include "qkv/kernels/gemm_types.h"

namespace qkv::kernels {

// Row-major C(m, n) = alpha * op(A) * op(B) + beta * C; op(A) is (m, k), op(B) is (k, n).
// A is stored (m, k) with row stride lda, or (k, m) when trans_a is kTranspose; likewise B.
// beta == 0 overwrites C (NaNs in C are not propagated). C must not alias A or B.
template <typename T>
void Gemm(Transpose trans_a, Transpose trans_b, int64_t m, int64_t n, int64_t k, T alpha,
          const T* a, int64_t lda, const T* b, int64_t ldb, T beta, T* c, int64_t ldc);

}  // namespace qkv::kernels
