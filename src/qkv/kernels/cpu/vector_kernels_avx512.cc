// The avx512 build of kernels/cpu/vector_kernels.inc.
// This is the only file compiled with AVX-512 enabled (src/qkv/CMakeLists.txt); it is
// called only where CpuSupports(Isa::kAvx512).
#include <immintrin.h>

#include <cstdint>

#include "qkv/kernels/cpu/vector_kernels.h"

namespace qkv::kernels {
namespace avx512 {

#include "qkv/kernels/cpu/simd/avx512.inc"
#include "qkv/kernels/cpu/vector_kernels.inc"

}  // namespace avx512

const VectorKernels& Avx512VectorKernels() {
  static const VectorKernels kernels = avx512::MakeVectorKernels(Isa::kAvx512);
  return kernels;
}

}  // namespace qkv::kernels
