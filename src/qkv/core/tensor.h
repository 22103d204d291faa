// Tensor<T>: an owning, move-only, zero-initialised row-major tensor. Copying is explicit
// (Clone) so that its cost is visible. Ops never take a Tensor: pass view().
#pragma once

#include <cstring>

#include "qkv/core/buffer.h"
#include "qkv/core/tensor_view.h"

namespace qkv {

template <typename T>
class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(Shape shape, AlignedBuffer::Fill fill = AlignedBuffer::Fill::kZeros)
      : buffer_(static_cast<size_t>(shape.NumElements()) * sizeof(T), fill), shape_(shape) {}

  Tensor(Tensor&&) noexcept = default;
  Tensor& operator=(Tensor&&) noexcept = default;
  Tensor(const Tensor&) = delete;
  Tensor& operator=(const Tensor&) = delete;

  Tensor Clone() const {
    Tensor copy(shape_);
    if (size() > 0) std::memcpy(copy.data(), data(), static_cast<size_t>(size()) * sizeof(T));
    return copy;
  }

  T* data() { return static_cast<T*>(buffer_.data()); }
  const T* data() const { return static_cast<const T*>(buffer_.data()); }
  const Shape& shape() const { return shape_; }
  int64_t dim(int i) const { return shape_[i]; }
  int64_t size() const { return shape_.NumElements(); }

  T& operator[](int64_t flat_index) { return view()[flat_index]; }
  const T& operator[](int64_t flat_index) const { return view()[flat_index]; }

  TensorView<T> view() { return TensorView<T>(data(), shape_); }
  ConstTensorView<T> view() const { return ConstTensorView<T>(data(), shape_); }

 private:
  AlignedBuffer buffer_;
  Shape shape_;
};

}  // namespace qkv
