// Shape: the extents of a row-major tensor of rank 0..4. The last dimension is contiguous.
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <string>

namespace qkv {

inline constexpr int kMaxRank = 4;

class Shape {
 public:
  Shape() = default;
  // Throws qkv::Error for more than kMaxRank dimensions or a negative extent.
  Shape(std::initializer_list<int64_t> dims);

  int rank() const { return rank_; }
  // Dimension i; negative i counts from the end (-1 is the last dimension).
  int64_t operator[](int i) const;
  int64_t NumElements() const;
  // "[2, 3, 4]"
  std::string ToString() const;

  bool operator==(const Shape& other) const;

 private:
  std::array<int64_t, kMaxRank> dims_{};
  int rank_ = 0;
};

}  // namespace qkv
