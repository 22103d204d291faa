#include "qkv/train/adamw.h"

#include <cmath>

#include "qkv/kernels/cpu/vector_kernels.h"
#include "qkv/ops/op_checks.h"
#include "qkv/runtime/parallel_for.h"
#include "qkv/train/concatenation.h"

namespace qkv::train {

void AdamWOptions::Validate() const {
  QKV_CHECK(beta1 >= 0 && beta1 < 1, "beta1 must be in [0, 1), got ", beta1);
  QKV_CHECK(beta2 >= 0 && beta2 < 1, "beta2 must be in [0, 1), got ", beta2);
  QKV_CHECK(eps > 0, "the AdamW epsilon must be > 0, got ", eps);
  QKV_CHECK(weight_decay >= 0, "weight decay must be >= 0, got ", weight_decay);
}

namespace {

// The scalars are formed in double and rounded once, as PyTorch does with Python floats.
kernels::AdamWScalars ScalarsFor(int64_t step, double learning_rate, bool decayed,
                                 const AdamWOptions& options, float grad_scale) {
  QKV_CHECK(step >= 1, "adamw: step must be >= 1, got ", step);
  const double bias_correction1 = 1.0 - std::pow(options.beta1, static_cast<double>(step));
  const double bias_correction2 = 1.0 - std::pow(options.beta2, static_cast<double>(step));
  return kernels::AdamWScalars{
      decayed,
      static_cast<float>(1.0 - learning_rate * (decayed ? options.weight_decay : 0.0)),
      static_cast<float>(options.beta1),
      static_cast<float>(options.beta2),
      static_cast<float>(1.0 - options.beta1),
      static_cast<float>(1.0 - options.beta2),
      static_cast<float>(learning_rate / bias_correction1),
      static_cast<float>(std::sqrt(bias_correction2)),
      static_cast<float>(options.eps),
      grad_scale};
}

void CheckTensor(const AdamWTensor& t) {
  ops::CheckShape("adamw", "grads", t.grads, t.params.shape());
  ops::CheckShape("adamw", "m", t.m, t.params.shape());
  ops::CheckShape("adamw", "v", t.v, t.params.shape());
}

}  // namespace

void AdamWUpdate(TensorView<float> params, ConstTensorView<float> grads, TensorView<float> m,
                 TensorView<float> v, int64_t step, double learning_rate, bool decayed,
                 const AdamWOptions& options, const ExecutionContext& ctx) {
  const AdamWTensor tensor{params, grads, m, v, decayed};
  AdamWUpdateAll(std::span(&tensor, 1), step, learning_rate, options, 1.0f, ctx);
}

void AdamWUpdateAll(std::span<const AdamWTensor> tensors, int64_t step, double learning_rate,
                    const AdamWOptions& options, float grad_scale, const ExecutionContext& ctx) {
  const kernels::AdamWScalars decayed = ScalarsFor(step, learning_rate, true, options, grad_scale);
  const kernels::AdamWScalars not_decayed =
      ScalarsFor(step, learning_rate, false, options, grad_scale);
  int64_t total = 0;
  for (const AdamWTensor& tensor : tensors) {
    CheckTensor(tensor);
    total += tensor.params.size();
  }
  const kernels::VectorKernels& vector = kernels::VectorKernelsFor(ctx.isa);
  ParallelFor(
      total, ctx,
      [&](int64_t begin, int64_t end, int) {
        ForEachOverlap(
            tensors, begin, end, [](const AdamWTensor& t) { return t.params.size(); },
            [&](const AdamWTensor& t, int64_t from, int64_t to) {
              vector.adamw_update(t.params.data() + from, t.grads.data() + from, t.m.data() + from,
                                  t.v.data() + from, to - from, t.decayed ? decayed : not_decayed);
            });
      },
      8192);
}

}  // namespace qkv::train
