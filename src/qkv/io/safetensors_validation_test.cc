// Hostile safetensors headers: each is refused with a qkv::Error naming the tensor and the
// values, before anything is allocated from the header's numbers.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>

#include "qkv/core/check.h"
#include "qkv/io/safetensors.h"
#include "qkv/io/safetensors_test_support.h"

namespace qkv::io {
namespace {

// A file: the 8-byte little-endian length, the header, then `data_bytes` zero bytes.
std::string FileWith(const std::string& header, size_t data_bytes) {
  std::string bytes;
  for (int i = 0; i < 8; ++i) bytes += static_cast<char>((header.size() >> (8 * i)) & 0xff);
  return bytes + header + std::string(data_bytes, '\0');
}

using test_support::ErrorOf;

TEST(SafetensorsValidationTest, AWellFormedBufferParses) {
  const SafetensorsFile file =
      ParseSafetensors(FileWith(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                R"("b":{"dtype":"F16","shape":[1,2],"data_offsets":[8,12]}})",
                                12),
                       "ok");
  ASSERT_EQ(file.tensors.size(), 2u);
  EXPECT_EQ(file.Get("a").f32.size(), 2u);
  EXPECT_EQ(file.Get("b").f32.size(), 2u);
}

TEST(SafetensorsValidationTest, ShapeWhoseElementCountOverflowsIsRefused) {
  // 2^62 + 1 F32 elements: the byte count wraps to 4 in 64 bits, which matched the 4-byte span
  // and made the reader resize a vector to 2^62 floats.
  std::string message = ErrorOf(
      FileWith(R"({"w":{"dtype":"F32","shape":[4611686018427387905],"data_offsets":[0,4]}})", 4));
  EXPECT_MENTIONS(message, "tensor 'w'");
  EXPECT_MENTIONS(message, "4611686018427387905");
  // A product that overflows int64_t itself (UBSan's signed overflow before the fix).
  message = ErrorOf(
      FileWith(R"({"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}})", 4));
  EXPECT_MENTIONS(message, "tensor 'w'");
  EXPECT_MENTIONS(message, "too many elements");
}

// The reader refused these before the overflow fixes too; pinned so the reordered checks keep
// naming the tensor and the numbers.
TEST(SafetensorsValidationTest, OffsetsOutOfRangeAreRefused) {
  std::string message =
      ErrorOf(FileWith(R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 8));
  EXPECT_MENTIONS(message, "tensor 'w' spans bytes [0, 16)");
  EXPECT_MENTIONS(message, "8 bytes");
  message = ErrorOf(
      FileWith(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[18446744073709551612,0]}})", 4));
  EXPECT_MENTIONS(message, "tensor 'w' spans bytes [18446744073709551612, 0)");
  message = ErrorOf(FileWith(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}})", 4));
  EXPECT_MENTIONS(message, "bad data offset -4");
}

TEST(SafetensorsValidationTest, OverlappingAndMisalignedDataAreRefused) {
  std::string message =
      ErrorOf(FileWith(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                       R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                       12));
  EXPECT_MENTIONS(message, "tensor 'b' starts at byte 4");
  EXPECT_MENTIONS(message, "overlap");
  // 6 bytes cannot hold whole F32 elements, whatever the shape says.
  message = ErrorOf(FileWith(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,6]}})", 6));
  EXPECT_MENTIONS(message, "tensor 'a' spans 6 bytes, not a whole number of F32 elements");
}

TEST(SafetensorsValidationTest, SpanThatDisagreesWithTheDtypeSizeIsRefused) {
  // Three F16 values take 6 bytes, not the 12 an F32 writer would have used.
  const std::string message =
      ErrorOf(FileWith(R"({"h":{"dtype":"F16","shape":[3],"data_offsets":[0,12]}})", 12));
  EXPECT_MENTIONS(message, "tensor 'h' has shape [3] (3 elements of 2 bytes) but spans 12 bytes");
}

TEST(SafetensorsValidationTest, DeeplyNestedShapeEntryIsNamedNotDumped) {
  std::string nested = std::string(5000, '[') + std::string(5000, ']');
  const std::string message = ErrorOf(
      FileWith(R"({"w":{"dtype":"F32","shape":[)" + nested + R"(],"data_offsets":[0,0]}})", 0));
  EXPECT_MENTIONS(message, "tensor 'w' has a bad shape entry array");
}

TEST(SafetensorsValidationTest, FileLargerThanTheMemoryLimitIsRefusedBeforeReading) {
  ASSERT_EQ(setenv("QKV_MEMORY_LIMIT", "100", 1), 0);
  const std::string message =
      ErrorOf(FileWith(R"({"w":{"dtype":"F32","shape":[64],"data_offsets":[0,256]}})", 256));
  unsetenv("QKV_MEMORY_LIMIT");
  // 64 floats held as floats, plus the 256 raw bytes of the one tensor being converted.
  EXPECT_MENTIONS(message, "reading the tensors needs 512 bytes");
  EXPECT_MENTIONS(message, "only 100 bytes");
}

}  // namespace
}  // namespace qkv::io
