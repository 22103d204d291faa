// Softmax of one row, the building block of ops/softmax and ops/attention.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>

namespace qkv::kernels {

// output[i] = exp(input[i] - max) / sum_j exp(input[j] - max). Subtracting the row maximum
// keeps exp() from overflowing and changes nothing mathematically. Entries equal to -inf get
// weight exactly 0; a row that is entirely -inf becomes all zeros (not NaN), so a query with
// nothing to attend to contributes nothing. output may alias input.
template <typename T>
void SoftmaxRow(const T* input, T* output, int64_t count) {
  T max_value = -std::numeric_limits<T>::infinity();
  for (int64_t i = 0; i < count; ++i) max_value = input[i] > max_value ? input[i] : max_value;
  if (max_value == -std::numeric_limits<T>::infinity()) {
    for (int64_t i = 0; i < count; ++i) output[i] = T(0);
    return;
  }
  T sum = 0;
  for (int64_t i = 0; i < count; ++i) {
    output[i] = std::exp(input[i] - max_value);
    sum += output[i];
  }
  const T inverse = T(1) / sum;
  for (int64_t i = 0; i < count; ++i) output[i] *= inverse;
}

// float runs on the vector kernels (kernels/cpu/vector_kernels.h): polynomial exp, lane sums.
template <>
void SoftmaxRow<float>(const float* input, float* output, int64_t count);

// d_input[i] = y[i] * (d_output[i] - sum_j d_output[j] * y[j]), y the softmax output.
// d_input may alias d_output.
template <typename T>
void SoftmaxRowBackward(const T* d_output, const T* output, T* d_input, int64_t count) {
  T dot = 0;
  for (int64_t i = 0; i < count; ++i) dot += d_output[i] * output[i];
  for (int64_t i = 0; i < count; ++i) d_input[i] = output[i] * (d_output[i] - dot);
}

}  // namespace qkv::kernels
