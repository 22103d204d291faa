#include "qkv/kernels/cpu/softmax_row.h"

#include "qkv/kernels/cpu/vector_kernels.h"

namespace qkv::kernels {

template <>
void SoftmaxRow<float>(const float* input, float* output, int64_t count) {
  const VectorKernels& vector = ActiveVectorKernels();
  const float max_value = vector.max(input, count);
  if (max_value == -std::numeric_limits<float>::infinity()) {
    for (int64_t i = 0; i < count; ++i) output[i] = 0.0f;
    return;
  }
  const float sum = vector.exp_shifted(input, output, count, max_value);
  vector.scale(output, count, 1.0f / sum);
}

}  // namespace qkv::kernels
