// Safetensors files written by qkv and read back, files built byte by byte from the format's
// description (F16, BF16, opaque dtypes), and the malformed files not covered by
// safetensors_validation_test.cc (which pins overflow, out-of-range and overlapping offsets).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "qkv/core/check.h"
#include "qkv/io/safetensors.h"
#include "qkv/io/safetensors_test_support.h"

namespace qkv::io {
namespace {

namespace fs = std::filesystem;

// The format, as https://github.com/huggingface/safetensors describes it: 8 bytes of header
// length (little-endian u64), the JSON header, then the data section.
std::string FileWith(const std::string& header, const std::string& data) {
  std::string bytes;
  const uint64_t length = header.size();
  for (int i = 0; i < 8; ++i) bytes += static_cast<char>((length >> (8 * i)) & 0xff);
  return bytes + header + data;
}

// Little-endian bytes of 16-bit values, as the data section stores them.
std::string Le16(const std::vector<uint16_t>& values) {
  std::string bytes;
  for (uint16_t value : values) {
    bytes += static_cast<char>(value & 0xff);
    bytes += static_cast<char>(value >> 8);
  }
  return bytes;
}

template <typename T>
std::string RawBytes(const std::vector<T>& values) {
  std::string bytes(values.size() * sizeof(T), '\0');
  if (!values.empty()) std::memcpy(bytes.data(), values.data(), bytes.size());
  return bytes;
}

uint32_t BitsOf(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  return bits;
}

// NamedTensor has read-only fields too; these set only what a writer sets.
NamedTensor F32Tensor(const std::string& name, std::vector<int64_t> shape,
                      std::vector<float> values) {
  NamedTensor tensor;
  tensor.name = name;
  tensor.shape = std::move(shape);
  tensor.f32 = std::move(values);
  return tensor;
}

NamedTensor I32Tensor(const std::string& name, std::vector<int64_t> shape,
                      std::vector<int32_t> values) {
  NamedTensor tensor;
  tensor.name = name;
  tensor.shape = std::move(shape);
  tensor.i32 = std::move(values);
  tensor.is_int32 = true;
  return tensor;
}

using test_support::ErrorOf;

// IEEE half precision from its fields, by the definition (not bit manipulation as in the
// reader): (-1)^s * 2^(e - 15) * (1 + m / 1024), subnormals 2^-14 * m / 1024, e = 31 inf/NaN.
double HalfByDefinition(uint16_t bits) {
  const int sign = bits >> 15, exponent = (bits >> 10) & 0x1f, mantissa = bits & 0x3ff;
  double magnitude;
  if (exponent == 31) {
    magnitude = mantissa == 0 ? std::numeric_limits<double>::infinity()
                              : std::numeric_limits<double>::quiet_NaN();
  } else if (exponent == 0) {
    magnitude = std::ldexp(mantissa / 1024.0, -14);
  } else {
    magnitude = std::ldexp(1.0 + mantissa / 1024.0, exponent - 15);
  }
  return sign ? -magnitude : magnitude;
}

// bfloat16 the same way: 8 exponent bits (bias 127) and 7 mantissa bits.
double Bf16ByDefinition(uint16_t bits) {
  const int sign = bits >> 15, exponent = (bits >> 7) & 0xff, mantissa = bits & 0x7f;
  double magnitude;
  if (exponent == 255) {
    magnitude = mantissa == 0 ? std::numeric_limits<double>::infinity()
                              : std::numeric_limits<double>::quiet_NaN();
  } else if (exponent == 0) {
    magnitude = std::ldexp(mantissa / 128.0, -126);
  } else {
    magnitude = std::ldexp(1.0 + mantissa / 128.0, exponent - 127);
  }
  return sign ? -magnitude : magnitude;
}

// Both are exact in float, so the comparison is exact, with NaN matching NaN and -0 != +0.
void ExpectSameValue(float actual, double expected, uint16_t bits) {
  if (std::isnan(expected)) {
    EXPECT_TRUE(std::isnan(actual)) << "pattern 0x" << std::hex << bits;
  } else {
    EXPECT_EQ(actual, expected) << "pattern 0x" << std::hex << bits;
    EXPECT_EQ(std::signbit(actual), std::signbit(expected)) << "pattern 0x" << std::hex << bits;
  }
}

class SafetensorsRoundTripTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("qkv_safetensors_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string PathOf(const std::string& name) const { return (dir_ / name).string(); }
  static std::string Slurp(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream bytes;
    bytes << in.rdbuf();
    return bytes.str();
  }
  static void Spit(const std::string& path, const std::string& bytes) {
    std::ofstream out(path, std::ios::binary);
    out << bytes;
  }

  fs::path dir_;
};

// F32 values whose bits a lossy path would change: signed zero, infinities, NaN with a
// payload, the smallest subnormal, the largest finite value.
std::vector<float> AwkwardFloats() {
  const uint32_t nan_with_payload = 0x7fc12345u;
  float nan;
  std::memcpy(&nan, &nan_with_payload, sizeof(nan));
  return {0.0f,
          -0.0f,
          1.0f,
          -3.25f,
          std::numeric_limits<float>::infinity(),
          -std::numeric_limits<float>::infinity(),
          nan,
          std::numeric_limits<float>::denorm_min(),
          std::numeric_limits<float>::max(),
          0.1f};
}

TEST_F(SafetensorsRoundTripTest, F32AndI32TensorsComeBackBitForBitInOrder) {
  SafetensorsFile file;
  NamedTensor weights = F32Tensor("layer.weight", {2, 5}, AwkwardFloats());
  NamedTensor ids = I32Tensor(
      "ids", {3}, {std::numeric_limits<int32_t>::min(), -1, std::numeric_limits<int32_t>::max()});
  NamedTensor scalar = F32Tensor("scalar", {}, {42.5f});
  NamedTensor empty = F32Tensor("empty", {0, 4}, {});
  file.tensors.push_back(std::move(weights));
  file.tensors.push_back(std::move(ids));
  file.tensors.push_back(std::move(scalar));
  // Last, so its empty span [56, 56) shares its start with no other tensor and the order
  // read back is unambiguous.
  file.tensors.push_back(std::move(empty));
  const std::string path = PathOf("model.safetensors");
  WriteSafetensors(path, file);

  const SafetensorsFile read = ReadSafetensors(path);
  ASSERT_EQ(read.tensors.size(), 4u);
  // Tensors come back in data-offset order, which is the order they were written in.
  for (size_t i = 0; i < 4; ++i) {
    const NamedTensor& expected = file.tensors[i];
    const NamedTensor& actual = read.tensors[i];
    EXPECT_EQ(actual.name, expected.name);
    EXPECT_EQ(actual.shape, expected.shape) << actual.name;
    EXPECT_EQ(actual.is_int32, expected.is_int32) << actual.name;
    EXPECT_EQ(actual.stored_dtype, expected.is_int32 ? "I32" : "F32") << actual.name;
    EXPECT_TRUE(actual.opaque_dtype.empty()) << actual.name;
    EXPECT_EQ(actual.i32, expected.i32) << actual.name;
    ASSERT_EQ(actual.f32.size(), expected.f32.size()) << actual.name;
    for (size_t j = 0; j < actual.f32.size(); ++j) {
      EXPECT_EQ(BitsOf(actual.f32[j]), BitsOf(expected.f32[j])) << actual.name << "[" << j << "]";
    }
  }
  EXPECT_TRUE(read.metadata.empty());
  // The same bytes parse the same from memory.
  const SafetensorsFile parsed = ParseSafetensors(Slurp(path), path);
  ASSERT_EQ(parsed.tensors.size(), 4u);
  EXPECT_EQ(parsed.Get("ids").i32, file.tensors[1].i32);
}

TEST_F(SafetensorsRoundTripTest, TheWrittenBytesFollowTheFormat) {
  SafetensorsFile file;
  file.tensors.push_back(F32Tensor("a", {3}, {1.0f, 2.0f, 3.0f}));
  file.tensors.push_back(I32Tensor("b", {1, 2}, {7, -7}));
  file.metadata["format"] = "pt";
  const std::string path = PathOf("layout.safetensors");
  WriteSafetensors(path, file);
  const std::string bytes = Slurp(path);
  ASSERT_GE(bytes.size(), 8u);
  uint64_t length = 0;
  for (int i = 7; i >= 0; --i) length = (length << 8) | static_cast<unsigned char>(bytes[i]);
  // The reference writer pads the header with spaces so the data starts 8-byte aligned.
  EXPECT_EQ((8 + length) % 8, 0u);
  ASSERT_EQ(bytes.size(), 8 + length + 20);
  const nlohmann::json header = nlohmann::json::parse(bytes.substr(8, length));
  EXPECT_EQ(header["a"]["dtype"], "F32");
  EXPECT_EQ(header["a"]["shape"], nlohmann::json({3}));
  EXPECT_EQ(header["a"]["data_offsets"], nlohmann::json({0, 12}));
  EXPECT_EQ(header["b"]["dtype"], "I32");
  EXPECT_EQ(header["b"]["shape"], nlohmann::json({1, 2}));
  EXPECT_EQ(header["b"]["data_offsets"], nlohmann::json({12, 20}));
  EXPECT_EQ(header["__metadata__"], nlohmann::json({{"format", "pt"}}));
  // Little-endian data: 1.0f is 0x3f800000, -7 is 0xfffffff9.
  const std::string data = bytes.substr(8 + length);
  EXPECT_EQ(data.substr(0, 4), std::string("\x00\x00\x80\x3f", 4));
  EXPECT_EQ(data.substr(16, 4), std::string("\xf9\xff\xff\xff", 4));
  // No temporary file is left beside the target.
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), 1);
}

