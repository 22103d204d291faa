// Moving column blocks between a packed projection output and separate tensors: the fused
// (rows, packed_width) output of a Q,K,V (or K,V, or gate,up) projection is split into
// (rows, width) tensors, one per block of columns, and their gradients are packed back.
#pragma once

#include <cstdint>
#include <cstring>

#include "qkv/runtime/parallel_for.h"

namespace qkv::layers {

// part: (rows, width) receives columns [begin, begin + width) of packed (rows, packed_width).
template <typename T>
void UnpackColumns(const T* packed, int64_t rows, int64_t packed_width, int64_t begin,
                   int64_t width, T* part, const ExecutionContext& ctx) {
  ParallelFor(
      rows, ctx,
      [&](int64_t row_begin, int64_t row_end, int) {
        for (int64_t r = row_begin; r < row_end; ++r) {
          std::memcpy(part + r * width, packed + r * packed_width + begin, width * sizeof(T));
        }
      },
      64);
}

// The inverse of UnpackColumns.
template <typename T>
void PackColumns(const T* part, int64_t rows, int64_t packed_width, int64_t begin, int64_t width,
                 T* packed, const ExecutionContext& ctx) {
  ParallelFor(
      rows, ctx,
      [&](int64_t row_begin, int64_t row_end, int) {
        for (int64_t r = row_begin; r < row_end; ++r) {
          std::memcpy(packed + r * packed_width + begin, part + r * width, width * sizeof(T));
        }
      },
      64);
}

}  // namespace qkv::layers
