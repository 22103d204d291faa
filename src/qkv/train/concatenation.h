// Many tensors treated as one flat array, as the optimizer and the gradient norm see them: one
// parallel loop over the concatenation instead of one per tensor (each loop wakes the thread
// team).
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>

namespace qkv::train {

// Calls fn(item, from, to) for every item whose elements overlap [begin, end) of the
// concatenation of items, [from, to) being the overlap in the item's own indices. size_of(item)
// is its element count. A walk over the items, not a lookup table, so nothing is allocated.
template <typename Item, typename SizeOf, typename Fn>
void ForEachOverlap(std::span<const Item> items, int64_t begin, int64_t end, SizeOf&& size_of,
                    Fn&& fn) {
  int64_t first = 0;  // where the item starts in the concatenation
  for (const Item& item : items) {
    const int64_t size = size_of(item);
    const int64_t from = std::max(begin, first) - first;
    const int64_t to = std::min(end, first + size) - first;
    first += size;
    if (to > from) fn(item, from, to);
  }
}

}  // namespace qkv::train
