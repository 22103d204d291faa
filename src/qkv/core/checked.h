// Size arithmetic on numbers that come from outside: file headers, config.json, flags. A
// product of extents from a hostile file must become a qkv::Error naming the values, never
// signed overflow (undefined behaviour) or a wrapped size that under-allocates.
#pragma once

#include <cstddef>
#include <cstdint>

#include "qkv/core/check.h"

namespace qkv {

// a * b for non-negative a and b; throws qkv::Error naming `what` and both values when the
// product does not fit in int64_t.
inline int64_t CheckedMul(int64_t a, int64_t b, const char* what = "size") {
  QKV_CHECK(a >= 0 && b >= 0, what, ": negative factor in ", a, " x ", b);
  int64_t product = 0;
  QKV_CHECK(!__builtin_mul_overflow(a, b, &product), what, ": ", a, " x ", b,
            " overflows a 64-bit size");
  return product;
}

// a + b for non-negative a and b, with the same contract as CheckedMul.
inline int64_t CheckedAdd(int64_t a, int64_t b, const char* what = "size") {
  QKV_CHECK(a >= 0 && b >= 0, what, ": negative term in ", a, " + ", b);
  int64_t sum = 0;
  QKV_CHECK(!__builtin_add_overflow(a, b, &sum), what, ": ", a, " + ", b,
            " overflows a 64-bit size");
  return sum;
}

// The same for byte counts held in size_t.
inline size_t CheckedMulSize(size_t a, size_t b, const char* what = "size") {
  size_t product = 0;
  QKV_CHECK(!__builtin_mul_overflow(a, b, &product), what, ": ", a, " x ", b,
            " overflows a 64-bit size");
  return product;
}
inline size_t CheckedAddSize(size_t a, size_t b, const char* what = "size") {
  size_t sum = 0;
  QKV_CHECK(!__builtin_add_overflow(a, b, &sum), what, ": ", a, " + ", b,
            " overflows a 64-bit size");
  return sum;
}

}  // namespace qkv
