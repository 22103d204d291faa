// How a layer declares its parameters: once, in a ForEach<Layer>Parameter function that calls
// visit(const ParameterInfo&, TensorView<T>& slot) for each of its tensors, in a fixed order.
// Everything that walks parameters — allocation (for values, gradients and optimizer
// moments), initialisation, weight decay, checkpoint layouts, counting — is built on these
// declarations, so there is no second list to keep in step.
//
// Names are qkv's own ("attention.qkv.weight"); a layer's names are relative, and the layer
// that contains it prefixes them ("blocks.3." + ...). How a checkpoint format names and lays
// out a tensor is the business of model/checkpoint_layout.h, not of the layers.
#pragma once

#include <cstdint>
#include <string>
#include <utility>

#include "qkv/core/arena.h"
#include "qkv/core/shape.h"
#include "qkv/core/tensor_view.h"

namespace qkv::layers {

// How a parameter starts out. The model turns kNormal / kNormalResidual into standard
// deviations (GPT-2: 0.02, and 0.02 / sqrt(2 * layers) for the projections that write into the
// residual stream, so the stream's variance does not grow with depth).
enum class ParameterInit { kZeros, kOnes, kNormal, kNormalResidual };

struct ParameterInfo {
  std::string name;      // qkv's name, relative to the declaring layer until prefixed
  Shape shape;           // linear weights are (out_features, in_features), as torch.nn.Linear
  bool decayed = false;  // AdamW weight decay applies (matrices, as nanoGPT)
  ParameterInit init = ParameterInit::kZeros;
};

// A visitor that prefixes every name before passing it on to `visit`.
template <typename Visitor>
auto Prefixed(std::string prefix, Visitor& visit) {
  return [prefix = std::move(prefix), &visit](const ParameterInfo& info, auto& slot) {
    ParameterInfo named = info;
    named.name = prefix + info.name;
    visit(named, slot);
  };
}

// The visitor that allocates every slot from arena: ForEachXParameter(config, params,
// AllocateFrom<T>(arena)) gives views for values, gradients or moments alike.
template <typename T>
auto AllocateFrom(Arena& arena) {
  return [&arena](const ParameterInfo& info, TensorView<T>& slot) {
    slot = arena.Allocate<T>(info.shape);
  };
}

}  // namespace qkv::layers
