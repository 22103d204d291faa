#include "qkv/core/buffer.h"

#include <cstring>

#include "qkv/core/check.h"

namespace qkv {

AlignedBuffer::AlignedBuffer(size_t num_bytes) : num_bytes_(num_bytes) {
  if (num_bytes == 0) return;
  // aligned_alloc wants a size that is a multiple of the alignment.
  const size_t padded = (num_bytes + kBufferAlignment - 1) / kBufferAlignment * kBufferAlignment;
  void* pointer = std::aligned_alloc(kBufferAlignment, padded);
  QKV_CHECK(pointer != nullptr, "out of memory allocating ", num_bytes, " bytes");
  std::memset(pointer, 0, padded);
  data_.reset(pointer);
}

}  // namespace qkv
