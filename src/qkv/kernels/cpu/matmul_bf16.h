// bfloat16 x bfloat16 -> float32 products on oneDNN's matmul primitive, which picks AMX or
// AVX512-BF16 itself (kernels::Matmul's bfloat16 case; callers check Bf16Unavailable()).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "qkv/kernels/gemm_types.h"
#include "qkv/runtime/execution_context.h"

namespace qkv::kernels {

// C(m, n) = alpha * op(A)(m, k) * op(B)(k, n) + beta * C, A and B bfloat16 stored as in
// MatrixOperand (row-major, leading dimension ld, transposed when trans is kTranspose), C
// float32 with leading dimension ldc; beta == 0 overwrites C. One primitive per shape, layout,
// alpha and beta, created on first use and kept while it is among the
// kMatmulBf16PrimitivesMax most recently used. Safe to call from several threads at once
// (each brings its own scratch memory).
inline constexpr size_t kMatmulBf16PrimitivesMax = 1024;  // as oneDNN's own primitive cache

void MatmulBf16(int64_t m, int64_t n, int64_t k, float alpha, const uint16_t* a, int64_t lda,
                Transpose trans_a, const uint16_t* b, int64_t ldb, Transpose trans_b, float beta,
                float* c, int64_t ldc, const ExecutionContext& ctx);

// How many primitives are kept now (at most kMatmulBf16PrimitivesMax).
size_t MatmulBf16CachedPrimitives();

// oneDNN's name for the implementation it runs for this shape, e.g. "brg:avx512_core_bf16" or
// "brg:avx512_core_bf16_amx" (benchmarks report it; "ref" would mean emulation).
std::string MatmulBf16Implementation(int64_t m, int64_t n, int64_t k, Transpose trans_a,
                                     Transpose trans_b);

}  // namespace qkv::kernels
