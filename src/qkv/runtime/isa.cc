#include "qkv/runtime/isa.h"

#include <cstdlib>
#include <string>

#include "qkv/core/check.h"

namespace qkv {

std::string_view IsaName(Isa isa) {
  switch (isa) {
    case Isa::kScalar:
      return "scalar";
    case Isa::kAvx2:
      return "avx2";
    case Isa::kAvx512:
      return "avx512";
  }
  return "unknown";
}

bool CpuSupports(Isa isa) {
  switch (isa) {
    case Isa::kScalar:
      return true;
    case Isa::kAvx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case Isa::kAvx512:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw");
  }
  return false;
}

namespace {

Isa ChooseIsa() {
  const char* requested = std::getenv("QKV_ISA");
  if (requested == nullptr || *requested == '\0') {
    return CpuSupports(Isa::kAvx512) ? Isa::kAvx512 : Isa::kAvx2;
  }
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512}) {
    if (IsaName(isa) == requested) {
      QKV_CHECK(CpuSupports(isa), "QKV_ISA=", requested, ": this CPU does not support ", requested);
      return isa;
    }
  }
  QKV_CHECK(false, "QKV_ISA=", requested, " is not one of scalar, avx2, avx512");
  return Isa::kScalar;
}

}  // namespace

Isa DefaultIsa() {
  static const Isa isa = ChooseIsa();
  return isa;
}

}  // namespace qkv
