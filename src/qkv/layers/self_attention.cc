#include "qkv/layers/self_attention.h"

#include "qkv/layers/head_packing.h"
#include "qkv/ops/linear.h"
#include "qkv/ops/op_checks.h"

namespace qkv::layers {

void SelfAttentionConfig::Validate() const {
  QKV_CHECK(width > 0, "self_attention: width must be > 0, got ", width);
  QKV_CHECK(num_heads > 0, "self_attention: num_heads must be > 0, got ", num_heads);
  QKV_CHECK(width % num_heads == 0, "self_attention: width ", width,
            " is not divisible by num_heads ", num_heads);
  if (rope.has_value()) {
    QKV_CHECK((width / num_heads) % 2 == 0, "self_attention: RoPE needs an even head size, got ",
              width / num_heads, " (width ", width, " / ", num_heads, " heads)");
    QKV_CHECK(rope->theta > 0, "self_attention: RoPE theta must be > 0, got ", rope->theta);
  }
}

template <typename T>
SelfAttentionParams<T> AllocateSelfAttentionParams(Arena& arena,
                                                   const SelfAttentionConfig& config) {
  config.Validate();
  const int64_t c = config.width;
  SelfAttentionParams<T> params;
  params.qkv_weight = arena.Allocate<T>(Shape{3 * c, c});
  if (config.bias) params.qkv_bias = arena.Allocate<T>(Shape{3 * c});
  params.out_weight = arena.Allocate<T>(Shape{c, c});
  if (config.bias) params.out_bias = arena.Allocate<T>(Shape{c});
  return params;
}

template <typename T>
SelfAttentionActivations<T> AllocateSelfAttentionActivations(Arena& arena,
                                                             const SelfAttentionConfig& config,
                                                             int64_t batch, int64_t seq_len) {
  config.Validate();
  ops::CheckPositive("self_attention", "batch", batch);
  ops::CheckPositive("self_attention", "sequence length", seq_len);
  const int64_t c = config.width;
  SelfAttentionActivations<T> acts;
  acts.qkv = arena.Allocate<T>(Shape{batch * seq_len, 3 * c});
  acts.q = arena.Allocate<T>(Shape{batch, seq_len, c});
  acts.k = arena.Allocate<T>(Shape{batch, seq_len, c});
  acts.v = arena.Allocate<T>(Shape{batch, seq_len, c});
  acts.probs = arena.Allocate<T>(Shape{batch, config.num_heads, seq_len, seq_len});
  acts.attended = arena.Allocate<T>(Shape{batch * seq_len, c});
  return acts;
}

template <typename T>
void SelfAttentionForward(const SelfAttentionConfig& config, const SelfAttentionParams<T>& params,
                          ConstTensorView<T> input, int64_t start_position,
                          ConstTensorView<uint8_t> key_padding,
                          const SelfAttentionActivations<T>& acts, TensorView<T> output,
                          const ExecutionContext& ctx) {
  config.Validate();
  ops::CheckRank("self_attention", "input", input, 3);
  const int64_t batch = input.dim(0), seq = input.dim(1), c = config.width;
  QKV_CHECK(input.dim(2) == c, "self_attention: input width ", input.dim(2),
            " does not match the layer width ", c);
  ops::CheckShape("self_attention", "acts.q", acts.q, input.shape());
  ops::CheckShape("self_attention", "output", output, input.shape());
  const int64_t rows = batch * seq;

  ops::LinearForward<T>(input.Reshape(Shape{rows, c}), params.qkv_weight, params.qkv_bias, acts.qkv,
                        ctx);
  UnpackColumns<T>(acts.qkv.data(), rows, c, 3, 0, acts.q.data(), ctx);
  UnpackColumns<T>(acts.qkv.data(), rows, c, 3, 1, acts.k.data(), ctx);
  UnpackColumns<T>(acts.qkv.data(), rows, c, 3, 2, acts.v.data(), ctx);
  if (config.rope.has_value()) {
    ops::RopeForward<T>(acts.q, config.num_heads, *config.rope, start_position, acts.q, ctx);
    ops::RopeForward<T>(acts.k, config.num_heads, *config.rope, start_position, acts.k, ctx);
  }
  ops::AttentionMask mask{config.causal, key_padding};
  ops::AttentionForward<T>(acts.q, acts.k, acts.v, config.num_heads, mask,
                           acts.attended.Reshape(input.shape()), acts.probs, ctx);
  ops::LinearForward<T>(acts.attended, params.out_weight, params.out_bias,
                        output.Reshape(Shape{rows, c}), ctx);
}

template <typename T>
void SelfAttentionBackward(const SelfAttentionConfig& config, const SelfAttentionParams<T>& params,
                           ConstTensorView<T> input, int64_t start_position,
                           const SelfAttentionActivations<T>& acts, ConstTensorView<T> d_output,
                           TensorView<T> d_input, const SelfAttentionParams<T>& d_params,
                           const ExecutionContext& ctx) {
  config.Validate();
  ops::CheckRank("self_attention", "input", input, 3);
  ops::CheckShape("self_attention", "d_output", d_output, input.shape());
  ops::CheckShape("self_attention", "d_input", d_input, input.shape());
  const int64_t rows = input.dim(0) * input.dim(1), c = config.width;

  Arena& scratch = ctx.Scratch();
  ArenaScope release_scratch(scratch);
  TensorView<T> d_attended = scratch.Allocate<T>(Shape{rows, c});
  TensorView<T> d_q = scratch.Allocate<T>(input.shape());
  TensorView<T> d_k = scratch.Allocate<T>(input.shape());
  TensorView<T> d_v = scratch.Allocate<T>(input.shape());
  TensorView<T> d_qkv = scratch.Allocate<T>(Shape{rows, 3 * c});

  ops::LinearBackward<T>(d_output.Reshape(Shape{rows, c}), acts.attended, params.out_weight,
                         d_attended, d_params.out_weight, d_params.out_bias, ctx);
  ops::AttentionBackward<T>(d_attended.Reshape(input.shape()), acts.q, acts.k, acts.v, acts.probs,
                            config.num_heads, d_q, d_k, d_v, ctx);
  if (config.rope.has_value()) {
    ops::RopeBackward<T>(d_q, config.num_heads, *config.rope, start_position, d_q, ctx);
    ops::RopeBackward<T>(d_k, config.num_heads, *config.rope, start_position, d_k, ctx);
  }
  PackColumns<T>(d_q.data(), rows, c, 3, 0, d_qkv.data(), ctx);
  PackColumns<T>(d_k.data(), rows, c, 3, 1, d_qkv.data(), ctx);
  PackColumns<T>(d_v.data(), rows, c, 3, 2, d_qkv.data(), ctx);
  ops::LinearBackward<T>(d_qkv, input.Reshape(Shape{rows, c}), params.qkv_weight,
                         d_input.Reshape(Shape{rows, c}), d_params.qkv_weight, d_params.qkv_bias,
                         ctx);
}

template SelfAttentionParams<float> AllocateSelfAttentionParams<float>(Arena&,
                                                                       const SelfAttentionConfig&);
template SelfAttentionParams<double> AllocateSelfAttentionParams<double>(
    Arena&, const SelfAttentionConfig&);
template SelfAttentionActivations<float> AllocateSelfAttentionActivations<float>(
    Arena&, const SelfAttentionConfig&, int64_t, int64_t);
template SelfAttentionActivations<double> AllocateSelfAttentionActivations<double>(
    Arena&, const SelfAttentionConfig&, int64_t, int64_t);
template void SelfAttentionForward<float>(const SelfAttentionConfig&,
                                          const SelfAttentionParams<float>&, ConstTensorView<float>,
                                          int64_t, ConstTensorView<uint8_t>,
                                          const SelfAttentionActivations<float>&, TensorView<float>,
                                          const ExecutionContext&);
template void SelfAttentionForward<double>(const SelfAttentionConfig&,
                                           const SelfAttentionParams<double>&,
                                           ConstTensorView<double>, int64_t,
                                           ConstTensorView<uint8_t>,
                                           const SelfAttentionActivations<double>&,
                                           TensorView<double>, const ExecutionContext&);
template void SelfAttentionBackward<float>(
    const SelfAttentionConfig&, const SelfAttentionParams<float>&, ConstTensorView<float>, int64_t,
    const SelfAttentionActivations<float>&, ConstTensorView<float>, TensorView<float>,
    const SelfAttentionParams<float>&, const ExecutionContext&);
template void SelfAttentionBackward<double>(
    const SelfAttentionConfig&, const SelfAttentionParams<double>&, ConstTensorView<double>,
    int64_t, const SelfAttentionActivations<double>&, ConstTensorView<double>, TensorView<double>,
    const SelfAttentionParams<double>&, const ExecutionContext&);

}  // namespace qkv::layers
