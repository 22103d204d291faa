// ALiBi (Press et al., "Train Short, Test Long", 2022): no position vectors at all; instead each
// head h adds -m_h * (i - j) to the score of query i and key j, a penalty growing linearly with
// the distance. The slopes m_h form a geometric sequence.
#pragma once

#include <cstdint>
#include <vector>

namespace qkv::ops {

// The paper's slopes for num_heads heads (> 0). For a power of two n: m_h = 2^(-8(h+1)/n),
// h = 0..n-1. Otherwise, with n0 the largest power of two below n: the n0 slopes of n0 heads,
// then every other slope of 2*n0 heads (the odd-indexed ones, 2^(-4(2k+1)/n0)) until there
// are n — the reference implementation's get_slopes.
std::vector<double> AlibiSlopes(int64_t num_heads);

}  // namespace qkv::ops
