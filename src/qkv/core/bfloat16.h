// bfloat16: the upper 16 bits of a float32 (same exponent range, 8 bits of mantissa). The
// conversion from float32 rounds to nearest, ties to even, as PyTorch's and oneDNN's do; NaN
// stays a (quiet) NaN. The way back is exact.
#pragma once

#include <bit>
#include <cstdint>

namespace qkv {

inline uint16_t ToBfloat16(float value) {
  const uint32_t bits = std::bit_cast<uint32_t>(value);
  if ((bits & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((bits >> 16) | 0x0040u);
  const uint32_t rounding = 0x7FFFu + ((bits >> 16) & 1u);  // ties go to the even mantissa
  return static_cast<uint16_t>((bits + rounding) >> 16);
}

inline float FromBfloat16(uint16_t value) {
  return std::bit_cast<float>(static_cast<uint32_t>(value) << 16);
}

}  // namespace qkv
