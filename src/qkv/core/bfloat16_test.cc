// float32 -> bfloat16 rounding against the definition, computed here in double: the result is
// the nearer of the two bfloat16 values around x (truncated, and one step up in magnitude),
// the one with the even last mantissa bit on a tie; NaN stays NaN.
#include "qkv/core/bfloat16.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>

#include "qkv/core/random.h"

namespace qkv {
namespace {

double Widen(uint32_t bf16_bits) {
  return static_cast<double>(std::bit_cast<float>(bf16_bits << 16));
}

uint16_t NearestByDefinition(float x) {
  const uint32_t bits = std::bit_cast<uint32_t>(x);
  const uint32_t truncated = bits >> 16, up = truncated + 1;  // same sign, next magnitude
  const double below = std::abs(static_cast<double>(x) - Widen(truncated));
  // One step past the largest finite bfloat16 is infinity, which is where RNE sends it.
  const double above_value = (up & 0x7FFF) == 0x7F80
                                 ? std::copysign(std::ldexp(1.0, 128), static_cast<double>(x))
                                 : Widen(up);
  const double above = std::abs(above_value - static_cast<double>(x));
  if (below < above) return static_cast<uint16_t>(truncated);
  if (above < below) return static_cast<uint16_t>(up);
  return static_cast<uint16_t>((truncated & 1) == 0 ? truncated : up);
}

TEST(Bfloat16Test, RoundsToNearestEvenAsDefined) {
  Random random(41);
  int64_t ties = 0;
  for (int i = 0; i < 200000; ++i) {
    uint32_t bits = static_cast<uint32_t>(random.Below(uint64_t{1} << 32));
    if (i % 4 == 0) bits = (bits & 0xFFFF0000u) | 0x8000u;  // exact ties, both parities
    const float x = std::bit_cast<float>(bits);
    if (std::isnan(x) || std::isinf(x)) continue;
    ties += (bits & 0xFFFFu) == 0x8000u;
    ASSERT_EQ(ToBfloat16(x), NearestByDefinition(x)) << std::hex << "bits 0x" << bits;
  }
  EXPECT_GT(ties, 40000);
}

TEST(Bfloat16Test, SpecialValuesAndTheWayBackIsExact) {
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(FromBfloat16(ToBfloat16(inf)), inf);
  EXPECT_EQ(FromBfloat16(ToBfloat16(-inf)), -inf);
  EXPECT_TRUE(std::isnan(FromBfloat16(ToBfloat16(std::numeric_limits<float>::quiet_NaN()))));
  // A NaN whose payload sits only in the low half must not become infinity.
  EXPECT_TRUE(std::isnan(FromBfloat16(ToBfloat16(std::bit_cast<float>(0x7F800001u)))));
  EXPECT_EQ(FromBfloat16(ToBfloat16(std::numeric_limits<float>::max())), inf);
  EXPECT_TRUE(std::signbit(FromBfloat16(ToBfloat16(-0.0f))));
  for (uint32_t value = 0; value < (1u << 16); ++value) {
    const float widened = FromBfloat16(static_cast<uint16_t>(value));
    if (std::isnan(widened)) continue;
    ASSERT_EQ(ToBfloat16(widened), value);  // every bfloat16 is a float, kept exactly
  }
}

}  // namespace
}  // namespace qkv