// SetFloatDtype(BF16): float tensors are written as bfloat16, rounded to nearest even (the bit
// patterns below worked out by hand from the float32 bits), integers stay I32.
TEST_F(SafetensorsRoundTripTest, FloatTensorsMarkedBf16AreWrittenRoundedToNearestEven) {
  auto from_bits = [](uint32_t bits) {
    float value;
    std::memcpy(&value, &bits, sizeof(value));
    return value;
  };
  SafetensorsFile file;
  // 0x3f808000 is the tie between 0x3f80 and 0x3f81 (to the even 0x3f80); 0x3f818000 the tie
  // between 0x3f81 and 0x3f82 (to 0x3f82); 0x3dcccccd (0.1f) rounds up; FLT_MAX overflows to
  // infinity; the smallest subnormal rounds to zero; NaN stays a quiet NaN with its top bits.
  const std::vector<float> values = AwkwardFloats();  // 0, -0, 1, -3.25, inf, -inf, NaN, ...
  std::vector<float> all = values;
  all.push_back(from_bits(0x3f808000u));
  all.push_back(from_bits(0x3f818000u));
  file.tensors.push_back(F32Tensor("w", {12}, all));
  file.tensors.push_back(I32Tensor("ids", {2}, {-1, 70000}));
  SetFloatDtype(file, "BF16");
  const std::string path = PathOf("bf16.safetensors");
  WriteSafetensors(path, file);

  const std::string bytes = Slurp(path);
  uint64_t length = 0;
  for (int i = 7; i >= 0; --i) length = (length << 8) | static_cast<unsigned char>(bytes[i]);
  const nlohmann::json header = nlohmann::json::parse(bytes.substr(8, length));
  EXPECT_EQ(header["w"]["dtype"], "BF16");
  EXPECT_EQ(header["w"]["data_offsets"], nlohmann::json({0, 24}));
  EXPECT_EQ(header["ids"]["dtype"], "I32");
  EXPECT_EQ(header["ids"]["data_offsets"], nlohmann::json({24, 32}));
  const std::string expected = Le16({0x0000, 0x8000, 0x3f80, 0xc050, 0x7f80, 0xff80, 0x7fc1, 0x0000,
                                     0x7f80, 0x3dcd, 0x3f80, 0x3f82});
  EXPECT_EQ(bytes.substr(8 + length, 24), expected);

  const SafetensorsFile read = ReadSafetensors(path);
  EXPECT_EQ(read.Get("w").stored_dtype, "BF16");
  EXPECT_EQ(read.Get("ids").i32, (std::vector<int32_t>{-1, 70000}));
  // A file read from BF16 and written again stays BF16, with the same bytes.
  WriteSafetensors(PathOf("again.safetensors"), read);
  EXPECT_EQ(Slurp(PathOf("again.safetensors")), bytes);

  SetFloatDtype(file, "F32");
  WriteSafetensors(path, file);
  EXPECT_EQ(BitsOf(ReadSafetensors(path).Get("w").f32[9]), 0x3dcccccdu);  // 0.1f, unrounded
  try {
    SetFloatDtype(file, "F16");
    ADD_FAILURE() << "F16 is not a dtype qkv writes";
  } catch (const Error& error) {
    EXPECT_MENTIONS(std::string(error.what()), "F16");
  }
}

