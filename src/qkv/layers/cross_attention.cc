#include "qkv/layers/cross_attention.h"

#include "qkv/layers/head_packing.h"
#include "qkv/ops/linear.h"
#include "qkv/ops/op_checks.h"

namespace qkv::layers {

void CrossAttentionConfig::Validate() const {
  QKV_CHECK(width > 0, "cross_attention: width must be > 0, got ", width);
  QKV_CHECK(num_heads > 0, "cross_attention: num_heads must be > 0, got ", num_heads);
  QKV_CHECK(width % num_heads == 0, "cross_attention: width ", width,
            " is not divisible by num_heads ", num_heads);
}

template <typename T>
CrossAttentionActivations<T> AllocateCrossAttentionActivations(Arena& arena,
                                                               const CrossAttentionConfig& config,
                                                               int64_t batch, int64_t query_len,
                                                               int64_t key_len) {
  config.Validate();
  ops::CheckPositive("cross_attention", "batch", batch);
  ops::CheckPositive("cross_attention", "query length", query_len);
  ops::CheckPositive("cross_attention", "key length", key_len);
  const int64_t c = config.width;
  CrossAttentionActivations<T> acts;
  acts.q = arena.Allocate<T>(Shape{batch, query_len, c});
  acts.kv = arena.Allocate<T>(Shape{batch * key_len, 2 * c});
  acts.k = arena.Allocate<T>(Shape{batch, key_len, c});
  acts.v = arena.Allocate<T>(Shape{batch, key_len, c});
  acts.probs = arena.Allocate<T>(Shape{batch, config.num_heads, query_len, key_len});
  acts.attended = arena.Allocate<T>(Shape{batch * query_len, c});
  return acts;
}

namespace {

template <typename T>
void CheckCrossShapes(const CrossAttentionConfig& config, ConstTensorView<T> input,
                      ConstTensorView<T> memory) {
  config.Validate();
  ops::CheckRank("cross_attention", "input", input, 3);
  ops::CheckRank("cross_attention", "memory", memory, 3);
  QKV_CHECK(input.dim(2) == config.width, "cross_attention: input width ", input.dim(2),
            " does not match the layer width ", config.width);
  QKV_CHECK(memory.dim(2) == config.width, "cross_attention: memory width ", memory.dim(2),
            " does not match the layer width ", config.width);
  QKV_CHECK(memory.dim(0) == input.dim(0), "cross_attention: memory batch ", memory.dim(0),
            " differs from input batch ", input.dim(0));
}

// Backward's gradients of the projections' outputs.
template <typename T>
struct BackwardScratch {
  TensorView<T> d_attended;  // (B*Tq, C)
  TensorView<T> d_q;         // (B, Tq, C)
  TensorView<T> d_k, d_v;    // (B, Tk, C) each
  TensorView<T> d_kv;        // (B*Tk, 2C)
};

template <typename T>
BackwardScratch<T> AllocateBackwardScratch(Arena& arena, int64_t width, int64_t batch,
                                           int64_t query_len, int64_t key_len) {
  BackwardScratch<T> s;
  s.d_attended = arena.Allocate<T>(Shape{batch * query_len, width});
  s.d_q = arena.Allocate<T>(Shape{batch, query_len, width});
  s.d_k = arena.Allocate<T>(Shape{batch, key_len, width});
  s.d_v = arena.Allocate<T>(Shape{batch, key_len, width});
  s.d_kv = arena.Allocate<T>(Shape{batch * key_len, 2 * width});
  return s;
}

}  // namespace

size_t CrossAttentionBackwardScratchBytes(const CrossAttentionConfig& config, int64_t batch,
                                          int64_t query_len, int64_t key_len, int num_threads,
                                          size_t element_size) {
  const size_t own = MeasureBytes(element_size, [&](Arena& arena, auto element) {
    AllocateBackwardScratch<decltype(element)>(arena, config.width, batch, query_len, key_len);
  });
  return own + (element_size == sizeof(float)
                    ? ops::AttentionBackwardScratchBytes<float>(query_len, key_len, num_threads)
                    : ops::AttentionBackwardScratchBytes<double>(query_len, key_len, num_threads));
}

template <typename T>
void CrossAttentionForward(const CrossAttentionConfig& config,
                           const CrossAttentionParams<T>& params, ConstTensorView<T> input,
                           ConstTensorView<T> memory, ConstTensorView<uint8_t> key_padding,
                           const CrossAttentionActivations<T>& acts, TensorView<T> output,
                           const ExecutionContext& ctx) {
  CheckCrossShapes(config, input, memory);
  ops::CheckShape("cross_attention", "output", output, input.shape());
  ops::CheckShape("cross_attention", "acts.q", acts.q, input.shape());
  ops::CheckShape("cross_attention", "acts.k", acts.k, memory.shape());
  const int64_t c = config.width;
  const int64_t query_rows = input.dim(0) * input.dim(1);
  const int64_t key_rows = memory.dim(0) * memory.dim(1);

  ops::LinearForward<T>(input.Reshape(Shape{query_rows, c}), params.q_weight, params.q_bias,
                        acts.q.Reshape(Shape{query_rows, c}), ctx);
  ops::LinearForward<T>(memory.Reshape(Shape{key_rows, c}), params.kv_weight, params.kv_bias,
                        acts.kv, ctx);
  UnpackColumns<T>(acts.kv.data(), key_rows, 2 * c, 0, c, acts.k.data(), ctx);
  UnpackColumns<T>(acts.kv.data(), key_rows, 2 * c, c, c, acts.v.data(), ctx);
  ops::AttentionMask mask{false, key_padding};
  ops::AttentionForward<T>(acts.q, acts.k, acts.v, config.num_heads, mask,
                           acts.attended.Reshape(input.shape()), acts.probs, ctx);
  ops::LinearForward<T>(acts.attended, params.out_weight, params.out_bias,
                        output.Reshape(Shape{query_rows, c}), ctx);
}

template <typename T>
void CrossAttentionBackward(const CrossAttentionConfig& config,
                            const CrossAttentionParams<T>& params, ConstTensorView<T> input,
                            ConstTensorView<T> memory, const CrossAttentionActivations<T>& acts,
                            ConstTensorView<T> d_output, TensorView<T> d_input,
                            TensorView<T> d_memory, const CrossAttentionParams<T>& d_params,
                            const ExecutionContext& ctx) {
  CheckCrossShapes(config, input, memory);
  ops::CheckShape("cross_attention", "d_output", d_output, input.shape());
  ops::CheckShape("cross_attention", "d_input", d_input, input.shape());
  ops::CheckShape("cross_attention", "d_memory", d_memory, memory.shape());
  const int64_t c = config.width;
  const int64_t query_rows = input.dim(0) * input.dim(1);
  const int64_t key_rows = memory.dim(0) * memory.dim(1);

  Arena& scratch = ctx.Scratch();
  ArenaScope release_scratch(scratch);
  const BackwardScratch<T> s =
      AllocateBackwardScratch<T>(scratch, c, input.dim(0), input.dim(1), memory.dim(1));
  const TensorView<T> d_attended = s.d_attended, d_q = s.d_q, d_k = s.d_k, d_v = s.d_v,
                      d_kv = s.d_kv;

  ops::LinearBackward<T>(d_output.Reshape(Shape{query_rows, c}), acts.attended, params.out_weight,
                         d_attended, d_params.out_weight, d_params.out_bias, ctx);
  ops::AttentionBackward<T>(d_attended.Reshape(input.shape()), acts.q, acts.k, acts.v, acts.probs,
                            config.num_heads, d_q, d_k, d_v, ctx);
  PackColumns<T>(d_k.data(), key_rows, 2 * c, 0, c, d_kv.data(), ctx);
  PackColumns<T>(d_v.data(), key_rows, 2 * c, c, c, d_kv.data(), ctx);
  ops::LinearBackward<T>(d_kv, memory.Reshape(Shape{key_rows, c}), params.kv_weight,
                         d_memory.Reshape(Shape{key_rows, c}), d_params.kv_weight, d_params.kv_bias,
                         ctx);
  ops::LinearBackward<T>(d_q.Reshape(Shape{query_rows, c}), input.Reshape(Shape{query_rows, c}),
                         params.q_weight, d_input.Reshape(Shape{query_rows, c}), d_params.q_weight,
                         d_params.q_bias, ctx);
}

template CrossAttentionActivations<float> AllocateCrossAttentionActivations<float>(
    Arena&, const CrossAttentionConfig&, int64_t, int64_t, int64_t);
template CrossAttentionActivations<double> AllocateCrossAttentionActivations<double>(
    Arena&, const CrossAttentionConfig&, int64_t, int64_t, int64_t);
template void CrossAttentionForward<float>(const CrossAttentionConfig&,
                                           const CrossAttentionParams<float>&,
                                           ConstTensorView<float>, ConstTensorView<float>,
                                           ConstTensorView<uint8_t>,
                                           const CrossAttentionActivations<float>&,
                                           TensorView<float>, const ExecutionContext&);
template void CrossAttentionForward<double>(const CrossAttentionConfig&,
                                            const CrossAttentionParams<double>&,
                                            ConstTensorView<double>, ConstTensorView<double>,
                                            ConstTensorView<uint8_t>,
                                            const CrossAttentionActivations<double>&,
                                            TensorView<double>, const ExecutionContext&);
template void CrossAttentionBackward<float>(const CrossAttentionConfig&,
                                            const CrossAttentionParams<float>&,
                                            ConstTensorView<float>, ConstTensorView<float>,
                                            const CrossAttentionActivations<float>&,
                                            ConstTensorView<float>, TensorView<float>,
                                            TensorView<float>, const CrossAttentionParams<float>&,
                                            const ExecutionContext&);
template void CrossAttentionBackward<double>(
    const CrossAttentionConfig&, const CrossAttentionParams<double>&, ConstTensorView<double>,
    ConstTensorView<double>, const CrossAttentionActivations<double>&, ConstTensorView<double>,
    TensorView<double>, TensorView<double>, const CrossAttentionParams<double>&,
    const ExecutionContext&);

}  // namespace qkv::layers
