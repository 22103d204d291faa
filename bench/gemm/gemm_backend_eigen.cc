// Eigen's GEMM over Maps of the caller's row-major buffers (no copies). Eigen picks its SIMD
// width at compile time, so the ISA flags of this file decide its speed; CMake builds it twice.
#include <Eigen/Core>
#include <string>

#include "gemm_backend.h"

namespace qkv::bench {
namespace {

using RowMajor = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using ConstMap = Eigen::Map<const RowMajor, Eigen::Unaligned, Eigen::OuterStride<>>;
using MutableMap = Eigen::Map<RowMajor, Eigen::Unaligned, Eigen::OuterStride<>>;

class EigenBackend : public GemmBackend {
 public:
  std::string Describe() const override {
    return "Eigen " + std::to_string(EIGEN_WORLD_VERSION) + "." +
           std::to_string(EIGEN_MAJOR_VERSION) + "." + std::to_string(EIGEN_MINOR_VERSION) +
           ", SIMD " + Eigen::SimdInstructionSetsInUse();
  }

  void SetNumThreads(int num_threads) override { Eigen::setNbThreads(num_threads); }

  void Gemm(const GemmArgs& args) override {
    const ConstMap a(args.a, args.trans_a ? args.k : args.m, args.trans_a ? args.m : args.k,
                     Eigen::OuterStride<>(args.lda));
    const ConstMap b(args.b, args.trans_b ? args.n : args.k, args.trans_b ? args.k : args.n,
                     Eigen::OuterStride<>(args.ldb));
    MutableMap c(args.c, args.m, args.n, Eigen::OuterStride<>(args.ldc));
    // Each transpose combination is its own expression type, hence the four branches.
    if (args.trans_a) {
      if (args.trans_b) {
        Run(a.transpose(), b.transpose(), args.alpha, args.beta, c);
      } else {
        Run(a.transpose(), b, args.alpha, args.beta, c);
      }
    } else if (args.trans_b) {
      Run(a, b.transpose(), args.alpha, args.beta, c);
    } else {
      Run(a, b, args.alpha, args.beta, c);
    }
  }

 private:
  template <typename A, typename B>
  static void Run(const A& a, const B& b, float alpha, float beta, MutableMap& c) {
    // noalias(): C never aliases A or B (qkv's contract), so Eigen may write C directly instead
    // of through a temporary. beta == 0 must not read C (it may hold NaN).
    if (beta == 0) {
      c.noalias() = alpha * a * b;
    } else {
      if (beta != 1) c *= beta;
      c.noalias() += alpha * a * b;
    }
  }
};

}  // namespace

GemmBackend* CreateBackend() { return new EigenBackend(); }

}  // namespace qkv::bench