TEST_F(SafetensorsRoundTripTest, MetadataRoundTripsVerbatim) {
  SafetensorsFile file;
  file.metadata = {{"format", "pt"},
                   {"empty", ""},
                   {"quotes \"and\" \\backslashes\\", "line\nbreak\ttab"},
                   {"unicode", "\xc3\xa9t\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"},
                   {"json", R"({"nested": [1, 2]})"}};
  file.tensors.push_back(F32Tensor("x", {1}, {1.0f}));
  const std::string path = PathOf("meta.safetensors");
  WriteSafetensors(path, file);
  EXPECT_EQ(ReadSafetensors(path).metadata, file.metadata);
  // Metadata alone, with no tensors, is a valid file too.
  SafetensorsFile only_metadata;
  only_metadata.metadata["k"] = "v";
  WriteSafetensors(path, only_metadata);
  const SafetensorsFile read = ReadSafetensors(path);
  EXPECT_TRUE(read.tensors.empty());
  EXPECT_EQ(read.metadata, only_metadata.metadata);
}

TEST_F(SafetensorsRoundTripTest, RewritingAFileReplacesIt) {
  const std::string path = PathOf("w.safetensors");
  SafetensorsFile first;
  first.tensors.push_back(F32Tensor("w", {2}, {1.0f, 2.0f}));
  WriteSafetensors(path, first);
  SafetensorsFile second;
  second.tensors.push_back(I32Tensor("v", {1}, {5}));
  WriteSafetensors(path, second);
  const SafetensorsFile read = ReadSafetensors(path);
  ASSERT_EQ(read.tensors.size(), 1u);
  EXPECT_EQ(read.tensors[0].name, "v");
  EXPECT_EQ(read.tensors[0].i32, std::vector<int32_t>{5});
}

