#include "qkv/layers/cross_attention.h"

#include "qkv/layers/head_packing.h"
#include "qkv/ops/attention_one_query.h"
#include "qkv/ops/flash_attention.h"
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
  if (config.kernel == AttentionKernel::kSimple) {
    acts.probs = arena.Allocate<T>(Shape{batch, config.num_heads, query_len, key_len});
  } else {
    acts.log_sum_exp = arena.Allocate<T>(Shape{batch, config.num_heads, query_len});
  }
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

// CrossAttentionForwardStep's buffers.
template <typename T>
struct StepScratch {
  TensorView<T> q;         // (N, 1, C)
  TensorView<T> scores;    // (threads, S): one head's attention weights per thread
  TensorView<T> attended;  // (N, 1, C)
};

template <typename T>
StepScratch<T> AllocateStepScratch(Arena& arena, const CrossAttentionConfig& config,
                                   int64_t sequences, int64_t key_len, int num_threads) {
  StepScratch<T> s;
  s.q = arena.Allocate<T>(Shape{sequences, 1, config.width});
  s.scores = arena.Allocate<T>(Shape{num_threads, key_len});
  s.attended = arena.Allocate<T>(Shape{sequences, 1, config.width});
  return s;
}

}  // namespace

template <typename T>
void CrossAttentionKeysValues(const CrossAttentionConfig& config,
                              const CrossAttentionParams<T>& params, ConstTensorView<T> memory,
                              TensorView<T> k, TensorView<T> v, const ExecutionContext& ctx) {
  config.Validate();
  ops::CheckRank("cross_attention", "memory", memory, 3);
  ops::CheckShape("cross_attention", "k", k, memory.shape());
  ops::CheckShape("cross_attention", "v", v, memory.shape());
  const int64_t c = config.width, key_rows = memory.dim(0) * memory.dim(1);
  Arena& scratch = ctx.Scratch();
  ArenaScope release_scratch(scratch);
  TensorView<T> kv = scratch.Allocate<T>(Shape{key_rows, 2 * c});
  ops::LinearForward<T>(memory.Reshape(Shape{key_rows, c}), params.kv_weight, params.kv_bias, kv,
                        ctx);
  UnpackColumns<T>(kv.data(), key_rows, 2 * c, 0, c, k.data(), ctx);
  UnpackColumns<T>(kv.data(), key_rows, 2 * c, c, c, v.data(), ctx);
}

template <typename T>
void CrossAttentionForwardStep(const CrossAttentionConfig& config,
                               const CrossAttentionParams<T>& params, ConstTensorView<T> input,
                               ConstTensorView<T> k, ConstTensorView<T> v,
                               ConstTensorView<uint8_t> key_padding,
                               std::span<const int64_t> source_of, TensorView<T> output,
                               const ExecutionContext& ctx) {
  config.Validate();
  const int64_t c = config.width, sequences = input.dim(0);
  ops::CheckShape("cross_attention_step", "input", input, Shape{sequences, 1, c});
  ops::CheckShape("cross_attention_step", "output", output, input.shape());
  ops::CheckRank("cross_attention_step", "k", k, 3);
  ops::CheckShape("cross_attention_step", "v", v, k.shape());
  const int64_t sources = k.dim(0), key_len = k.dim(1);
  if (!key_padding.empty()) {
    ops::CheckShape("cross_attention_step", "key_padding", key_padding, Shape{sources, key_len});
  }
  QKV_CHECK(static_cast<int64_t>(source_of.size()) == sequences,
            "cross_attention_step: ", source_of.size(), " source rows for ", sequences,
            " sequences");
  for (const int64_t source : source_of) {
    QKV_CHECK(source >= 0 && source < sources, "cross_attention_step: source row ", source,
              " outside [0, ", sources, ")");
  }
  Arena& scratch = ctx.Scratch();
  ArenaScope release_scratch(scratch);
  const StepScratch<T> s =
      AllocateStepScratch<T>(scratch, config, sequences, key_len, ctx.num_threads());
  ops::LinearForward<T>(input.Reshape(Shape{sequences, c}), params.q_weight, params.q_bias,
                        s.q.Reshape(Shape{sequences, c}), ctx);
  const ExecutionContext serial{nullptr, nullptr, ctx.isa};
  ParallelFor(sequences, ctx, [&](int64_t begin, int64_t end, int thread) {
    const TensorView<T> scores(s.scores.data() + thread * key_len, Shape{key_len});
    for (int64_t n = begin; n < end; ++n) {
      const int64_t source = source_of[static_cast<size_t>(n)];
      const ConstTensorView<T> q(s.q.data() + n * c, Shape{1, 1, c});
      const ConstTensorView<T> keys(k.data() + source * key_len * c, Shape{1, key_len, c});
      const ConstTensorView<T> values(v.data() + source * key_len * c, Shape{1, key_len, c});
      const ConstTensorView<uint8_t> padding =
          key_padding.empty()
              ? ConstTensorView<uint8_t>()
              : ConstTensorView<uint8_t>(key_padding.data() + source * key_len, Shape{1, key_len});
      ops::AttentionForwardOneQuery<T>(q, keys, values, config.num_heads, padding,
                                       TensorView<T>(s.attended.data() + n * c, Shape{1, 1, c}),
                                       scores, serial);
    }
  });
  ops::LinearForward<T>(s.attended.Reshape(Shape{sequences, c}), params.out_weight, params.out_bias,
                        output.Reshape(Shape{sequences, c}), ctx);
}

