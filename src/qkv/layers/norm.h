// Normalisation of each row of a (rows, C) input: LayerNorm (with or without bias) or RMSNorm,
// with a learned (C) gain. One layer so the block, the final norm and every architecture choose
// between them in one place.
#pragma once

#include <cstdint>

#include "qkv/layers/parameter.h"
#include "qkv/runtime/execution_context.h"

namespace qkv::layers {

enum class NormKind { kLayerNorm, kRmsNorm };

struct NormConfig {
  NormKind kind = NormKind::kLayerNorm;
  int64_t width = 0;  // C
  bool bias = true;   // LayerNorm only: RMSNorm has no bias
  double eps = 1e-5;
  bool has_bias() const { return kind == NormKind::kLayerNorm && bias; }
};

template <typename T>
struct NormParams {
  TensorView<T> weight;  // (C)
  TensorView<T> bias;    // (C), or empty (RMSNorm, or LayerNorm without bias)
};

// "weight" (init 1) and, with a bias, "bias" (init 0).
template <typename T, typename Visitor>
void ForEachNormParameter(const NormConfig& config, NormParams<T>& params, Visitor&& visit) {
  visit(ParameterInfo{"weight", Shape{config.width}, false, ParameterInit::kOnes}, params.weight);
  if (config.has_bias()) {
    visit(ParameterInfo{"bias", Shape{config.width}, false, ParameterInit::kZeros}, params.bias);
  }
}

// What forward keeps for backward.
template <typename T>
struct NormSaved {
  TensorView<T> mean;  // (rows), LayerNorm only (allocated for both: it is small)
  TensorView<T> rstd;  // (rows): 1/std for LayerNorm, 1/rms for RMSNorm
};

template <typename T>
NormSaved<T> AllocateNormSaved(Arena& arena, int64_t rows);

// input, output: (rows, C); output may not alias input.
template <typename T>
void NormForward(const NormConfig& config, const NormParams<T>& params, ConstTensorView<T> input,
                 TensorView<T> output, const NormSaved<T>& saved, const ExecutionContext& ctx);

// Writes d_input (=); accumulates the parameter gradients (+=).
template <typename T>
void NormBackward(const NormConfig& config, const NormParams<T>& params,
                  ConstTensorView<T> d_output, ConstTensorView<T> input, const NormSaved<T>& saved,
                  TensorView<T> d_input, const NormParams<T>& d_params,
                  const ExecutionContext& ctx);

}  // namespace qkv::layers
