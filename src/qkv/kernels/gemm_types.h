#pragma once

namespace qkv::kernels {

enum class Transpose { kNo, kTranspose };

}  // namespace qkv::kernels
