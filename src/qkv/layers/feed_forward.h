// The position-wise feed-forward network after attention, which gives the block its
// non-linearity: out = W_down · act(W_up · x + b_up) + b_down, with act GELU (tanh or exact),
// ReLU, SiLU (swish), or SwiGLU (act(u) = silu(gate) * value, gate and value being the two halves
// of a (2F) up-projection). Legend: rows = B*T, C width, F hidden size.
#pragma once

#include <cstdint>

#include "qkv/layers/parameter.h"
#include "qkv/runtime/execution_context.h"

namespace qkv::layers {

enum class FfnKind { kGeluTanh, kGelu, kRelu, kSilu, kSwiGlu };

struct FeedForwardConfig {
  int64_t width = 0;   // C
  int64_t hidden = 0;  // F
  FfnKind kind = FfnKind::kGeluTanh;
  bool bias = true;
  // Rows of the up-projection: 2F for SwiGLU (rows [0, F) the gate, [F, 2F) the value), else F.
  int64_t up_rows() const { return kind == FfnKind::kSwiGlu ? 2 * hidden : hidden; }
};

template <typename T>
struct FeedForwardParams {
  TensorView<T> up_weight;    // (up_rows, C)
  TensorView<T> up_bias;      // (up_rows) or empty
  TensorView<T> down_weight;  // (C, F)
  TensorView<T> down_bias;    // (C) or empty
};

// "up.weight", "up.bias", "down.weight", "down.bias" (down writes into the residual stream).
template <typename T, typename Visitor>
void ForEachFeedForwardParameter(const FeedForwardConfig& config, FeedForwardParams<T>& params,
                                 Visitor&& visit) {
  const int64_t c = config.width, f = config.hidden, up = config.up_rows();
  visit(ParameterInfo{"up.weight", Shape{up, c}, true, ParameterInit::kNormal}, params.up_weight);
  if (config.bias) {
    visit(ParameterInfo{"up.bias", Shape{up}, false, ParameterInit::kZeros}, params.up_bias);
  }
  visit(ParameterInfo{"down.weight", Shape{c, f}, true, ParameterInit::kNormalResidual},
        params.down_weight);
  if (config.bias) {
    visit(ParameterInfo{"down.bias", Shape{c}, false, ParameterInit::kZeros}, params.down_bias);
  }
}

// What forward keeps for backward, for `rows` input rows.
template <typename T>
struct FeedForwardActivations {
  TensorView<T> up;           // (rows, up_rows)
  TensorView<T> gate, value;  // (rows, F) each, SwiGLU only: the halves of `up`
  TensorView<T> hidden;       // (rows, F) after the activation
  TensorView<T> out;          // (rows, C)
};

template <typename T>
FeedForwardActivations<T> AllocateFeedForwardActivations(Arena& arena,
                                                         const FeedForwardConfig& config,
                                                         int64_t rows);

// input (rows, C) -> acts.out (rows, C).
template <typename T>
void FeedForwardForward(const FeedForwardConfig& config, const FeedForwardParams<T>& params,
                        ConstTensorView<T> input, const FeedForwardActivations<T>& acts,
                        const ExecutionContext& ctx);

// Writes d_input (=) from d_out; accumulates the parameter gradients (+=). Needs
// FeedForwardBackwardScratchBytes of ctx.scratch.
template <typename T>
void FeedForwardBackward(const FeedForwardConfig& config, const FeedForwardParams<T>& params,
                         ConstTensorView<T> input, const FeedForwardActivations<T>& acts,
                         ConstTensorView<T> d_out, TensorView<T> d_input,
                         const FeedForwardParams<T>& d_params, const ExecutionContext& ctx);

// Measured by running the backward pass's scratch allocation against a counting arena.
size_t FeedForwardBackwardScratchBytes(const FeedForwardConfig& config, int64_t rows,
                                       size_t element_size);

}  // namespace qkv::layers
