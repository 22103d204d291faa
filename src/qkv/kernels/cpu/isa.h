// The ISA names of runtime/isa.h, as the kernels see them.
#pragma once

#include "qkv/runtime/isa.h"

namespace qkv::kernels {

using qkv::CpuSupports;
using qkv::Isa;
using qkv::IsaName;

// The process default (DefaultIsa); code with an ExecutionContext uses ctx.isa instead.
inline Isa ActiveIsa() { return DefaultIsa(); }

}  // namespace qkv::kernels
