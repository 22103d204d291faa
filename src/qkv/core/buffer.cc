#include "qkv/core/buffer.h"

#include <cstring>

#include "qkv/core/check.h"
#include "qkv/core/checked.h"
#include "qkv/core/memory.h"

namespace qkv {

namespace {
constexpr size_t kCheckMemoryFromBytes = size_t{64} << 20;
}  // namespace

AlignedBuffer::AlignedBuffer(size_t num_bytes, Fill fill) : num_bytes_(num_bytes) {
  if (num_bytes == 0) return;
  // The last line of defence for sizes no caller checked: a request larger than the machine
  // can give is refused with both numbers. Small buffers skip the /proc/meminfo read.
  if (num_bytes >= kCheckMemoryFromBytes) CheckFitsInMemory(num_bytes, "a buffer");
  // aligned_alloc wants a size that is a multiple of the alignment.
  const size_t padded = CheckedAddSize(num_bytes, kBufferAlignment - 1, "buffer size") /
                        kBufferAlignment * kBufferAlignment;
  void* pointer = std::aligned_alloc(kBufferAlignment, padded);
  QKV_CHECK(pointer != nullptr, "out of memory allocating ", num_bytes, " bytes");
  if (fill == Fill::kZeros) std::memset(pointer, 0, padded);
  data_.reset(pointer);
}

}  // namespace qkv