TEST(SafetensorsReadTest, KnownF16AndBf16PatternsDecodeToTheirValues) {
  // Hand-derived from the field layouts: F16 0x3c00 = 2^0 = 1; 0xc000 = -2^1; 0x3555 =
  // 2^-2 * (1 + 341/1024) = 1365/4096; 0x7bff = 2^15 * (2047/1024) = 65504 (largest);
  // 0x0001 = 2^-24 (smallest subnormal); 0x0400 = 2^-14 (smallest normal). BF16 0x3f80 = 1;
  // 0x4049 = 2 * (1 + 73/128) = 3.140625 (pi truncated); 0x0001 = 2^-133.
  const std::vector<uint16_t> half = {0x3c00, 0xc000, 0x3555, 0x7bff, 0x0001, 0x0400};
  const std::vector<uint16_t> bf16 = {0x3f80, 0x4049, 0x0001};
  const std::string bytes = FileWith(R"({"h":{"dtype":"F16","shape":[2,3],"data_offsets":[0,12]},)"
                                     R"("b":{"dtype":"BF16","shape":[3],"data_offsets":[12,18]}})",
                                     Le16(half) + Le16(bf16));
  const SafetensorsFile file = ParseSafetensors(bytes, "hand-made");
  const std::vector<float> expected_half = {
      1.0f, -2.0f, 1365.0f / 4096.0f, 65504.0f, std::ldexp(1.0f, -24), std::ldexp(1.0f, -14)};
  const std::vector<float> expected_bf16 = {1.0f, 3.140625f, std::ldexp(1.0f, -133)};
  EXPECT_EQ(file.Get("h").f32, expected_half);
  EXPECT_EQ(file.Get("h").stored_dtype, "F16");
  EXPECT_EQ(file.Get("h").shape, (std::vector<int64_t>{2, 3}));
  EXPECT_FALSE(file.Get("h").is_int32);
  EXPECT_EQ(file.Get("b").f32, expected_bf16);
  EXPECT_EQ(file.Get("b").stored_dtype, "BF16");
}

