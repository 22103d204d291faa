// Element types of tensors as the kernels see them: what a matrix product reads and writes.
#pragma once

#include <cstdint>
#include <string_view>

namespace qkv {

enum class DataType { kFloat32, kFloat64, kBFloat16 };

constexpr std::string_view DataTypeName(DataType type) {
  switch (type) {
    case DataType::kFloat32:
      return "float32";
    case DataType::kFloat64:
      return "float64";
    case DataType::kBFloat16:
      return "bfloat16";
  }
  return "unknown";
}

template <typename T>
constexpr DataType DataTypeOf();
template <>
constexpr DataType DataTypeOf<float>() {
  return DataType::kFloat32;
}
template <>
constexpr DataType DataTypeOf<double>() {
  return DataType::kFloat64;
}

}  // namespace qkv
