// The avx2 build of kernels/cpu/vector_kernels.inc.
#include <immintrin.h>

#include <cstdint>

#include "qkv/kernels/cpu/vector_kernels.h"

namespace qkv::kernels {
namespace avx2 {

#include "qkv/kernels/cpu/simd/avx2.inc"
#include "qkv/kernels/cpu/vector_kernels.inc"

}  // namespace avx2

const VectorKernels& Avx2VectorKernels() {
  static const VectorKernels kernels = avx2::MakeVectorKernels(Isa::kAvx2);
  return kernels;
}

}  // namespace qkv::kernels
