// The scalar build of kernels/cpu/vector_kernels.inc.
#include <cmath>
#include <cstdint>
#include <cstring>

#include "qkv/kernels/cpu/vector_kernels.h"

namespace qkv::kernels {
namespace scalar {

#include "qkv/kernels/cpu/simd/scalar.inc"
#include "qkv/kernels/cpu/vector_kernels.inc"

}  // namespace scalar

const VectorKernels& ScalarVectorKernels() {
  static const VectorKernels kernels = scalar::MakeVectorKernels(Isa::kScalar);
  return kernels;
}

}  // namespace qkv::kernels
