// Version and dispatched ISA of the linked oneDNN, shared by both oneDNN backends.
#pragma once

#include <oneapi/dnnl/dnnl.h>

#include <string>

namespace qkv::bench {

inline std::string DnnlIsaName(dnnl_cpu_isa_t isa) {
  switch (isa) {
    case dnnl_cpu_isa_avx2:
      return "avx2";
    case dnnl_cpu_isa_avx2_vnni:
      return "avx2_vnni";
    case dnnl_cpu_isa_avx512_core:
      return "avx512_core";
    case dnnl_cpu_isa_avx512_core_vnni:
      return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core_bf16:
      return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_amx:
      return "avx512_core_amx";
    default:
      return "isa#" + std::to_string(static_cast<int>(isa));
  }
}

inline std::string DnnlInfo() {
  const dnnl_version_t* v = dnnl_version();
  return std::to_string(v->major) + "." + std::to_string(v->minor) + "." +
         std::to_string(v->patch) + " (git " + v->hash + "), max ISA " +
         DnnlIsaName(dnnl_get_effective_cpu_isa());
}

}  // namespace qkv::bench
