// Arena: one aligned allocation sliced into tensor views by bumping an offset, as llm.c does
// for parameters, gradients and activations. Nothing is freed individually; Reset() or
// ResetTo(mark) releases everything allocated after a point.
//
// Sizing is done by running the same allocation code twice: first against
// Arena::MeasureOnly(), which hands out null views and only counts bytes, then against a real
// arena of the measured capacity. So sizes are never kept in a second, hand-maintained list.
//
//   Arena measure = Arena::MeasureOnly();
//   AllocateActivations(measure, config);
//   Arena arena(measure.used_bytes());
//   Activations acts = AllocateActivations(arena, config);
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "qkv/core/buffer.h"
#include "qkv/core/check.h"
#include "qkv/core/checked.h"
#include "qkv/core/tensor_view.h"

namespace qkv {

class Arena {
 public:
  // kZeros: every byte zero until written. kUninitialized: unspecified, and pages the
  // allocator maps fresh are touched only when used (for scratch sized for the worst case).
  explicit Arena(size_t capacity_bytes, AlignedBuffer::Fill fill = AlignedBuffer::Fill::kZeros)
      : buffer_(capacity_bytes, fill), capacity_(capacity_bytes) {}
  static Arena MeasureOnly() { return Arena(); }

  Arena(Arena&&) noexcept = default;
  Arena& operator=(Arena&&) noexcept = default;

  // A view of `shape` (zeroed the first time its bytes are handed out in a kZeros arena,
  // unspecified after a ResetTo that gives them out again), aligned to 64 bytes. Throws qkv::Error
  // when the arena is full. In measure-only mode the view's data is null.
  template <typename T>
  TensorView<T> Allocate(Shape shape) {
    const size_t bytes =
        CheckedMulSize(static_cast<size_t>(shape.NumElements()), sizeof(T), "arena allocation");
    const size_t start = AlignUp(used_);
    // used_ stays aligned, so that sizes measured piece by piece add up to what the pieces
    // take when allocated one after another.
    if (measure_only_) {
      used_ = AlignUp(CheckedAddSize(start, bytes, "arena size"));
      return TensorView<T>(nullptr, shape);
    }
    QKV_CHECK(bytes <= capacity_ && start <= capacity_ - bytes, "arena of ", capacity_,
              " bytes cannot fit ", bytes, " more bytes (", used_, " used) for shape ",
              shape.ToString());
    used_ = std::min(AlignUp(start + bytes), capacity_);
    return TensorView<T>(reinterpret_cast<T*>(static_cast<std::byte*>(buffer_.data()) + start),
                         shape);
  }

  size_t used_bytes() const { return used_; }
  size_t capacity_bytes() const { return capacity_; }
  bool measure_only() const { return measure_only_; }

  // Marks let scratch space be taken and given back in LIFO order.
  size_t Mark() const { return used_; }
  void ResetTo(size_t mark) {
    QKV_CHECK(mark <= used_, "arena mark ", mark, " is past the used size ", used_);
    used_ = mark;
  }
  void Reset() { used_ = 0; }

 private:
  Arena() : measure_only_(true) {}
  static size_t AlignUp(size_t offset) {
    return (offset + kBufferAlignment - 1) / kBufferAlignment * kBufferAlignment;
  }

  AlignedBuffer buffer_;
  size_t capacity_ = 0;
  size_t used_ = 0;
  bool measure_only_ = false;
};

// Gives scratch space back to the arena when it goes out of scope.
class ArenaScope {
 public:
  explicit ArenaScope(Arena& arena) : arena_(arena), mark_(arena.Mark()) {}
  ~ArenaScope() { arena_.ResetTo(mark_); }
  ArenaScope(const ArenaScope&) = delete;
  ArenaScope& operator=(const ArenaScope&) = delete;

 private:
  Arena& arena_;
  size_t mark_;
};

// The bytes allocation code takes, counted against a measure-only arena: allocate(arena,
// element) is called with a float element for element_size 4, else a double one, so one
// templated allocation function sizes both precisions.
template <typename Allocate>
size_t MeasureBytes(size_t element_size, Allocate&& allocate) {
  Arena measure = Arena::MeasureOnly();
  if (element_size == sizeof(float)) {
    allocate(measure, float{});
  } else {
    allocate(measure, double{});
  }
  return measure.used_bytes();
}

}  // namespace qkv
