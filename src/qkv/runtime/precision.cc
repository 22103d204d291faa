#include "qkv/runtime/precision.h"

#include <cpuid.h>

#include "qkv/core/check.h"
#include "qkv/runtime/isa.h"

namespace qkv {

std::string_view PrecisionName(Precision precision) {
  return precision == Precision::kBfloat16 ? "bf16" : "fp32";
}

Precision ParsePrecision(std::string_view name) {
  if (name == "fp32") return Precision::kFloat32;
  if (name == "bf16") return Precision::kBfloat16;
  QKV_CHECK(false, "precision '", name, "' is not one of fp32, bf16");
  return Precision::kFloat32;
}

namespace {

// CPUID.(EAX=7, ECX=0):EDX bit 22 (clang 14's __builtin_cpu_supports has no "amx-bf16"). The
// kernel grants the tile state to a process on request, which oneDNN makes.
bool CpuHasAmxBf16() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx) == 0) return false;
  return ((edx >> 22) & 1u) != 0;
}

}  // namespace

std::string_view Bf16MatrixIsa() {
  if (DefaultIsa() != Isa::kAvx512) return {};
  if (CpuHasAmxBf16()) return "amx_bf16";
  if (__builtin_cpu_supports("avx512bf16")) return "avx512_bf16";
  return {};
}

std::string Bf16Unavailable() {
  if (!Bf16MatrixIsa().empty()) return {};
  if (CpuSupports(Isa::kAvx512) && DefaultIsa() != Isa::kAvx512) {
    return "QKV_ISA=" + std::string(IsaName(DefaultIsa())) +
           " turns off the AVX-512 kernels that bf16 needs; use --precision fp32";
  }
  return "this CPU has neither AVX512-BF16 nor AMX-BF16, and qkv does not emulate bfloat16 "
         "products (emulated, they run slower than float32); use --precision fp32";
}

}  // namespace qkv
