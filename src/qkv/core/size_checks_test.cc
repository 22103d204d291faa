// Size arithmetic on outside numbers: overflow is an error naming the values, never UB.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <string>

#include "qkv/core/buffer.h"
#include "qkv/core/checked.h"
#include "qkv/core/memory.h"
#include "qkv/core/shape.h"

namespace qkv {
namespace {

std::string MessageOf(const auto& action) {
  try {
    action();
  } catch (const Error& error) {
    return error.what();
  }
  return "(no error)";
}

TEST(CheckedMulTest, ExactProductsPassAndOverflowNamesBothFactors) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  EXPECT_EQ(CheckedMul(3, 5), 15);
  EXPECT_EQ(CheckedMul(kMax, 1), kMax);
  EXPECT_EQ(CheckedMul(int64_t{1} << 31, int64_t{1} << 31), int64_t{1} << 62);
  const std::string message = MessageOf([] { CheckedMul(int64_t{1} << 32, int64_t{1} << 31); });
  EXPECT_NE(message.find("4294967296 x 2147483648"), std::string::npos) << message;
  EXPECT_THROW(CheckedMul(-1, 2), Error);
  EXPECT_THROW(CheckedAdd(kMax, 1), Error);
  EXPECT_THROW(CheckedMulSize(std::numeric_limits<size_t>::max() / 2 + 1, 2), Error);
  EXPECT_EQ(CheckedAddSize(2, 3), size_t{5});
}

TEST(ShapeTest, ExtentsWhoseProductOverflowsAreRefused) {
  // 2^21 cubed is 2^63, one past int64_t's range; before CheckedMul this wrapped silently.
  const int64_t extent = int64_t{1} << 21;
  const std::string message = MessageOf([&] { Shape shape{extent, extent, extent}; });
  EXPECT_NE(message.find("overflows"), std::string::npos) << message;
  const Shape fits{extent, extent, extent / 2};
  EXPECT_EQ(fits.NumElements(), int64_t{1} << 62);
}

TEST(MemoryTest, RequestsAboveTheAvailableMemoryNameBothSizes) {
  EXPECT_NO_THROW(CheckFitsInMemory(1000, "small", 1000));
  const std::string message = MessageOf([] { CheckFitsInMemory(1001, "the widget", 1000); });
  EXPECT_NE(message.find("the widget needs 1001 bytes"), std::string::npos) << message;
  EXPECT_NE(message.find("only 1000 bytes"), std::string::npos) << message;
  EXPECT_GT(AvailableMemoryBytes(), uint64_t{0});
}

TEST(MemoryTest, EnvironmentLimitCapsTheAvailableMemory) {
  const uint64_t machine = AvailableMemoryBytes();
  ASSERT_EQ(setenv("QKV_MEMORY_LIMIT", "12345", 1), 0);
  const uint64_t capped = AvailableMemoryBytes();
  ASSERT_EQ(setenv("QKV_MEMORY_LIMIT", "12x", 1), 0);
  EXPECT_THROW(AvailableMemoryBytes(), Error);
  unsetenv("QKV_MEMORY_LIMIT");
  EXPECT_EQ(capped, std::min<uint64_t>(machine, 12345));
  // A buffer past the limit is refused before the allocator sees it.
  ASSERT_EQ(setenv("QKV_MEMORY_LIMIT", "1000000", 1), 0);
  const std::string message = MessageOf([] { AlignedBuffer buffer(size_t{1} << 30); });
  unsetenv("QKV_MEMORY_LIMIT");
  EXPECT_NE(message.find("1073741824 bytes"), std::string::npos) << message;
  EXPECT_NE(message.find("only 1000000 bytes"), std::string::npos) << message;
}

}  // namespace
}  // namespace qkv