TEST(SafetensorsReadTest, EveryF16AndBf16BitPatternDecodesAsItsDefinitionSays) {
  // All 65536 patterns of each, in one tensor each, against the field-by-field definition.
  std::vector<uint16_t> patterns(65536);
  for (uint32_t i = 0; i < 65536; ++i) patterns[i] = static_cast<uint16_t>(i);
  const std::string data = Le16(patterns);
  const SafetensorsFile file =
      ParseSafetensors(FileWith(R"({"h":{"dtype":"F16","shape":[65536],"data_offsets":[0,131072]},)"
                                R"("b":{"dtype":"BF16","shape":[256,256],)"
                                R"("data_offsets":[131072,262144]}})",
                                data + data),
                       "all patterns");
  const std::vector<float>& half = file.Get("h").f32;
  const std::vector<float>& bf16 = file.Get("b").f32;
  ASSERT_EQ(half.size(), 65536u);
  ASSERT_EQ(bf16.size(), 65536u);
  for (uint32_t i = 0; i < 65536; ++i) {
    const uint16_t bits = static_cast<uint16_t>(i);
    ExpectSameValue(half[i], HalfByDefinition(bits), bits);
    ExpectSameValue(bf16[i], Bf16ByDefinition(bits), bits);
  }
}

TEST_F(SafetensorsRoundTripTest, MixedDtypesWithUnalignedOffsetsReadFromDisk) {
  // The format does not require aligned offsets: an F16 tensor of 3 values (6 bytes) followed
  // by F32 and I32 tensors at byte 6 and 10. Read through the file path, not the buffer.
  const std::string data = Le16({0x3c00, 0x4000, 0x4200}) + RawBytes(std::vector<float>{-0.5f}) +
                           RawBytes(std::vector<int32_t>{123456789});
  const std::string path = PathOf("mixed.safetensors");
  Spit(path, FileWith(R"({"i":{"dtype":"I32","shape":[1],"data_offsets":[10,14]},)"
                      R"("f":{"dtype":"F32","shape":[1],"data_offsets":[6,10]},)"
                      R"("__metadata__":{"source":"by hand"},)"
                      R"("h":{"dtype":"F16","shape":[3],"data_offsets":[0,6]}}   )",
                      data));
  const SafetensorsFile file = ReadSafetensors(path);
  ASSERT_EQ(file.tensors.size(), 3u);
  // In data-offset order, whatever the order of the header.
  EXPECT_EQ(file.tensors[0].name, "h");
  EXPECT_EQ(file.tensors[1].name, "f");
  EXPECT_EQ(file.tensors[2].name, "i");
  // F16 0x4000 = 2, 0x4200 = 2 * (1 + 512/1024) = 3.
  EXPECT_EQ(file.Get("h").f32, (std::vector<float>{1.0f, 2.0f, 3.0f}));
  EXPECT_EQ(file.Get("f").f32, std::vector<float>{-0.5f});
  EXPECT_TRUE(file.Get("i").is_int32);
  EXPECT_EQ(file.Get("i").i32, std::vector<int32_t>{123456789});
  EXPECT_EQ(file.metadata, (std::map<std::string, std::string>{{"source", "by hand"}}));
}

