#include "qkv/kernels/cpu/vector_kernels.h"

#include "qkv/core/check.h"

namespace qkv::kernels {

// Defined in vector_kernels_{scalar,avx2,avx512}.cc.
const VectorKernels& ScalarVectorKernels();
const VectorKernels& Avx2VectorKernels();
const VectorKernels& Avx512VectorKernels();

const VectorKernels& VectorKernelsFor(Isa isa) {
  QKV_CHECK(CpuSupports(isa), "vector kernels: this CPU does not support ", IsaName(isa));
  switch (isa) {
    case Isa::kAvx512:
      return Avx512VectorKernels();
    case Isa::kAvx2:
      return Avx2VectorKernels();
    case Isa::kScalar:
      break;
  }
  return ScalarVectorKernels();
}

const VectorKernels& ActiveVectorKernels() {
  static const VectorKernels& kernels = VectorKernelsFor(ActiveIsa());
  return kernels;
}

}  // namespace qkv::kernels
