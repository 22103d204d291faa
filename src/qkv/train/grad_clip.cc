#include "qkv/train/grad_clip.h"

#include <algorithm>
#include <cmath>

#include "qkv/core/check.h"
#include "qkv/kernels/cpu/vector_kernels.h"
#include "qkv/runtime/parallel_for.h"

namespace qkv::train {

double GlobalNorm(const std::vector<ConstTensorView<float>>& tensors, const ExecutionContext& ctx) {
  // first[i]: where tensor i starts in the concatenation of all tensors.
  std::vector<int64_t> first(tensors.size() + 1, 0);
  for (size_t i = 0; i < tensors.size(); ++i) first[i + 1] = first[i] + tensors[i].size();
  std::vector<double> partial(static_cast<size_t>(ctx.num_threads()), 0.0);
  const kernels::VectorKernels& vector = kernels::ActiveVectorKernels();
  ParallelFor(
      first.back(), ctx,
      [&](int64_t begin, int64_t end, int thread) {
        double sum = 0;
        size_t i = static_cast<size_t>(std::upper_bound(first.begin(), first.end(), begin) -
                                       first.begin() - 1);
        for (; i < tensors.size() && first[i] < end; ++i) {
          const int64_t from = std::max(begin, first[i]) - first[i];
          const int64_t to = std::min(end, first[i + 1]) - first[i];
          if (to > from) sum += vector.sum_squares(tensors[i].data() + from, to - from);
        }
        partial[static_cast<size_t>(thread)] = sum;
      },
      8192);
  double total = 0;
  for (double sum : partial) total += sum;  // in thread order
  return std::sqrt(total);
}

float ClipScale(double norm, double max_norm) {
  QKV_CHECK(max_norm > 0, "the gradient clipping norm must be > 0, got ", max_norm);
  const double coefficient = max_norm / (norm + 1e-6);
  return coefficient < 1.0 ? static_cast<float>(coefficient) : 1.0f;
}

double ClipGradientsByGlobalNorm(const std::vector<TensorView<float>>& gradients, double max_norm,
                                 const ExecutionContext& ctx) {
  std::vector<ConstTensorView<float>> views(gradients.begin(), gradients.end());
  const double norm = GlobalNorm(views, ctx);
  const float scale = ClipScale(norm, max_norm);
  if (scale < 1.0f) {
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
