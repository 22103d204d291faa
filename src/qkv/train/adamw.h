// AdamW (Loshchilov & Hutter): Adam with weight decay decoupled from the gradient, with the
// exact update order of torch.optim.AdamW (PyTorch 1.13, single-tensor path), so that runs
// agree with PyTorch step for step:
//   p *= 1 - lr * weight_decay                  (only for decayed parameters)
//   m = beta1 * m + (1 - beta1) * g;  v = beta2 * v + (1 - beta2) * g^2
//   p -= (lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
#pragma once

#include <cstdint>
#include <span>

#include "qkv/core/tensor_view.h"
#include "qkv/runtime/execution_context.h"

namespace qkv::train {

struct AdamWOptions {
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double weight_decay = 0.1;
  void Validate() const;  // throws qkv::Error naming a bad value
};

// One tensor's update. params, grads, m, v: the same shape. step is the 1-based number of this
// update (for the bias corrections). decayed: whether weight decay applies to this tensor.
void AdamWUpdate(TensorView<float> params, ConstTensorView<float> grads, TensorView<float> m,
                 TensorView<float> v, int64_t step, double learning_rate, bool decayed,
                 const AdamWOptions& options, const ExecutionContext& ctx);

// One parameter tensor of a multi-tensor update: params, grads, m, v of the same shape.
struct AdamWTensor {
  TensorView<float> params;
  ConstTensorView<float> grads;
  TensorView<float> m, v;
  bool decayed;
};

// Every tensor in one parallel pass (one wake-up of the thread team instead of one per tensor,
// which dominates the update of a small model). Gradients are multiplied by grad_scale as they
// are read (gradient clipping, train/grad_clip.h), which gives exactly what scaling them in
// place first would. The same result as AdamWUpdate per tensor.
void AdamWUpdateAll(std::span<const AdamWTensor> tensors, int64_t step, double learning_rate,
                    const AdamWOptions& options, float grad_scale, const ExecutionContext& ctx);

}  // namespace qkv::train
