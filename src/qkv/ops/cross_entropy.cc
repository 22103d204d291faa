#include "qkv/ops/cross_entropy.h"

#include <cmath>
#include <type_traits>

#include "qkv/kernels/cpu/vector_kernels.h"
#include "qkv/ops/op_checks.h"
#include "qkv/runtime/parallel_for.h"

namespace qkv::ops {

namespace {

template <typename T>
int64_t CheckCrossEntropyArgs(ConstTensorView<T> logits, ConstTensorView<int32_t> targets,
                              int32_t ignore_index, ConstTensorView<T> saved_logsumexp) {
  CheckRank("cross_entropy", "logits", logits, 2);
  CheckPositive("cross_entropy", "rows", logits.dim(0));
  CheckPositive("cross_entropy", "vocabulary size", logits.dim(1));
  CheckShape("cross_entropy", "targets", targets, Shape{logits.dim(0)});
  CheckShape("cross_entropy", "saved_logsumexp", saved_logsumexp, Shape{logits.dim(0)});
  const int64_t vocab = logits.dim(1);
  int64_t counted = 0;
  for (int64_t r = 0; r < targets.size(); ++r) {
    if (targets[r] == ignore_index) continue;
    QKV_CHECK(targets[r] >= 0 && targets[r] < vocab, "cross_entropy: target ", targets[r],
              " at row ", r, " is outside the vocabulary [0, ", vocab,
              ") and is not the ignore index ", ignore_index);
    ++counted;
  }
  return counted;
}

void CheckLabelSmoothing(double label_smoothing) {
  QKV_CHECK(label_smoothing >= 0 && label_smoothing < 1,
            "cross_entropy: label smoothing must be in [0, 1), got ", label_smoothing);
}

}  // namespace

template <typename T>
T CrossEntropyForward(ConstTensorView<T> logits, ConstTensorView<int32_t> targets,
                      int32_t ignore_index, TensorView<T> saved_logsumexp,
                      const ExecutionContext& ctx, T label_smoothing) {
  CheckLabelSmoothing(static_cast<double>(label_smoothing));
  const int64_t counted =
      CheckCrossEntropyArgs(logits, targets, ignore_index, ConstTensorView<T>(saved_logsumexp));
  const int64_t rows = logits.dim(0), vocab = logits.dim(1);
  ParallelFor(
      rows, ctx,
      [&](int64_t begin, int64_t end, int) {
        for (int64_t r = begin; r < end; ++r) {
          const T* row = logits.data() + r * vocab;
          if constexpr (std::is_same_v<T, float>) {
            const kernels::VectorKernels& vector = kernels::VectorKernelsFor(ctx.isa);
            const float max_value = vector.max(row, vocab);
            saved_logsumexp.data()[r] =
                max_value + std::log(vector.sum_exp_shifted(row, vocab, max_value));
            continue;
          }
          T max_value = row[0];
          for (int64_t v = 1; v < vocab; ++v) max_value = row[v] > max_value ? row[v] : max_value;
          double sum = 0;
          for (int64_t v = 0; v < vocab; ++v) sum += std::exp(row[v] - max_value);
          saved_logsumexp.data()[r] = max_value + static_cast<T>(std::log(sum));
        }
      },
      4);
  if (counted == 0) return T(0);
  // Summed in row order in double: the same result for every thread count.
  double total = 0;
  if (label_smoothing == T(0)) {
    for (int64_t r = 0; r < rows; ++r) {
      if (targets[r] == ignore_index) continue;
      total += saved_logsumexp.data()[r] - logits.data()[r * vocab + targets[r]];
    }
    return static_cast<T>(total / static_cast<double>(counted));
  }
  const double smoothing = static_cast<double>(label_smoothing);
  for (int64_t r = 0; r < rows; ++r) {
    if (targets[r] == ignore_index) continue;
    const T* row = logits.data() + r * vocab;
    double row_sum = 0;
    for (int64_t v = 0; v < vocab; ++v) row_sum += static_cast<double>(row[v]);
    const double logsumexp = static_cast<double>(saved_logsumexp.data()[r]);
    total += (1 - smoothing) * (logsumexp - static_cast<double>(row[targets[r]])) +
             smoothing * (logsumexp - row_sum / static_cast<double>(vocab));
  }
  return static_cast<T>(total / static_cast<double>(counted));
}

template <typename T>
void CrossEntropyBackward(T d_loss, ConstTensorView<T> logits, ConstTensorView<int32_t> targets,
                          int32_t ignore_index, ConstTensorView<T> saved_logsumexp,
                          TensorView<T> d_logits, const ExecutionContext& ctx, T label_smoothing) {
  CheckLabelSmoothing(static_cast<double>(label_smoothing));
  const int64_t counted = CheckCrossEntropyArgs(logits, targets, ignore_index, saved_logsumexp);
  CheckShape("cross_entropy", "d_logits", d_logits, logits.shape());
  const int64_t rows = logits.dim(0), vocab = logits.dim(1);
  const T scale = counted == 0 ? T(0) : d_loss / static_cast<T>(counted);
  // The smoothed target's mass: (1 - e) on the target, e / vocab everywhere.
  const T target_scale = label_smoothing == T(0) ? scale : (T(1) - label_smoothing) * scale;
  const T uniform_scale = label_smoothing * scale / static_cast<T>(vocab);
  ParallelFor(
      rows, ctx,
      [&](int64_t begin, int64_t end, int) {
        for (int64_t r = begin; r < end; ++r) {
          const T* row = logits.data() + r * vocab;
          T* d_row = d_logits.data() + r * vocab;
          if (targets[r] == ignore_index) {
            for (int64_t v = 0; v < vocab; ++v) d_row[v] = T(0);
            continue;
          }
          const T logsumexp = saved_logsumexp[r];
          if constexpr (std::is_same_v<T, float>) {
            const kernels::VectorKernels& vector = kernels::VectorKernelsFor(ctx.isa);
            vector.exp_shifted(row, d_row, vocab, logsumexp);
            vector.scale(d_row, vocab, scale);
          } else {
            for (int64_t v = 0; v < vocab; ++v) d_row[v] = std::exp(row[v] - logsumexp) * scale;
          }
          if (label_smoothing != T(0)) {
            for (int64_t v = 0; v < vocab; ++v) d_row[v] -= uniform_scale;
          }
          d_row[targets[r]] -= target_scale;
        }
      },
      4);
}

template float CrossEntropyForward<float>(ConstTensorView<float>, ConstTensorView<int32_t>, int32_t,
                                          TensorView<float>, const ExecutionContext&, float);
template double CrossEntropyForward<double>(ConstTensorView<double>, ConstTensorView<int32_t>,
                                            int32_t, TensorView<double>, const ExecutionContext&,
                                            double);
template void CrossEntropyBackward<float>(float, ConstTensorView<float>, ConstTensorView<int32_t>,
                                          int32_t, ConstTensorView<float>, TensorView<float>,
                                          const ExecutionContext&, float);
template void CrossEntropyBackward<double>(double, ConstTensorView<double>,
                                           ConstTensorView<int32_t>, int32_t,
                                           ConstTensorView<double>, TensorView<double>,
                                           const ExecutionContext&, double);

}  // namespace qkv::ops
