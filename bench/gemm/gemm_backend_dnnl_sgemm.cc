// oneDNN's BLAS-like dnnl_sgemm: what qkv::kernels::Gemm<float> calls today.
#include <omp.h>
#include <oneapi/dnnl/dnnl.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "gemm_backend.h"
#include "gemm_backend_dnnl_info.h"

namespace qkv::bench {
namespace {

class DnnlSgemmBackend : public GemmBackend {
 public:
  std::string Describe() const override { return "oneDNN dnnl_sgemm, " + DnnlInfo(); }

  void SetNumThreads(int num_threads) override { omp_set_num_threads(num_threads); }

  void Gemm(const GemmArgs& args) override {
    const dnnl_status_t status =
        dnnl_sgemm(args.trans_a ? 'T' : 'N', args.trans_b ? 'T' : 'N', args.m, args.n, args.k,
                   args.alpha, args.a, args.lda, args.b, args.ldb, args.beta, args.c, args.ldc);
    if (status != dnnl_success) {
      std::fprintf(stderr, "dnnl_sgemm failed: %d\n", static_cast<int>(status));
      std::abort();
    }
  }
};

}  // namespace

GemmBackend* CreateBackend() { return new DnnlSgemmBackend(); }

}  // namespace qkv::bench
