#include "qkv/core/buffer.h"

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

#include "qkv/core/check.h"

namespace qkv {

namespace {

std::string Gib(size_t bytes) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.1f GiB", static_cast<double>(bytes) / (1ull << 30));
  return text;
}

}  // namespace

size_t AvailableMemoryBytes() {
  std::FILE* meminfo = std::fopen("/proc/meminfo", "r");
  if (meminfo == nullptr) return 0;
  unsigned long long total_kib = 0, value = 0;
  bool found = false;
  char line[256];
  while (std::fgets(line, sizeof(line), meminfo) != nullptr) {
    if (std::sscanf(line, "MemAvailable: %llu kB", &value) == 1 ||
        std::sscanf(line, "SwapFree: %llu kB", &value) == 1) {
      total_kib += value;
      found = true;
    }
  }
  std::fclose(meminfo);
  return found ? static_cast<size_t>(total_kib) * 1024 : 0;
}

AlignedBuffer::AlignedBuffer(size_t num_bytes) : num_bytes_(num_bytes) {
  if (num_bytes == 0) return;
  // Refused up front rather than attempted: with overcommit the allocation may succeed and the
  // zeroing below then drives the machine into swap or the OOM killer, and a sanitizer build
  // aborts on a failed allocation instead of returning null. Small blocks skip the check.
  constexpr size_t kCheckFrom = size_t{256} << 20;
  if (num_bytes >= kCheckFrom) {
    const size_t available = AvailableMemoryBytes();
    QKV_CHECK(available == 0 || num_bytes <= available, "out of memory: this needs a block of ",
              Gib(num_bytes), " (", num_bytes, " bytes), but only ", Gib(available),
              " of memory is available");
  }
  // aligned_alloc wants a size that is a multiple of the alignment.
  QKV_CHECK(num_bytes <= SIZE_MAX - kBufferAlignment, "out of memory allocating ", num_bytes,
            " bytes");
  const size_t padded = (num_bytes + kBufferAlignment - 1) / kBufferAlignment * kBufferAlignment;
  void* pointer = std::aligned_alloc(kBufferAlignment, padded);
  QKV_CHECK(pointer != nullptr, "out of memory allocating ", num_bytes, " bytes");
  std::memset(pointer, 0, padded);
  data_.reset(pointer);
}

}  // namespace qkv
