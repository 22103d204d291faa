// Scalar GEMM: the oracle for kernels/cpu/gemm and the GEMM used by double-precision builds of
// the ops (which exist for gradient checking). Deliberately the plain triple loop.
#pragma once

#include <cstdint>

#include "qkv/kernels/gemm_types.h"

namespace qkv::kernels::reference {

// Row-major C(m, n) = alpha * op(A) * op(B) + beta * C, where op(A) is (m, k) and op(B) is
// (k, n). A is stored (m, k) with row stride lda, or (k, m) when trans_a is kTranspose.
// beta == 0 overwrites C without reading it.
template <typename T>
void Gemm(Transpose trans_a, Transpose trans_b, int64_t m, int64_t n, int64_t k, T alpha,
          const T* a, int64_t lda, const T* b, int64_t ldb, T beta, T* c, int64_t ldc) {
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      T sum = 0;
      for (int64_t p = 0; p < k; ++p) {
        const T a_ip = trans_a == Transpose::kNo ? a[i * lda + p] : a[p * lda + i];
        const T b_pj = trans_b == Transpose::kNo ? b[p * ldb + j] : b[j * ldb + p];
        sum += a_ip * b_pj;
      }
      c[i * ldc + j] = beta == T(0) ? alpha * sum : alpha * sum + beta * c[i * ldc + j];
    }
  }
}

}  // namespace qkv::kernels::reference
