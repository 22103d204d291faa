// Rotary position embedding (RoPE, Su et al. 2021): each pair (a, b) of a head's query or key
// coordinates is rotated by the angle p * theta^(-2i/head_dim), p the token's position and i
// the pair's index, so that q_p · k_s depends only on p - s.
// Derivation of the backward pass: docs/derivations/rope.md.
#pragma once

#include <cstdint>

#include "qkv/core/tensor_view.h"
#include "qkv/runtime/execution_context.h"

namespace qkv::ops {

enum class RopeStyle {
  kHalf,         // coordinate i pairs with i + head_dim/2 (Hugging Face Llama, GPT-NeoX)
  kInterleaved,  // coordinate 2i pairs with 2i + 1 (the RoFormer paper, Meta's Llama)
};

struct RopeConfig {
  double theta = 10000.0;  // the base; > 0
  RopeStyle style = RopeStyle::kHalf;
};

// input, output: (batch, seq, num_heads * head_dim), head h in columns [h*head_dim, ...).
// The token at sequence index t has position start_position + t. head_dim must be even.
// output overwritten, may alias input. Angles are computed in double.
template <typename T>
void RopeForward(ConstTensorView<T> input, int64_t num_heads, const RopeConfig& config,
                 int64_t start_position, TensorView<T> output, const ExecutionContext& ctx);

// The rotation is orthogonal, so the backward pass rotates d_output by the opposite angle.
// Writes d_input (=); may alias d_output.
template <typename T>
void RopeBackward(ConstTensorView<T> d_output, int64_t num_heads, const RopeConfig& config,
                  int64_t start_position, TensorView<T> d_input, const ExecutionContext& ctx);

}  // namespace qkv::ops
