// Gradient clipping by global norm, as torch.nn.utils.clip_grad_norm_: every gradient is scaled
// by min(1, max_norm / (norm + 1e-6)), where norm is the L2 norm of all gradients together.
#pragma once

#include <span>
#include <vector>

#include "qkv/core/tensor_view.h"
#include "qkv/runtime/execution_context.h"

namespace qkv::train {

// The L2 norm of all the tensors together, in one parallel pass over their concatenation,
// summed in double in a fixed order (deterministic for a given thread count).
double GlobalNorm(std::span<const ConstTensorView<float>> tensors, const ExecutionContext& ctx);

// min(1, max_norm / (norm + 1e-6)) rounded to float: the factor clipping multiplies every
// gradient by. max_norm > 0.
float ClipScale(double norm, double max_norm);

// Scales the gradients when their global norm exceeds max_norm (> 0). Returns the norm before
// clipping.
double ClipGradientsByGlobalNorm(const std::vector<TensorView<float>>& gradients, double max_norm,
                                 const ExecutionContext& ctx);

}  // namespace qkv::train
