// Moving column blocks between a packed projection output and separate tensors: the fused
// (rows, n*C) output of a Q,K,V (or K,V) projection is split into n (rows, C) tensors, and
// their gradients are packed back.
#pragma once

#include <cstdint>
#include <cstring>

#include "qkv/runtime/parallel_for.h"

namespace qkv::layers {

// part: (rows, width) receives columns [index*width, (index+1)*width) of packed (rows, n*width).
template <typename T>
void UnpackColumns(const T* packed, int64_t rows, int64_t width, int64_t parts, int64_t index,
                   T* part, const ExecutionContext& ctx) {
  ParallelFor(
      rows, ctx,
      [&](int64_t begin, int64_t end, int) {
        for (int64_t r = begin; r < end; ++r) {
          std::memcpy(part + r * width, packed + r * parts * width + index * width,
                      width * sizeof(T));
        }
      },
      64);
}

// The inverse of UnpackColumns.
template <typename T>
void PackColumns(const T* part, int64_t rows, int64_t width, int64_t parts, int64_t index,
                 T* packed, const ExecutionContext& ctx) {
  ParallelFor(
      rows, ctx,
      [&](int64_t begin, int64_t end, int) {
        for (int64_t r = begin; r < end; ++r) {
          std::memcpy(packed + r * parts * width + index * width, part + r * width,
                      width * sizeof(T));
        }
      },
      64);
}

}  // namespace qkv::layers
