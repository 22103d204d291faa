#include "qkv/train/adamw.h"

#include <cmath>

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
  ParallelFor(
      params.size(), ctx,
      [&](int64_t begin, int64_t end, int) {
        float* p = params.data();
        const float* g = grads.data();
        float* m_data = m.data();
        float* v_data = v.data();
        for (int64_t i = begin; i < end; ++i) {
          if (decayed) p[i] *= decay_factor;
          m_data[i] = m_data[i] * beta1 + one_minus_beta1 * g[i];
          v_data[i] = v_data[i] * beta2 + one_minus_beta2 * g[i] * g[i];
          const float denom = std::sqrt(v_data[i]) / bias_correction2_sqrt + eps;
          p[i] -= step_size * (m_data[i] / denom);
        }
      },
      8192);
}

}  // namespace qkv::train
