// Which x86 vector instruction set the float kernels of kernels/cpu/vector_kernels.h use.
// Chosen once per process: the widest the CPU supports, or the one the environment variable
// QKV_ISA names (scalar | avx2 | avx512), so that every path can be run and compared on one
// machine. Results are bitwise reproducible for a fixed ISA and thread count; different ISAs
// sum in different orders and agree to float rounding.
#pragma once

#include <string_view>

namespace qkv::kernels {

enum class Isa { kScalar, kAvx2, kAvx512 };

std::string_view IsaName(Isa isa);

// Whether this CPU can run kernels compiled for isa.
bool CpuSupports(Isa isa);

// The ISA in use: QKV_ISA when set (throws qkv::Error for an unknown name or one this CPU
// cannot run), else the widest supported. Read once, on first use.
Isa ActiveIsa();

}  // namespace qkv::kernels
