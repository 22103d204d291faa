// TensorView<T>: a non-owning, trivially copyable view of a contiguous row-major tensor.
// Every op takes views, so ops work the same on arena slices, owned tensors and mapped files.
// ConstTensorView<T> is TensorView<const T>; a TensorView<T> converts to it implicitly.
#pragma once

#include <cstdint>
#include <type_traits>

#include "qkv/core/check.h"
#include "qkv/core/shape.h"

namespace qkv {

template <typename T>
class TensorView {
 public:
  TensorView() = default;
  TensorView(T* data, Shape shape) : data_(data), shape_(shape) {}

  // A view of T is also a view of const T.
  template <typename U,
            typename = std::enable_if_t<std::is_same_v<const U, T> && !std::is_same_v<U, T>>>
  TensorView(const TensorView<U>& other)  // NOLINT(google-explicit-constructor)
      : data_(other.data()), shape_(other.shape()) {}

  T* data() const { return data_; }
  const Shape& shape() const { return shape_; }
  int rank() const { return shape_.rank(); }
  int64_t dim(int i) const { return shape_[i]; }
  int64_t size() const { return shape_.NumElements(); }
  bool empty() const { return data_ == nullptr; }

  T& operator[](int64_t flat_index) const {
    QKV_DCHECK(flat_index >= 0 && flat_index < size(), "index ", flat_index, " out of ", size());
    return data_[flat_index];
  }
  T* begin() const { return data_; }
  T* end() const { return data_ + size(); }

  // The same elements under another shape with the same element count.
  TensorView Reshape(Shape new_shape) const {
    QKV_CHECK(new_shape.NumElements() == size(), "cannot reshape ", shape_.ToString(), " to ",
              new_shape.ToString());
    return TensorView(data_, new_shape);
  }

 private:
  T* data_ = nullptr;
  Shape shape_;
};

template <typename T>
using ConstTensorView = TensorView<const T>;

}  // namespace qkv