TEST(SafetensorsReadTest, OtherDtypesOfTheFormatAreOpaqueWithTheirShape) {
  // Each of the format's dtypes qkv does not compute with, with its element size in bytes.
  const std::map<std::string, int> sizes = {{"BOOL", 1},    {"U8", 1},  {"I8", 1},  {"F8_E4M3", 1},
                                            {"F8_E5M2", 1}, {"I16", 2}, {"U16", 2}, {"U32", 4},
                                            {"I64", 8},     {"U64", 8}, {"F64", 8}};
  for (const auto& [dtype, size] : sizes) {
    const int bytes = 6 * size;
    const std::string header = R"({"t":{"dtype":")" + dtype +
                               R"(","shape":[2,3],"data_offsets":[0,)" + std::to_string(bytes) +
                               "]}}";
    const SafetensorsFile file =
        ParseSafetensors(FileWith(header, std::string(static_cast<size_t>(bytes), '\x01')), dtype);
    const NamedTensor& tensor = file.Get("t");
    EXPECT_EQ(tensor.opaque_dtype, dtype);
    EXPECT_EQ(tensor.stored_dtype, dtype);
    EXPECT_EQ(tensor.shape, (std::vector<int64_t>{2, 3})) << dtype;
    EXPECT_TRUE(tensor.f32.empty() && tensor.i32.empty()) << dtype << ": values were loaded";
    // The element size is still checked: one byte fewer than 6 elements is refused.
    const std::string short_header = R"({"t":{"dtype":")" + dtype +
                                     R"(","shape":[2,3],"data_offsets":[0,)" +
                                     std::to_string(bytes - size) + "]}}";
    EXPECT_MENTIONS(ErrorOf(FileWith(short_header, std::string(bytes - size, '\0'))),
                    "has shape [2, 3] (6 elements of " + std::to_string(size) + " bytes)");
  }
}

TEST(SafetensorsReadTest, UnknownAndMisspelledDtypesAreRefusedByName) {
  // dtype names are case-sensitive in the format; "F4" and "Q8_0" are not safetensors dtypes.
  for (const std::string dtype : {"f32", "FLOAT", "F4", "Q8_0", ""}) {
    const std::string message =
        ErrorOf(FileWith(R"({"t":{"dtype":")" + dtype + R"(","shape":[1],"data_offsets":[0,4]}})",
                         std::string(4, '\0')));
    EXPECT_MENTIONS(message, "tensor 't' has unknown dtype " + dtype);
  }
}

TEST_F(SafetensorsRoundTripTest, TruncatedFilesAreRefusedAtEveryLength) {
  SafetensorsFile file;
  file.tensors.push_back(F32Tensor("a", {4}, {1, 2, 3, 4}));
  file.tensors.push_back(I32Tensor("b", {2}, {5, 6}));
  const std::string path = PathOf("whole.safetensors");
  WriteSafetensors(path, file);
  const std::string whole = Slurp(path);
  // The same on disk: a file cut inside its data.
  Spit(PathOf("cut.safetensors"), whole.substr(0, whole.size() - 4));
  EXPECT_THROW(ReadSafetensors(PathOf("cut.safetensors")), Error);
  ASSERT_NO_THROW(ParseSafetensors(whole, "whole"));
  // Every proper prefix: shorter than the length field, inside the header, or inside the data.
  for (size_t length = 0; length < whole.size(); ++length) {
    EXPECT_THROW(ParseSafetensors(whole.substr(0, length), "prefix"), Error) << length << " bytes";
  }
  EXPECT_MENTIONS(ErrorOf(whole.substr(0, 7)), "7 bytes, shorter than the 8-byte header length");
  EXPECT_MENTIONS(ErrorOf(whole.substr(0, 20)), "does not fit in the file of 20 bytes");
  EXPECT_MENTIONS(ErrorOf(whole.substr(0, whole.size() - 1)),
                  "tensor 'b' spans bytes [16, 24) but the data section has 23 bytes");
}

