#include "qkv/layers/norm.h"

#include "qkv/ops/layer_norm.h"
#include "qkv/ops/rms_norm.h"

namespace qkv::layers {

template <typename T>
NormSaved<T> AllocateNormSaved(Arena& arena, int64_t rows) {
  NormSaved<T> saved;
  saved.mean = arena.Allocate<T>(Shape{rows});
  saved.rstd = arena.Allocate<T>(Shape{rows});
  return saved;
}

template <typename T>
void NormForward(const NormConfig& config, const NormParams<T>& params, ConstTensorView<T> input,
                 TensorView<T> output, const NormSaved<T>& saved, const ExecutionContext& ctx) {
  const T eps = static_cast<T>(config.eps);
  if (config.kind == NormKind::kLayerNorm) {
    ops::LayerNormForward<T>(input, params.weight, params.bias, eps, output,
                             {saved.mean, saved.rstd}, ctx);
  } else {
    ops::RmsNormForward<T>(input, params.weight, eps, output, saved.rstd, ctx);
  }
}

template <typename T>
void NormBackward(const NormConfig& config, const NormParams<T>& params,
                  ConstTensorView<T> d_output, ConstTensorView<T> input, const NormSaved<T>& saved,
                  TensorView<T> d_input, const NormParams<T>& d_params,
                  const ExecutionContext& ctx) {
  if (config.kind == NormKind::kLayerNorm) {
    ops::LayerNormBackward<T>(d_output, input, params.weight, {saved.mean, saved.rstd}, d_input,
                              d_params.weight, d_params.bias, ctx);
  } else {
    ops::RmsNormBackward<T>(d_output, input, params.weight, saved.rstd, d_input, d_params.weight,
                            ctx);
  }
}

#define QKV_INSTANTIATE_NORM(T)                                                              \
  template NormSaved<T> AllocateNormSaved<T>(Arena&, int64_t);                               \
  template void NormForward<T>(const NormConfig&, const NormParams<T>&, ConstTensorView<T>,  \
                               TensorView<T>, const NormSaved<T>&, const ExecutionContext&); \
  template void NormBackward<T>(const NormConfig&, const NormParams<T>&, ConstTensorView<T>, \
                                ConstTensorView<T>, const NormSaved<T>&, TensorView<T>,      \
                                const NormParams<T>&, const ExecutionContext&);
QKV_INSTANTIATE_NORM(float)
QKV_INSTANTIATE_NORM(double)
#undef QKV_INSTANTIATE_NORM

}  // namespace qkv::layers
