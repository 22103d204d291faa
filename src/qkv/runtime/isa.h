// Which x86 vector instruction set the float kernels use (kernels/cpu/vector_kernels.h), and
// the device computations run on. An ExecutionContext carries both explicitly; the default is
// read once per process: the widest ISA the CPU supports, or the one the environment variable
// QKV_ISA names (scalar | avx2 | avx512), so that every path can be run and compared on one
// machine. Results are bitwise reproducible for a fixed ISA and thread count; different ISAs
// sum in different orders and agree to float rounding.
#pragma once

#include <string_view>

namespace qkv {

enum class Isa { kScalar, kAvx2, kAvx512 };

// Where the kernels run. Only the CPU today; a GPU backend adds a value and its kernels.
enum class Device { kCpu };

std::string_view IsaName(Isa isa);

// Whether this CPU can run kernels compiled for isa.
bool CpuSupports(Isa isa);

// QKV_ISA when set (throws qkv::Error for an unknown name or one this CPU cannot run), else
// the widest supported. Read on first use, then remembered: the default of ExecutionContext.
Isa DefaultIsa();

}  // namespace qkv
