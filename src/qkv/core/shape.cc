#include "qkv/core/shape.h"

#include "qkv/core/check.h"

namespace qkv {

Shape::Shape(std::initializer_list<int64_t> dims) {
  QKV_CHECK(dims.size() <= kMaxRank, "a shape has at most ", kMaxRank, " dimensions, got ",
            dims.size());
  for (int64_t extent : dims) {
    QKV_CHECK(extent >= 0, "shape extents must be >= 0, got ", extent);
    dims_[rank_++] = extent;
  }
}

int64_t Shape::operator[](int i) const {
  const int index = i < 0 ? rank_ + i : i;
  QKV_CHECK(index >= 0 && index < rank_, "dimension ", i, " is out of range for shape ",
            ToString());
  return dims_[index];
}

int64_t Shape::NumElements() const {
  int64_t count = 1;
  for (int i = 0; i < rank_; ++i) {
    // Sizes come from user-chosen flags (batch x context x vocabulary, ...): an overflow must
    // be an error, not a small wrapped count that an arena then happily hands out.
    QKV_CHECK(!__builtin_mul_overflow(count, dims_[i], &count), "shape ", ToString(),
              " has more than 2^63 elements");
  }
  return count;
}

std::string Shape::ToString() const {
  std::string text = "[";
  for (int i = 0; i < rank_; ++i) {
    if (i > 0) text += ", ";
    text += std::to_string(dims_[i]);
  }
  return text + "]";
}

bool Shape::operator==(const Shape& other) const {
  if (rank_ != other.rank_) return false;
  for (int i = 0; i < rank_; ++i) {
    if (dims_[i] != other.dims_[i]) return false;
  }
  return true;
}

}  // namespace qkv
