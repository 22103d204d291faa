// cblas_sgemm from OpenBLAS (QKV_GEMM_BENCH_OPENBLAS) or BLIS (QKV_GEMM_BENCH_BLIS). The two
// export the same symbols, so this file is compiled once per library into separate programs.
#include <string>

#include "gemm_backend.h"

#if defined(QKV_GEMM_BENCH_OPENBLAS)
#include <cblas.h>
#elif defined(QKV_GEMM_BENCH_BLIS)
#include <blis.h>  // Declares the cblas_* API too (BLIS_ENABLE_CBLAS).
#else
#error "define QKV_GEMM_BENCH_OPENBLAS or QKV_GEMM_BENCH_BLIS"
#endif

namespace qkv::bench {
namespace {

class CblasBackend : public GemmBackend {
 public:
  std::string Describe() const override {
#if defined(QKV_GEMM_BENCH_OPENBLAS)
    // The core name is what OpenBLAS's runtime dispatch (or OPENBLAS_CORETYPE) selected.
    return std::string("OpenBLAS cblas_sgemm, config '") + openblas_get_config() + "', core " +
           openblas_get_corename();
#else
    // The arch is what BLIS's cpuid dispatch (or BLIS_ARCH_TYPE) selected.
    return std::string("BLIS cblas_sgemm, version ") + bli_info_get_version_str() +
           ", kernel config " + bli_arch_string(bli_arch_query_id());
#endif
  }

  void SetNumThreads(int num_threads) override {
#if defined(QKV_GEMM_BENCH_OPENBLAS)
    openblas_set_num_threads(num_threads);
#else
    bli_thread_set_num_threads(num_threads);
#endif
  }

  void Gemm(const GemmArgs& args) override {
    cblas_sgemm(CblasRowMajor, args.trans_a ? CblasTrans : CblasNoTrans,
                args.trans_b ? CblasTrans : CblasNoTrans, static_cast<int>(args.m),
                static_cast<int>(args.n), static_cast<int>(args.k), args.alpha, args.a,
                static_cast<int>(args.lda), args.b, static_cast<int>(args.ldb), args.beta, args.c,
                static_cast<int>(args.ldc));
  }
};

}  // namespace

GemmBackend* CreateBackend() { return new CblasBackend(); }

}  // namespace qkv::bench
