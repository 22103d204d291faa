#include "qkv/kernels/cpu/gemm.h"

#include <oneapi/dnnl/dnnl.h>

#include "qkv/core/check.h"
#include "qkv/kernels/reference/gemm_reference.h"

namespace qkv::kernels {

template <>
void Gemm<float>(Transpose trans_a, Transpose trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                 const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
                 int64_t ldc) {
  if (m == 0 || n == 0) return;
  const dnnl_status_t status =
      dnnl_sgemm(trans_a == Transpose::kNo ? 'N' : 'T', trans_b == Transpose::kNo ? 'N' : 'T', m, n,
                 k, alpha, a, lda, b, ldb, beta, c, ldc);
  QKV_CHECK(status == dnnl_success, "oneDNN sgemm failed with status ", static_cast<int>(status),
            " for m=", m, " n=", n, " k=", k, " lda=", lda, " ldb=", ldb, " ldc=", ldc);
}

template <>
void Gemm<double>(Transpose trans_a, Transpose trans_b, int64_t m, int64_t n, int64_t k,
                  double alpha, const double* a, int64_t lda, const double* b, int64_t ldb,
                  double beta, double* c, int64_t ldc) {
  reference::Gemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

}  // namespace qkv::kernels
