// AlignedBuffer: an owning, 64-byte aligned, move-only block of bytes. The one place where qkv
// calls the allocator directly; 64 bytes is one cache line and one AVX-512 register.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <memory>

namespace qkv {

inline constexpr size_t kBufferAlignment = 64;

class AlignedBuffer {
 public:
  enum class Fill { kZeros, kUninitialized };
  AlignedBuffer() = default;
  // Zero-initialised unless fill says otherwise: kUninitialized is for buffers whose every
  // byte is written before it is read and most of which may never be touched (a large one
  // then costs no page until it is). Throws qkv::Error if the allocation fails.
  explicit AlignedBuffer(size_t num_bytes, Fill fill = Fill::kZeros);

  void* data() const { return data_.get(); }
  size_t num_bytes() const { return num_bytes_; }

 private:
  struct FreeDeleter {
    void operator()(void* pointer) const { std::free(pointer); }
  };
  std::unique_ptr<void, FreeDeleter> data_;
  size_t num_bytes_ = 0;
};

}  // namespace qkv
