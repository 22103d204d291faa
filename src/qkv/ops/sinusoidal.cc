#include "qkv/ops/sinusoidal.h"

#include <cmath>

#include "qkv/ops/op_checks.h"

namespace qkv::ops {

template <typename T>
void FillSinusoidalTable(TensorView<T> table, SinusoidalLayout layout) {
  CheckRank("sinusoidal", "table", table, 2);
  CheckPositive("sinusoidal", "max length", table.dim(0));
  CheckPositive("sinusoidal", "dim", table.dim(1));
  const int64_t max_len = table.dim(0), dim = table.dim(1);
  const int64_t sines = (dim + 1) / 2;  // the halves layout's first cosine column
  for (int64_t p = 0; p < max_len; ++p) {
    for (int64_t c = 0; c < dim; ++c) {
      const bool interleaved = layout == SinusoidalLayout::kInterleaved;
      const bool sine = interleaved ? c % 2 == 0 : c < sines;
      const int64_t pair = interleaved ? c / 2 : (sine ? c : c - sines);
      const double angle =
          static_cast<double>(p) / std::pow(10000.0, static_cast<double>(2 * pair) / dim);
      table.data()[p * dim + c] = static_cast<T>(sine ? std::sin(angle) : std::cos(angle));
    }
  }
}

template void FillSinusoidalTable<float>(TensorView<float>, SinusoidalLayout);
template void FillSinusoidalTable<double>(TensorView<double>, SinusoidalLayout);

}  // namespace qkv::ops
