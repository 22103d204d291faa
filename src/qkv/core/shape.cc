#include "qkv/core/shape.h"

#include "qkv/core/check.h"
#include "qkv/core/checked.h"

namespace qkv {

Shape::Shape(std::initializer_list<int64_t> dims) {
  QKV_CHECK(dims.size() <= kMaxRank, "a shape has at most ", kMaxRank, " dimensions, got ",
            dims.size());
  for (int64_t extent : dims) {
    QKV_CHECK(extent >= 0, "shape extents must be >= 0, got ", extent);
    dims_[rank_++] = extent;
  }
  // A shape whose element count cannot be represented is refused here, where its extents are
  // still at hand for the message, rather than wherever the count is first used.
  int64_t count = 1;
  for (int i = 0; i < rank_; ++i) count = CheckedMul(count, dims_[i], "shape element count");
}

int64_t Shape::operator[](int i) const {
  const int index = i < 0 ? rank_ + i : i;
  QKV_CHECK(index >= 0 && index < rank_, "dimension ", i, " is out of range for shape ",
            ToString());
  return dims_[index];
}

int64_t Shape::NumElements() const {
  int64_t count = 1;
  for (int i = 0; i < rank_; ++i) count = CheckedMul(count, dims_[i], "shape element count");
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
