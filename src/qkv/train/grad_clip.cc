#include "qkv/train/grad_clip.h"

#include <algorithm>
#include <cmath>

#include "qkv/core/check.h"
#include "qkv/kernels/cpu/vector_kernels.h"
#include "qkv/runtime/parallel_for.h"

namespace qkv::train {

double GlobalNorm(const std::vector<ConstTensorView<float>>& tensors, const ExecutionContext& ctx) {
  double total = 0;
  std::vector<double> partial(static_cast<size_t>(ctx.num_threads()));
  for (const ConstTensorView<float>& tensor : tensors) {
    std::fill(partial.begin(), partial.end(), 0.0);
    ParallelFor(
        tensor.size(), ctx,
        [&](int64_t begin, int64_t end, int thread) {
          partial[static_cast<size_t>(thread)] =
              kernels::ActiveVectorKernels().sum_squares(tensor.data() + begin, end - begin);
        },
        8192);
    for (double sum : partial) total += sum;  // in thread order
  }
  return std::sqrt(total);
}

double ClipGradientsByGlobalNorm(const std::vector<TensorView<float>>& gradients, double max_norm,
                                 const ExecutionContext& ctx) {
  QKV_CHECK(max_norm > 0, "the gradient clipping norm must be > 0, got ", max_norm);
  std::vector<ConstTensorView<float>> views(gradients.begin(), gradients.end());
  const double norm = GlobalNorm(views, ctx);
  const double coefficient = max_norm / (norm + 1e-6);
  if (coefficient < 1.0) {
    const float scale = static_cast<float>(coefficient);
    for (const TensorView<float>& gradient : gradients) {
      ParallelFor(
          gradient.size(), ctx,
          [&](int64_t begin, int64_t end, int) {
            for (int64_t i = begin; i < end; ++i) gradient.data()[i] *= scale;
          },
          8192);
    }
  }
  return norm;
}

}  // namespace qkv::train
