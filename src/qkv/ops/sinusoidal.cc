#include "qkv/ops/sinusoidal.h"

#include <cmath>

#include "qkv/ops/op_checks.h"

namespace qkv::ops {

template <typename T>
void FillSinusoidalTable(TensorView<T> table) {
  CheckRank("sinusoidal", "table", table, 2);
  CheckPositive("sinusoidal", "max length", table.dim(0));
  CheckPositive("sinusoidal", "dim", table.dim(1));
  const int64_t max_len = table.dim(0), dim = table.dim(1);
  for (int64_t p = 0; p < max_len; ++p) {
    for (int64_t c = 0; c < dim; ++c) {
      const int64_t pair = c / 2;
      const double angle =
          static_cast<double>(p) / std::pow(10000.0, static_cast<double>(2 * pair) / dim);
      table.data()[p * dim + c] = static_cast<T>(c % 2 == 0 ? std::sin(angle) : std::cos(angle));
    }
  }
}

template void FillSinusoidalTable<float>(TensorView<float>);
template void FillSinusoidalTable<double>(TensorView<double>);

}  // namespace qkv::ops
