// The avx512 build of kernels/cpu/vector_kernels.inc.
// This is the only file compiled with AVX-512 enabled (src/qkv/CMakeLists.txt); it is
// called only where CpuSupports(Isa::kAvx512); its one AVX512-BF16 function only where the
// CPU has that too.
#include <immintrin.h>

#include <cstdint>

#include "qkv/kernels/cpu/vector_kernels.h"

namespace qkv::kernels {
namespace avx512 {

#include "qkv/kernels/cpu/simd/avx512.inc"
#include "qkv/kernels/cpu/vector_kernels.inc"

// AVX512-BF16's conversion, sixteen floats an instruction; compiled for that extension
// alone and called only where the CPU reports it.
__attribute__((target("avx512bf16"))) void ToBf16Native(const float* x, uint16_t* y, int64_t n) {
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    const __m256bh rounded = _mm512_cvtneps_pbh(_mm512_loadu_ps(x + i));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + i),
                        reinterpret_cast<const __m256i&>(rounded));
  }
  if (i == n) return;
  const __mmask16 tail = FirstLanes(n - i);
  const __m256bh rounded = _mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(tail, x + i));
  _mm256_mask_storeu_epi16(y + i, tail, reinterpret_cast<const __m256i&>(rounded));
}

// vdpbf16ps: 32 bfloat16 pairs an instruction, two accumulators; the tail by a masked load.
__attribute__((target("avx512bf16"))) float DotBf16PairsNative(const uint16_t* x, const uint16_t* w,
                                                               int64_t n) {
  __m512 sum0 = _mm512_setzero_ps(), sum1 = _mm512_setzero_ps();
  const auto pairs = [](const uint16_t* p) {
    const __m512i bits = _mm512_loadu_si512(p);
    return reinterpret_cast<const __m512bh&>(bits);
  };
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) {
    _mm_prefetch(reinterpret_cast<const char*>(w + i + 2048), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(w + i + 2048 + 32), _MM_HINT_T0);
    sum0 = _mm512_dpbf16_ps(sum0, pairs(x + i), pairs(w + i));
    sum1 = _mm512_dpbf16_ps(sum1, pairs(x + i + 32), pairs(w + i + 32));
  }
  for (; i + 32 <= n; i += 32) sum0 = _mm512_dpbf16_ps(sum0, pairs(x + i), pairs(w + i));
  if (i < n) {
    const __mmask32 tail = static_cast<__mmask32>((uint64_t{1} << (n - i)) - 1);
    const __m512i x_tail = _mm512_maskz_loadu_epi16(tail, x + i);
    const __m512i w_tail = _mm512_maskz_loadu_epi16(tail, w + i);
    sum1 = _mm512_dpbf16_ps(sum1, reinterpret_cast<const __m512bh&>(x_tail),
                            reinterpret_cast<const __m512bh&>(w_tail));
  }
  return ReduceAdd({_mm512_add_ps(sum0, sum1)});
}

}  // namespace avx512

const VectorKernels& Avx512VectorKernels() {
  static const VectorKernels kernels = [] {
    VectorKernels made = avx512::MakeVectorKernels(Isa::kAvx512);
    if (__builtin_cpu_supports("avx512bf16")) {
      made.to_bf16 = avx512::ToBf16Native;
      made.dot_bf16_pairs = avx512::DotBf16PairsNative;
    }
    return made;
  }();
  return kernels;
}

const VectorKernels& Avx512VectorKernelsWithoutBf16Instructions() {
  static const VectorKernels kernels = avx512::MakeVectorKernels(Isa::kAvx512);
  return kernels;
}

}  // namespace qkv::kernels
