// The seam between the GEMM benchmark harness (gemm_bench_main.cc) and one library. Each
// library is linked into its own executable because OpenBLAS and BLIS both export cblas_*, and
// because their thread pools would otherwise compete inside one process.
#pragma once

#include <cstdint>
#include <string>

namespace qkv::bench {

// Same contract as qkv::kernels::Gemm<float> (src/qkv/kernels/cpu/gemm.h): row-major
// C(m, n) = alpha * op(A) * op(B) + beta * C, with op(A) (m, k) and op(B) (k, n).
struct GemmArgs {
  bool trans_a = false;
  bool trans_b = false;
  int64_t m = 0, n = 0, k = 0;
  float alpha = 1;
  const float* a = nullptr;
  int64_t lda = 0;
  const float* b = nullptr;
  int64_t ldb = 0;
  float beta = 0;
  float* c = nullptr;
  int64_t ldc = 0;
};

// Implemented once per library (gemm_backend_*.cc).
class GemmBackend {
 public:
  virtual ~GemmBackend() = default;
  // Library, version and the kernel/ISA it dispatched to, for the report.
  virtual std::string Describe() const = 0;
  virtual void SetNumThreads(int num_threads) = 0;
  // One-time per-shape work (oneDNN matmul primitive creation); kept out of the timed loop.
  // Returns the seconds spent, 0 for libraries without such a step.
  virtual double Prepare(const GemmArgs& /*args*/) { return 0; }
  // Implementation detail chosen for this shape, if the library reports one ("" otherwise).
  virtual std::string ImplName(const GemmArgs& /*args*/) { return ""; }
  virtual void Gemm(const GemmArgs& args) = 0;
};

// Defined by the linked gemm_backend_*.cc.
GemmBackend* CreateBackend();

}  // namespace qkv::bench
