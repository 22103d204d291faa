// ParallelFor: the only place where ops become parallel. Splits [0, count) into one contiguous
// chunk per thread (a static split: the same thread count always gives the same chunks, so
// results are bitwise reproducible) and calls body(chunk_begin, chunk_end, thread_index).
//
// The body must write disjoint outputs for disjoint index ranges, and must not throw (an
// exception cannot leave an OpenMP region): check arguments before calling ParallelFor.
#pragma once

#include <omp.h>

#include <algorithm>
#include <cstdint>

#include "qkv/runtime/execution_context.h"

namespace qkv {

// min_per_thread keeps tiny loops on one thread, where waking the team would cost more.
template <typename Body>
void ParallelFor(int64_t count, const ExecutionContext& ctx, Body&& body,
                 int64_t min_per_thread = 1) {
  if (count <= 0) return;
  const int64_t useful = std::max<int64_t>(1, count / std::max<int64_t>(1, min_per_thread));
  const int team = static_cast<int>(std::min<int64_t>(ctx.num_threads(), useful));
  if (team <= 1) {
    body(int64_t{0}, count, 0);
    return;
  }
#pragma omp parallel num_threads(team)
  {
    const int thread = omp_get_thread_num();
    const int64_t begin = count * thread / team;
    const int64_t end = count * (thread + 1) / team;
    if (begin < end) body(begin, end, thread);
  }
}

}  // namespace qkv