TEST(SafetensorsReadTest, HeaderLengthsPastTheEndAreRefused) {
  std::string bytes = FileWith("{}", "");
  ASSERT_NO_THROW(ParseSafetensors(bytes, "empty header"));
  // Length 3 with 2 header bytes; then the largest u64 (no wrap-around in 8 + length).
  bytes[0] = 3;
  EXPECT_MENTIONS(ErrorOf(bytes), "header length 3 does not fit in the file of 10 bytes");
  std::string huge = std::string(8, '\xff') + "{}";
  EXPECT_MENTIONS(ErrorOf(huge), "header length 18446744073709551615 does not fit");
}

TEST(SafetensorsReadTest, HolesAndUncoveredTrailingBytesAreRefused) {
  // The format requires the tensors to cover the data section exactly.
  std::string message =
      ErrorOf(FileWith(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                       R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                       std::string(12, '\0')));
  EXPECT_MENTIONS(message, "tensor 'b' starts at byte 8 but the previous tensor ends at 4");
  message = ErrorOf(
      FileWith(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", std::string(8, '\0')));
  EXPECT_MENTIONS(message, "tensor 'a' starts at byte 4 but the previous tensor ends at 0");
  message = ErrorOf(
      FileWith(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", std::string(12, '\0')));
  EXPECT_MENTIONS(message, "the data section has 12 bytes but the tensors cover 8");
  // Two tensors on the same bytes.
  message = ErrorOf(FileWith(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                             R"("b":{"dtype":"I32","shape":[1],"data_offsets":[0,4]}})",
                             std::string(4, '\0')));
  EXPECT_MENTIONS(message, "starts at byte 0 but the previous tensor ends at 4");
}

TEST(SafetensorsReadTest, ShapesThatDisagreeWithTheByteCountAreRefused) {
  std::string message = ErrorOf(
      FileWith(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", std::string(8, '\0')));
  EXPECT_MENTIONS(message, "tensor 'a' has shape [3] (3 elements of 4 bytes) but spans 8 bytes");
  message = ErrorOf(FileWith(R"({"a":{"dtype":"I32","shape":[2,0],"data_offsets":[0,4]}})",
                             std::string(4, '\0')));
  EXPECT_MENTIONS(message, "tensor 'a' has shape [2, 0] (0 elements of 4 bytes) but spans 4 bytes");
  // A scalar (shape []) is one element.
  message = ErrorOf(
      FileWith(R"({"a":{"dtype":"F32","shape":[],"data_offsets":[0,8]}})", std::string(8, '\0')));
  EXPECT_MENTIONS(message, "tensor 'a' has shape [] (1 elements of 4 bytes) but spans 8 bytes");
  message = ErrorOf(
      FileWith(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", std::string(4, '\0')));
  EXPECT_MENTIONS(message, "tensor 'a' has a bad shape entry -1");
  message = ErrorOf(FileWith(R"({"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})",
                             std::string(4, '\0')));
  EXPECT_MENTIONS(message, "tensor 'a' has a bad shape entry 1.5");
}

TEST(SafetensorsReadTest, MalformedHeadersAreRefused) {
  const std::string four(4, '\0');
  EXPECT_MENTIONS(ErrorOf(FileWith("{not json", "")), "the header is not valid JSON");
  EXPECT_MENTIONS(ErrorOf(FileWith("[1, 2]", "")), "the header must be a JSON object");
  EXPECT_MENTIONS(ErrorOf(FileWith(R"({"a":{"dtype":"F32","shape":[1]}})", four)),
                  "tensor 'a' needs dtype, shape and data_offsets");
  EXPECT_MENTIONS(ErrorOf(FileWith(R"({"a":[1]})", four)),
                  "tensor 'a' needs dtype, shape and data_offsets");
  EXPECT_MENTIONS(ErrorOf(FileWith(R"({"a":{"dtype":4,"shape":[1],"data_offsets":[0,4]}})", four)),
                  "tensor 'a' has malformed dtype, shape or data_offsets");
  EXPECT_MENTIONS(
      ErrorOf(FileWith(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}})", four)),
      "tensor 'a' has malformed dtype, shape or data_offsets");
  EXPECT_MENTIONS(
      ErrorOf(FileWith(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,"4"]}})", four)),
      "tensor 'a' has a bad data offset \"4\"");
  EXPECT_MENTIONS(ErrorOf(FileWith(R"({"__metadata__":["x"]})", "")),
                  "__metadata__ must be an object of strings");
  EXPECT_MENTIONS(ErrorOf(FileWith(R"({"__metadata__":{"epoch":3}})", "")),
                  "__metadata__ value of 'epoch' is not a string");
}

TEST_F(SafetensorsRoundTripTest, MissingFileIsNamed) {
  const std::string path = PathOf("absent.safetensors");
  try {
    ReadSafetensors(path);
    ADD_FAILURE() << "reading a missing file succeeded";
  } catch (const Error& error) {
    EXPECT_MENTIONS(std::string(error.what()), path + ": cannot open");
  }
}

TEST_F(SafetensorsRoundTripTest, BadTensorsAreRefusedBeforeAnythingIsWritten) {
  const std::string path = PathOf("never.safetensors");
  const auto expect_refused = [&](const SafetensorsFile& file, const std::string& needle) {
    try {
      WriteSafetensors(path, file);
      ADD_FAILURE() << "wrote a file that should be refused (" << needle << ")";
    } catch (const Error& error) {
      EXPECT_MENTIONS(std::string(error.what()), needle);
    }
    EXPECT_FALSE(fs::exists(path));
    EXPECT_TRUE(fs::is_empty(dir_)) << "a temporary file was left behind";
  };
  SafetensorsFile duplicate;
  duplicate.tensors.push_back(F32Tensor("w", {1}, {1.0f}));
  duplicate.tensors.push_back(F32Tensor("w", {1}, {2.0f}));
  expect_refused(duplicate, "duplicate or reserved tensor name 'w'");
  SafetensorsFile reserved;
  reserved.tensors.push_back(F32Tensor("__metadata__", {1}, {1.0f}));
  expect_refused(reserved, "duplicate or reserved tensor name '__metadata__'");
  SafetensorsFile too_few;
  too_few.tensors.push_back(F32Tensor("w", {2, 2}, {1.0f, 2.0f, 3.0f}));
  expect_refused(too_few, "tensor 'w' has 3 values for shape of 4 elements");
  // An I32 tensor's values are in i32; values left in f32 do not count.
  SafetensorsFile wrong_field;
  NamedTensor wrong_field_tensor = F32Tensor("n", {1}, {1.0f});
  wrong_field_tensor.is_int32 = true;
  wrong_field.tensors.push_back(std::move(wrong_field_tensor));
  expect_refused(wrong_field, "tensor 'n' has 0 values for shape of 1 elements");

  SafetensorsFile fine;
  fine.tensors.push_back(F32Tensor("w", {1}, {1.0f}));
  EXPECT_THROW(WriteSafetensors(PathOf("no/such/dir/x.safetensors"), fine), Error);
}

TEST(SafetensorsReadTest, GetNamesTheAvailableTensors) {
  const SafetensorsFile file =
      ParseSafetensors(FileWith(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                                R"("b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                                std::string(8, '\0')),
                       "get");
  try {
    file.Get("c");
    ADD_FAILURE() << "Get of an absent tensor succeeded";
  } catch (const Error& error) {
    EXPECT_MENTIONS(std::string(error.what()), "tensor 'c' is not in the file (it has: a, b)");
  }
  EXPECT_EQ(ShapeText({}), "[]");
  EXPECT_EQ(ShapeText({768, 2304}), "[768, 2304]");
}

}  // namespace
}  // namespace qkv::io