size_t CrossAttentionStepScratchBytes(const CrossAttentionConfig& config, int64_t sequences,
                                      int64_t key_len, int num_threads, size_t element_size) {
  return MeasureBytes(element_size, [&](Arena& arena, auto element) {
    AllocateStepScratch<decltype(element)>(arena, config, sequences, key_len, num_threads);
  });
}

size_t CrossAttentionForwardScratchBytes(const CrossAttentionConfig& config, int64_t batch,
                                         int64_t query_len, int num_threads, size_t element_size) {
  return AttentionKernelForwardScratchBytes(config.kernel, batch, config.num_heads, query_len,
                                            num_threads, element_size);
}

size_t CrossAttentionBackwardScratchBytes(const CrossAttentionConfig& config, int64_t batch,
                                          int64_t query_len, int64_t key_len, int num_threads,
                                          size_t element_size) {
  const size_t own = MeasureBytes(element_size, [&](Arena& arena, auto element) {
    AllocateBackwardScratch<decltype(element)>(arena, config.width, batch, query_len, key_len);
  });
  // The kernel's, taken while the backward's own buffers are held.
  return own + AttentionKernelBackwardScratchBytes(config.kernel, batch, config.num_heads,
                                                   query_len, key_len, num_threads, element_size);
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
  const ops::AttentionMask mask{false, key_padding};
  if (config.kernel == AttentionKernel::kSimple) {
    ops::AttentionForward<T>(acts.q, acts.k, acts.v, config.num_heads, mask,
                             acts.attended.Reshape(input.shape()), acts.probs, ctx);
  } else {
    ops::FlashAttentionForward<T>(acts.q, acts.k, acts.v, config.num_heads, mask,
                                  acts.attended.Reshape(input.shape()), acts.log_sum_exp, ctx);
  }
  ops::LinearForward<T>(acts.attended, params.out_weight, params.out_bias,
                        output.Reshape(Shape{query_rows, c}), ctx);
}

template <typename T>
void CrossAttentionBackward(const CrossAttentionConfig& config,
                            const CrossAttentionParams<T>& params, ConstTensorView<T> input,
                            ConstTensorView<T> memory, ConstTensorView<uint8_t> key_padding,
                            const CrossAttentionActivations<T>& acts, ConstTensorView<T> d_output,
                            TensorView<T> d_input, TensorView<T> d_memory,
                            const CrossAttentionParams<T>& d_params, const ExecutionContext& ctx) {
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
  if (config.kernel == AttentionKernel::kSimple) {
    ops::AttentionBackward<T>(d_attended.Reshape(input.shape()), acts.q, acts.k, acts.v, acts.probs,
                              config.num_heads, d_q, d_k, d_v, ctx);
  } else {
    const ops::AttentionMask mask{false, key_padding};
    ops::FlashAttentionBackward<T>(d_attended.Reshape(input.shape()), acts.q, acts.k, acts.v,
                                   acts.attended.Reshape(input.shape()), acts.log_sum_exp,
                                   config.num_heads, mask, d_q, d_k, d_v, ctx);
  }
  PackColumns<T>(d_k.data(), key_rows, 2 * c, 0, c, d_kv.data(), ctx);
  PackColumns<T>(d_v.data(), key_rows, 2 * c, c, c, d_kv.data(), ctx);
  ops::LinearBackward<T>(d_kv, memory.Reshape(Shape{key_rows, c}), params.kv_weight,
                         d_memory.Reshape(Shape{key_rows, c}), d_params.kv_weight, d_params.kv_bias,
                         ctx);
  ops::LinearBackward<T>(d_q.Reshape(Shape{query_rows, c}), input.Reshape(Shape{query_rows, c}),
                         params.q_weight, d_input.Reshape(Shape{query_rows, c}), d_params.q_weight,
                         d_params.q_bias, ctx);
}

#define QKV_INSTANTIATE_CROSS_STEP(T)                                                             \
  template void CrossAttentionKeysValues<T>(                                                      \
      const CrossAttentionConfig&, const CrossAttentionParams<T>&, ConstTensorView<T>,            \
      TensorView<T>, TensorView<T>, const ExecutionContext&);                                     \
  template void CrossAttentionForwardStep<T>(                                                     \
      const CrossAttentionConfig&, const CrossAttentionParams<T>&, ConstTensorView<T>,            \
      ConstTensorView<T>, ConstTensorView<T>, ConstTensorView<uint8_t>, std::span<const int64_t>, \
      TensorView<T>, const ExecutionContext&);
QKV_INSTANTIATE_CROSS_STEP(float)
QKV_INSTANTIATE_CROSS_STEP(double)
#undef QKV_INSTANTIATE_CROSS_STEP

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
template void CrossAttentionBackward<float>(
    const CrossAttentionConfig&, const CrossAttentionParams<float>&, ConstTensorView<float>,
    ConstTensorView<float>, ConstTensorView<uint8_t>, const CrossAttentionActivations<float>&,
    ConstTensorView<float>, TensorView<float>, TensorView<float>,
    const CrossAttentionParams<float>&, const ExecutionContext&);
template void CrossAttentionBackward<double>(
    const CrossAttentionConfig&, const CrossAttentionParams<double>&, ConstTensorView<double>,
    ConstTensorView<double>, ConstTensorView<uint8_t>, const CrossAttentionActivations<double>&,
    ConstTensorView<double>, TensorView<double>, TensorView<double>,
    const CrossAttentionParams<double>&, const ExecutionContext&);

}  // namespace qkv::layers
