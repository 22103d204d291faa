#include "qkv/train/adamw.h"

#include <cmath>

#include "qkv/kernels/cpu/vector_kernels.h"
#include "qkv/ops/op_checks.h"
#include "qkv/runtime/parallel_for.h"

namespace qkv::train {

void AdamWOptions::Validate() const {
  QKV_CHECK(beta1 >= 0 && beta1 < 1, "beta1 must be in [0, 1), got ", beta1);
  QKV_CHECK(beta2 >= 0 && beta2 < 1, "beta2 must be in [0, 1), got ", beta2);
  QKV_CHECK(eps > 0, "the AdamW epsilon must be > 0, got ", eps);
  QKV_CHECK(weight_decay >= 0, "weight decay must be >= 0, got ", weight_decay);
}

void AdamWUpdate(TensorView<float> params, ConstTensorView<float> grads, TensorView<float> m,
                 TensorView<float> v, int64_t step, double learning_rate, bool decayed,
                 const AdamWOptions& options, const ExecutionContext& ctx) {
  ops::CheckShape("adamw", "grads", grads, params.shape());
  ops::CheckShape("adamw", "m", m, params.shape());
  ops::CheckShape("adamw", "v", v, params.shape());
  QKV_CHECK(step >= 1, "adamw: step must be >= 1, got ", step);
  // The scalars are formed in double and rounded once, as PyTorch does with Python floats.
  const float decay_factor =
      static_cast<float>(1.0 - learning_rate * (decayed ? options.weight_decay : 0.0));
  const float beta1 = static_cast<float>(options.beta1);
  const float beta2 = static_cast<float>(options.beta2);
  const float one_minus_beta1 = static_cast<float>(1.0 - options.beta1);
  const float one_minus_beta2 = static_cast<float>(1.0 - options.beta2);
  const double bias_correction1 = 1.0 - std::pow(options.beta1, static_cast<double>(step));
  const double bias_correction2 = 1.0 - std::pow(options.beta2, static_cast<double>(step));
  const float step_size = static_cast<float>(learning_rate / bias_correction1);
  const float bias_correction2_sqrt = static_cast<float>(std::sqrt(bias_correction2));
  const float eps = static_cast<float>(options.eps);
  const kernels::AdamWScalars scalars{decayed,   decay_factor,          beta1,
                                      beta2,     one_minus_beta1,       one_minus_beta2,
                                      step_size, bias_correction2_sqrt, eps};
  const kernels::VectorKernels& vector = kernels::ActiveVectorKernels();
  ParallelFor(
      params.size(), ctx,
      [&](int64_t begin, int64_t end, int) {
        vector.adamw_update(params.data() + begin, grads.data() + begin, m.data() + begin,
                            v.data() + begin, end - begin, scalars);
      },
      8192);
}

}  // namespace qkv::train
