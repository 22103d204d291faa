// How much memory the machine can give us, so that a model or workspace that cannot fit is
// refused up front with both numbers, instead of dying in the allocator (or the OOM killer)
// after minutes of work.
#pragma once

#include <cstdint>
#include <string_view>

namespace qkv {

// MemAvailable from /proc/meminfo (what the kernel can hand out without swapping), else
// sysconf's available physical pages. The environment variable QKV_MEMORY_LIMIT (bytes) caps
// it, so tests and shared machines can set a smaller budget.
uint64_t AvailableMemoryBytes();

// Throws qkv::Error "<what> needs N bytes (x GiB) but only M bytes (y GiB) are available"
// when bytes exceeds `available`.
void CheckFitsInMemory(uint64_t bytes, std::string_view what, uint64_t available);
// The same against AvailableMemoryBytes().
void CheckFitsInMemory(uint64_t bytes, std::string_view what);

}  // namespace qkv
