#include "qkv/kernels/cpu/gemm.h"

#include <omp.h>
#include <oneapi/dnnl/dnnl.h>

#include <vector>

#include "qkv/core/check.h"
#include "qkv/kernels/bf16_weight_copies.h"
#include "qkv/kernels/cpu/matmul_bf16.h"
#include "qkv/kernels/cpu/vector_kernels.h"
#include "qkv/kernels/reference/gemm_reference.h"
#include "qkv/runtime/parallel_for.h"

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

// A float32 operand op(X) (rows, cols) as bfloat16: the copy of a weight matrix that
// ctx.bf16_weights holds, or `buffer` filled with X rounded to nearest even, stored as X is
// but packed (leading dimension = stored row length). Returns the data and its ld.
std::pair<const uint16_t*, int64_t> AsBf16(int64_t rows, int64_t cols, const MatrixOperand& x,
                                           std::vector<uint16_t>& buffer,
                                           const ExecutionContext& ctx) {
  const int64_t stored_rows = x.transpose == Transpose::kNo ? rows : cols;
  const int64_t stored_cols = x.transpose == Transpose::kNo ? cols : rows;
  const auto* data = static_cast<const float*>(x.data);
  if (ctx.bf16_weights != nullptr) {
    const uint16_t* copy = ctx.bf16_weights->Find(data, x.ld, stored_rows * x.ld);
    if (copy != nullptr) return {copy, x.ld};
  }
  buffer.resize(static_cast<size_t>(stored_rows * stored_cols));
  const VectorKernels& vector = VectorKernelsFor(ctx.isa);
  const auto convert_rows = [&](int64_t begin, int64_t end, int) {
    for (int64_t r = begin; r < end; ++r) {
      vector.to_bf16(data + r * x.ld, buffer.data() + r * stored_cols, stored_cols);
    }
  };
  if (omp_in_parallel()) {
    convert_rows(0, stored_rows, 0);  // inside an op's parallel loop: this thread alone
  } else {
    ParallelFor(stored_rows, ctx, convert_rows,
                std::max<int64_t>(1, 16384 / std::max<int64_t>(1, stored_cols)));
  }
  return {buffer.data(), stored_cols};
}

void MatmulBf16Operands(int64_t m, int64_t n, int64_t k, float alpha, const MatrixOperand& a,
                        const MatrixOperand& b, float beta, const MatrixResult& c,
                        const ExecutionContext& ctx) {
  // One pair of buffers per thread: products run from inside parallel regions too.
  thread_local std::vector<uint16_t> a_buffer, b_buffer;
  const auto [a_data, lda] = a.type == DataType::kBFloat16
                                 ? std::pair{static_cast<const uint16_t*>(a.data), a.ld}
                                 : AsBf16(m, k, a, a_buffer, ctx);
  const auto [b_data, ldb] = b.type == DataType::kBFloat16
                                 ? std::pair{static_cast<const uint16_t*>(b.data), b.ld}
                                 : AsBf16(k, n, b, b_buffer, ctx);
  MatmulBf16(m, n, k, alpha, a_data, lda, a.transpose, b_data, ldb, b.transpose, beta,
             static_cast<float*>(c.data), c.ld, ctx);
}

}  // namespace

void Matmul(int64_t m, int64_t n, int64_t k, double alpha, const MatrixOperand& a,
            const MatrixOperand& b, double beta, const MatrixResult& c,
            const ExecutionContext& ctx) {
  if (m == 0 || n == 0) return;
  QKV_CHECK(ctx.device == Device::kCpu, "matmul: no kernel for this device");
  const auto is_bf16_or_float = [](DataType type) {
    return type == DataType::kBFloat16 || type == DataType::kFloat32;
  };
  const bool bf16_inputs = a.type == DataType::kBFloat16 || b.type == DataType::kBFloat16 ||
                           ctx.precision == Precision::kBfloat16;
  if (bf16_inputs && is_bf16_or_float(a.type) && is_bf16_or_float(b.type) &&
      c.type == DataType::kFloat32) {
    MatmulBf16Operands(m, n, k, static_cast<float>(alpha), a, b, static_cast<float>(beta), c, ctx);
    return;
  }
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
