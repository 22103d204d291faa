#include "qkv/ops/alibi.h"

#include <cmath>

#include "qkv/core/check.h"

namespace qkv::ops {

namespace {

std::vector<double> PowerOfTwoSlopes(int64_t n) {
  std::vector<double> slopes;
  for (int64_t h = 0; h < n; ++h) {
    slopes.push_back(std::pow(2.0, -8.0 * static_cast<double>(h + 1) / static_cast<double>(n)));
  }
  return slopes;
}

}  // namespace

std::vector<double> AlibiSlopes(int64_t num_heads) {
  QKV_CHECK(num_heads > 0, "alibi: num_heads must be > 0, got ", num_heads);
  int64_t power = 1;
  while (power * 2 <= num_heads) power *= 2;
  std::vector<double> slopes = PowerOfTwoSlopes(power);
  if (power == num_heads) return slopes;
  const std::vector<double> extra = PowerOfTwoSlopes(2 * power);
  for (size_t k = 0; static_cast<int64_t>(slopes.size()) < num_heads; k += 2) {
    slopes.push_back(extra[k]);
  }
  return slopes;
}

}  // namespace qkv::ops
