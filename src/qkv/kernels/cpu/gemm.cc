#include "qkv/kernels/cpu/gemm.h"

#include <omp.h>
#include <oneapi/dnnl/dnnl.h>

#include "qkv/core/check.h"
#include "qkv/kernels/reference/gemm_reference.h"

namespace qkv::kernels {

namespace {

void SgemmOnOneDnn(int64_t m, int64_t n, int64_t k, float alpha, const MatrixOperand& a,
                   const MatrixOperand& b, float beta, const MatrixResult& c,
                   const ExecutionContext& ctx) {
  // oneDNN sizes its team from OpenMP's per-thread setting: make it this context's.
  if (!omp_in_parallel() && omp_get_max_threads() != ctx.num_threads()) {
    omp_set_num_threads(ctx.num_threads());
  }
  const dnnl_status_t status = dnnl_sgemm(
      a.transpose == Transpose::kNo ? 'N' : 'T', b.transpose == Transpose::kNo ? 'N' : 'T', m, n, k,
      alpha, static_cast<const float*>(a.data), a.ld, static_cast<const float*>(b.data), b.ld, beta,
      static_cast<float*>(c.data), c.ld);
  QKV_CHECK(status == dnnl_success, "oneDNN sgemm failed with status ", static_cast<int>(status),
            " for m=", m, " n=", n, " k=", k, " lda=", a.ld, " ldb=", b.ld, " ldc=", c.ld);
}

}  // namespace

void Matmul(int64_t m, int64_t n, int64_t k, double alpha, const MatrixOperand& a,
            const MatrixOperand& b, double beta, const MatrixResult& c,
            const ExecutionContext& ctx) {
  if (m == 0 || n == 0) return;
  QKV_CHECK(ctx.device == Device::kCpu, "matmul: no kernel for this device");
  if (a.type == DataType::kFloat32 && b.type == DataType::kFloat32 &&
      c.type == DataType::kFloat32) {
    SgemmOnOneDnn(m, n, k, static_cast<float>(alpha), a, b, static_cast<float>(beta), c, ctx);
    return;
  }
  if (a.type == DataType::kFloat64 && b.type == DataType::kFloat64 &&
      c.type == DataType::kFloat64) {
    reference::Gemm(a.transpose, b.transpose, m, n, k, alpha, static_cast<const double*>(a.data),
                    a.ld, static_cast<const double*>(b.data), b.ld, beta,
                    static_cast<double*>(c.data), c.ld);
    return;
  }
  QKV_CHECK(false, "matmul: no CPU kernel for ", DataTypeName(a.type), " x ", DataTypeName(b.type),
            " -> ", DataTypeName(c.type));
}

}  // namespace qkv::kernels
