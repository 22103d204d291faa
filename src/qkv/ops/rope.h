// Rotary position embedding (RoPE, Su et al. 2021): each pair (a, b) of a head's query or key
// coordinates is rotated by the angle p * theta^(-2i/head_dim), p the token's position and i
// the pair's index, so that q_p · k_s depends only on p - s.
// Derivation of the backward pass: docs/derivations/rope.md.
#pragma once

#include <cstdint>
#include <vector>

#include "qkv/core/tensor_view.h"
#include "qkv/runtime/execution_context.h"

namespace qkv::ops {

enum class RopeStyle {
  kHalf,         // coordinate i pairs with i + head_dim/2 (Hugging Face Llama, GPT-NeoX)
  kInterleaved,  // coordinate 2i pairs with 2i + 1 (the RoFormer paper, Meta's Llama)
};

// Ways of running a RoPE model past the context it was trained on, by a factor s:
enum class RopeScaling {
  kNone,
  kLinear,  // position interpolation (Chen et al. 2023): positions divided by s
  kNtk,     // "NTK-aware" scaling: base theta * s^(D / (D - 2))
  // Dynamic NTK (Hugging Face's "dynamic"): for a sequence of L > L0 = original_context
  // tokens, base theta * (s L / L0 - (s - 1))^(D / (D - 2)); plain RoPE up to L0.
  kDynamic,
  kYarn,  // YaRN (Peng et al. 2023): per-frequency blend of interpolation and extrapolation,
          // plus an attention temperature (q and k scaled by 0.1 ln s + 1)
  // Llama 3.1's: pairs whose wavelength is below L0 / high_freq_factor keep their frequency,
  // above L0 / low_freq_factor are interpolated (f / s), and a smooth blend in between.
  kLlama3,
};

struct RopeConfig {
  double theta = 10000.0;  // the base; > 0
  RopeStyle style = RopeStyle::kHalf;
  RopeScaling scaling = RopeScaling::kNone;
  double factor = 1.0;           // s >= 1; at 1 every scaling is exactly plain RoPE
  int64_t original_context = 0;  // the training context; YaRN needs it (> 0)
  double yarn_beta_fast = 32.0;  // YaRN: pairs with more rotations than this over the original
  double yarn_beta_slow = 1.0;   // context extrapolate; fewer than this interpolate
  double yarn_attention_factor = 0.0;     // YaRN's temperature; 0: 0.1 ln s + 1
  double low_freq_factor = 1.0;           // llama3
  double high_freq_factor = 4.0;          // llama3
  int64_t sequence_length = 0;            // dynamic: the length of the sequence being encoded
  void Validate(int64_t head_dim) const;  // throws qkv::Error naming a bad value
};

// The angular frequency of each of the head_dim / 2 pairs under config's scaling:
// theta^(-2i/D) for plain RoPE.
std::vector<double> RopeFrequencies(const RopeConfig& config, int64_t head_dim);

// The factor by which rotated coordinates are multiplied (YaRN's temperature; 1 otherwise).
double RopeMagnitude(const RopeConfig& config);

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
