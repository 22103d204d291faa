#include "qkv/train/grad_clip.h"

#include <array>
#include <cmath>

#include "qkv/core/check.h"
#include "qkv/kernels/cpu/vector_kernels.h"
#include "qkv/runtime/parallel_for.h"
#include "qkv/train/concatenation.h"

namespace qkv::train {

double GlobalNorm(std::span<const ConstTensorView<float>> tensors, const ExecutionContext& ctx) {
  int64_t total = 0;
  for (const ConstTensorView<float>& tensor : tensors) total += tensor.size();
  // One partial sum per thread, on the stack for the usual thread counts: a step allocates
  // nothing.
  constexpr size_t kStackThreads = 64;
  std::array<double, kStackThreads> stack_partial{};
  std::vector<double> heap_partial;
  const size_t threads = static_cast<size_t>(ctx.num_threads());
  if (threads > kStackThreads) heap_partial.assign(threads, 0.0);
  double* partial = threads > kStackThreads ? heap_partial.data() : stack_partial.data();
  const kernels::VectorKernels& vector = kernels::VectorKernelsFor(ctx.isa);
  ParallelFor(
      total, ctx,
      [&](int64_t begin, int64_t end, int thread) {
        double sum = 0;
        ForEachOverlap(
            tensors, begin, end, [](const ConstTensorView<float>& t) { return t.size(); },
            [&](const ConstTensorView<float>& t, int64_t from, int64_t to) {
              sum += vector.sum_squares(t.data() + from, to - from);
            });
        partial[thread] = sum;
      },
      8192);
  double sum = 0;
  for (size_t t = 0; t < threads; ++t) sum += partial[t];  // in thread order
  return std::sqrt(sum);
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
