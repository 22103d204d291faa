#include "qkv/layers/self_attention.h"

#include <cstring>

#include "qkv/layers/head_packing.h"
#include "qkv/ops/attention_one_query.h"
#include "qkv/ops/flash_attention.h"
#include "qkv/ops/linear.h"
#include "qkv/ops/op_checks.h"

namespace qkv::layers {

void SelfAttentionConfig::Validate() const {
  QKV_CHECK(width > 0, "self_attention: width must be > 0, got ", width);
  QKV_CHECK(num_heads > 0, "self_attention: num_heads must be > 0, got ", num_heads);
  QKV_CHECK(head_size >= 0, "self_attention: head_size must be > 0 (or 0 for width / heads), got ",
            head_size);
  QKV_CHECK(head_size > 0 || width % num_heads == 0, "self_attention: width ", width,
            " is not divisible by num_heads ", num_heads);
  QKV_CHECK(num_kv_heads >= 0 && num_heads % kv_heads() == 0, "self_attention: num_kv_heads ",
            num_kv_heads, " does not divide num_heads ", num_heads);
  if (rope.has_value()) {
    QKV_CHECK(head_dim() % 2 == 0, "self_attention: RoPE needs an even head size, got ",
              head_dim());
    QKV_CHECK(rope->theta > 0, "self_attention: RoPE theta must be > 0, got ", rope->theta);
  }
  QKV_CHECK(alibi_slopes.empty() || static_cast<int64_t>(alibi_slopes.size()) == num_heads,
            "self_attention: ", alibi_slopes.size(), " ALiBi slopes for ", num_heads, " heads");
}

namespace {

// The backward pass's temporaries, from the scratch arena (and from a counting arena to size it).
template <typename T>
struct BackwardScratch {
  TensorView<T> d_attended;  // (B*T, Cq)
  TensorView<T> d_q;         // (B, T, Cq)
  TensorView<T> d_k, d_v;    // (B, T, Ckv) each
  TensorView<T> d_qkv;       // (B*T, P)
};

template <typename T>
BackwardScratch<T> AllocateBackwardScratch(Arena& arena, const SelfAttentionConfig& config,
                                           int64_t batch, int64_t seq_len) {
  const int64_t rows = batch * seq_len;
  BackwardScratch<T> s;
  s.d_attended = arena.Allocate<T>(Shape{rows, config.q_width()});
  s.d_q = arena.Allocate<T>(Shape{batch, seq_len, config.q_width()});
  s.d_k = arena.Allocate<T>(Shape{batch, seq_len, config.kv_width()});
  s.d_v = arena.Allocate<T>(Shape{batch, seq_len, config.kv_width()});
  s.d_qkv = arena.Allocate<T>(Shape{rows, config.qkv_rows()});
  return s;
}

// q, k, v (each (rows, its width)) from the packed projection output (rows, P), or back.
template <typename T>
void UnpackQkv(const SelfAttentionConfig& config, const T* qkv, int64_t rows, T* q, T* k, T* v,
               const ExecutionContext& ctx) {
  const int64_t p = config.qkv_rows(), cq = config.q_width(), ckv = config.kv_width();
  UnpackColumns<T>(qkv, rows, p, 0, cq, q, ctx);
  UnpackColumns<T>(qkv, rows, p, cq, ckv, k, ctx);
  UnpackColumns<T>(qkv, rows, p, cq + ckv, ckv, v, ctx);
}

template <typename T>
void PackQkv(const SelfAttentionConfig& config, const T* q, const T* k, const T* v, int64_t rows,
             T* qkv, const ExecutionContext& ctx) {
  const int64_t p = config.qkv_rows(), cq = config.q_width(), ckv = config.kv_width();
  PackColumns<T>(q, rows, p, 0, cq, qkv, ctx);
  PackColumns<T>(k, rows, p, cq, ckv, qkv, ctx);
  PackColumns<T>(v, rows, p, cq + ckv, ckv, qkv, ctx);
}

// The cached forward pass's temporaries for new_tokens queries over total_len keys.
template <typename T>
struct CachedScratch {
  TensorView<T> qkv;       // (Tnew, P)
  TensorView<T> q;         // (1, Tnew, Cq)
  TensorView<T> probs;     // (1, H, Tnew, total)
  TensorView<T> attended;  // (1, Tnew, Cq)
};

template <typename T>
CachedScratch<T> AllocateCachedScratch(Arena& arena, const SelfAttentionConfig& config,
                                       int64_t new_tokens, int64_t total_len) {
  CachedScratch<T> s;
  s.qkv = arena.Allocate<T>(Shape{new_tokens, config.qkv_rows()});
  s.q = arena.Allocate<T>(Shape{1, new_tokens, config.q_width()});
  s.probs = arena.Allocate<T>(Shape{1, config.num_heads, new_tokens, total_len});
  s.attended = arena.Allocate<T>(Shape{1, new_tokens, config.q_width()});
  return s;
}

// SelfAttentionForwardStep's buffers.
template <typename T>
struct StepScratch {
  TensorView<T> qkv;       // (N, P)
  TensorView<T> q;         // (N, 1, Cq)
  TensorView<T> scores;    // (threads, total): one head's attention weights per thread
  TensorView<T> attended;  // (N, 1, Cq)
};

template <typename T>
StepScratch<T> AllocateStepScratch(Arena& arena, const SelfAttentionConfig& config,
                                   int64_t sequences, int64_t total_len, int num_threads) {
  StepScratch<T> s;
  s.qkv = arena.Allocate<T>(Shape{sequences, config.qkv_rows()});
  s.q = arena.Allocate<T>(Shape{sequences, 1, config.q_width()});
  s.scores = arena.Allocate<T>(Shape{num_threads, total_len});
  s.attended = arena.Allocate<T>(Shape{sequences, 1, config.q_width()});
  return s;
}

}  // namespace

template <typename T>
SelfAttentionActivations<T> AllocateSelfAttentionActivations(Arena& arena,
                                                             const SelfAttentionConfig& config,
                                                             int64_t batch, int64_t seq_len) {
  config.Validate();
  ops::CheckPositive("self_attention", "batch", batch);
  ops::CheckPositive("self_attention", "sequence length", seq_len);
  SelfAttentionActivations<T> acts;
  acts.qkv = arena.Allocate<T>(Shape{batch * seq_len, config.qkv_rows()});
  acts.q = arena.Allocate<T>(Shape{batch, seq_len, config.q_width()});
  acts.k = arena.Allocate<T>(Shape{batch, seq_len, config.kv_width()});
  acts.v = arena.Allocate<T>(Shape{batch, seq_len, config.kv_width()});
  if (config.kernel == AttentionKernel::kSimple) {
    acts.probs = arena.Allocate<T>(Shape{batch, config.num_heads, seq_len, seq_len});
  } else {
    acts.log_sum_exp = arena.Allocate<T>(Shape{batch, config.num_heads, seq_len});
  }
  acts.attended = arena.Allocate<T>(Shape{batch * seq_len, config.q_width()});
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
  const Shape attended_shape{batch, seq, config.q_width()};
  ops::CheckShape("self_attention", "acts.q", acts.q, attended_shape);
  ops::CheckShape("self_attention", "output", output, input.shape());
  const int64_t rows = batch * seq;

  ops::LinearForward<T>(input.Reshape(Shape{rows, c}), params.qkv_weight, params.qkv_bias, acts.qkv,
                        ctx);
  UnpackQkv<T>(config, acts.qkv.data(), rows, acts.q.data(), acts.k.data(), acts.v.data(), ctx);
  if (config.rope.has_value()) {
    ops::RopeForward<T>(acts.q, config.num_heads, *config.rope, start_position, acts.q, ctx);
    ops::RopeForward<T>(acts.k, config.kv_heads(), *config.rope, start_position, acts.k, ctx);
  }
  const ops::AttentionMask mask{config.causal, key_padding, config.alibi_slopes};
  if (config.kernel == AttentionKernel::kSimple) {
    ops::AttentionForward<T>(acts.q, acts.k, acts.v, config.num_heads, mask,
                             acts.attended.Reshape(attended_shape), acts.probs, ctx);
  } else {
    ops::FlashAttentionForward<T>(acts.q, acts.k, acts.v, config.num_heads, mask,
                                  acts.attended.Reshape(attended_shape), acts.log_sum_exp, ctx);
  }
  ops::LinearForward<T>(acts.attended, params.out_weight, params.out_bias,
                        output.Reshape(Shape{rows, c}), ctx);
}

template <typename T>
void SelfAttentionBackward(const SelfAttentionConfig& config, const SelfAttentionParams<T>& params,
                           ConstTensorView<T> input, int64_t start_position,
                           ConstTensorView<uint8_t> key_padding,
                           const SelfAttentionActivations<T>& acts, ConstTensorView<T> d_output,
                           TensorView<T> d_input, const SelfAttentionParams<T>& d_params,
                           const ExecutionContext& ctx) {
  config.Validate();
  ops::CheckRank("self_attention", "input", input, 3);
  ops::CheckShape("self_attention", "d_output", d_output, input.shape());
  ops::CheckShape("self_attention", "d_input", d_input, input.shape());
  const int64_t rows = input.dim(0) * input.dim(1), c = config.width;
  const Shape attended_shape{input.dim(0), input.dim(1), config.q_width()};

  Arena& scratch = ctx.Scratch();
  ArenaScope release_scratch(scratch);
  const BackwardScratch<T> s =
      AllocateBackwardScratch<T>(scratch, config, input.dim(0), input.dim(1));
  TensorView<T> d_attended = s.d_attended, d_q = s.d_q, d_k = s.d_k, d_v = s.d_v, d_qkv = s.d_qkv;

  ops::LinearBackward<T>(d_output.Reshape(Shape{rows, c}), acts.attended, params.out_weight,
                         d_attended, d_params.out_weight, d_params.out_bias, ctx);
  if (config.kernel == AttentionKernel::kSimple) {
    ops::AttentionBackward<T>(d_attended.Reshape(attended_shape), acts.q, acts.k, acts.v,
                              acts.probs, config.num_heads, d_q, d_k, d_v, ctx);
  } else {
    const ops::AttentionMask mask{config.causal, key_padding, config.alibi_slopes};
    ops::FlashAttentionBackward<T>(d_attended.Reshape(attended_shape), acts.q, acts.k, acts.v,
                                   acts.attended.Reshape(attended_shape), acts.log_sum_exp,
                                   config.num_heads, mask, d_q, d_k, d_v, ctx);
  }
  if (config.rope.has_value()) {
    ops::RopeBackward<T>(d_q, config.num_heads, *config.rope, start_position, d_q, ctx);
    ops::RopeBackward<T>(d_k, config.kv_heads(), *config.rope, start_position, d_k, ctx);
  }
  PackQkv<T>(config, d_q.data(), d_k.data(), d_v.data(), rows, d_qkv.data(), ctx);
  ops::LinearBackward<T>(d_qkv, input.Reshape(Shape{rows, c}), params.qkv_weight,
                         d_input.Reshape(Shape{rows, c}), d_params.qkv_weight, d_params.qkv_bias,
                         ctx);
}

template <typename T>
void SelfAttentionForwardCached(const SelfAttentionConfig& config,
                                const SelfAttentionParams<T>& params, ConstTensorView<T> input,
                                TensorView<T> k_cache, TensorView<T> v_cache, int64_t cache_length,
                                TensorView<T> output, const ExecutionContext& ctx) {
  config.Validate();
  ops::CheckRank("self_attention_cached", "input", input, 3);
  const int64_t new_tokens = input.dim(1), c = config.width;
  QKV_CHECK(input.dim(0) == 1, "self_attention_cached: decodes one sequence, got batch ",
            input.dim(0));
  QKV_CHECK(input.dim(2) == c, "self_attention_cached: input width ", input.dim(2),
            " does not match the layer width ", c);
  ops::CheckPositive("self_attention_cached", "new tokens", new_tokens);
  ops::CheckRank("self_attention_cached", "k_cache", k_cache, 2);
  const int64_t max_len = k_cache.dim(0);
  const int64_t kv_width = config.kv_width();
  ops::CheckShape("self_attention_cached", "k_cache", k_cache, Shape{max_len, kv_width});
  ops::CheckShape("self_attention_cached", "v_cache", v_cache, Shape{max_len, kv_width});
  ops::CheckShape("self_attention_cached", "output", output, input.shape());
  QKV_CHECK(cache_length >= 0 && cache_length + new_tokens <= max_len,
            "self_attention_cached: ", new_tokens, " new tokens after ", cache_length,
            " cached ones do not fit a cache of ", max_len, " positions");
  const int64_t total = cache_length + new_tokens;

  Arena& scratch = ctx.Scratch();
  ArenaScope release_scratch(scratch);
  const CachedScratch<T> s = AllocateCachedScratch<T>(scratch, config, new_tokens, total);
  TensorView<T> qkv = s.qkv, q = s.q, probs = s.probs, attended = s.attended;

  ops::LinearForward<T>(input.Reshape(Shape{new_tokens, c}), params.qkv_weight, params.qkv_bias,
                        qkv, ctx);
  // The new keys and values go straight into their cache rows.
  TensorView<T> new_k(k_cache.data() + cache_length * kv_width, Shape{1, new_tokens, kv_width});
  TensorView<T> new_v(v_cache.data() + cache_length * kv_width, Shape{1, new_tokens, kv_width});
  UnpackQkv<T>(config, qkv.data(), new_tokens, q.data(), new_k.data(), new_v.data(), ctx);
  if (config.rope.has_value()) {
    ops::RopeForward<T>(q, config.num_heads, *config.rope, cache_length, q, ctx);
    ops::RopeForward<T>(new_k, config.kv_heads(), *config.rope, cache_length, new_k, ctx);
  }
  // The queries are the last Tnew of the `total` keys, which is how the causal mask aligns
  // when Tk > Tq.
  const ConstTensorView<T> keys(k_cache.data(), Shape{1, total, kv_width});
  const ConstTensorView<T> values(v_cache.data(), Shape{1, total, kv_width});
  if (new_tokens == 1 && config.alibi_slopes.empty()) {
    // One query (a decoding step) sees every key, so no mask: dot products and a fused
    // weighted sum instead of two GEMM calls per head, which cost more than their arithmetic
    // at one row. On this thread: the head loop is short next to the step's weight reads.
    ops::AttentionForwardOneQuery<T>(q, keys, values, config.num_heads, {}, attended,
                                     TensorView<T>(probs.data(), Shape{total}), ctx);
  } else {
    ops::AttentionMask mask{config.causal, {}, config.alibi_slopes};
    ops::AttentionForward<T>(q, keys, values, config.num_heads, mask, attended, probs, ctx);
  }
  ops::LinearForward<T>(attended.Reshape(Shape{new_tokens, config.q_width()}), params.out_weight,
                        params.out_bias, output.Reshape(Shape{new_tokens, c}), ctx);
}

template <typename T>
void SelfAttentionForwardStep(const SelfAttentionConfig& config,
                              const SelfAttentionParams<T>& params, ConstTensorView<T> input,
                              TensorView<T> k_cache, TensorView<T> v_cache, int64_t cache_length,
                              TensorView<T> output, const ExecutionContext& ctx) {
  config.Validate();
  QKV_CHECK(!config.rope.has_value() && config.alibi_slopes.empty(),
            "self_attention_step: RoPE and ALiBi are not supported in lockstep decoding");
  ops::CheckRank("self_attention_step", "input", input, 3);
  const int64_t sequences = input.dim(0), c = config.width, kv_width = config.kv_width();
  QKV_CHECK(input.dim(1) == 1 && input.dim(2) == c, "self_attention_step: input ",
            input.shape().ToString(), " is not (N, 1, ", c, ")");
  ops::CheckRank("self_attention_step", "k_cache", k_cache, 3);
  const int64_t max_len = k_cache.dim(1);
  ops::CheckShape("self_attention_step", "k_cache", k_cache, Shape{sequences, max_len, kv_width});
  ops::CheckShape("self_attention_step", "v_cache", v_cache, k_cache.shape());
  ops::CheckShape("self_attention_step", "output", output, input.shape());
  QKV_CHECK(cache_length >= 0 && cache_length < max_len, "self_attention_step: position ",
            cache_length, " is past a cache of ", max_len, " positions");
  const int64_t total = cache_length + 1;

  Arena& scratch = ctx.Scratch();
  ArenaScope release_scratch(scratch);
  const StepScratch<T> s =
      AllocateStepScratch<T>(scratch, config, sequences, total, ctx.num_threads());
  ops::LinearForward<T>(input.Reshape(Shape{sequences, c}), params.qkv_weight, params.qkv_bias,
                        s.qkv, ctx);
  const int64_t q_width = config.q_width(), p = config.qkv_rows();
  // Each sequence's attention is small: one per thread, each run serially.
  const ExecutionContext serial{nullptr, nullptr, ctx.isa};
  ParallelFor(sequences, ctx, [&](int64_t begin, int64_t end, int thread) {
    T* scores = s.scores.data() + thread * total;
    for (int64_t n = begin; n < end; ++n) {
      const T* row = s.qkv.data() + n * p;
      T* keys = k_cache.data() + n * max_len * kv_width;
      T* values = v_cache.data() + n * max_len * kv_width;
      std::memcpy(s.q.data() + n * q_width, row, static_cast<size_t>(q_width) * sizeof(T));
      std::memcpy(keys + cache_length * kv_width, row + q_width,
                  static_cast<size_t>(kv_width) * sizeof(T));
      std::memcpy(values + cache_length * kv_width, row + q_width + kv_width,
                  static_cast<size_t>(kv_width) * sizeof(T));
      const ConstTensorView<T> q(s.q.data() + n * q_width, Shape{1, 1, q_width});
      const ConstTensorView<T> k(keys, Shape{1, total, kv_width});
      const ConstTensorView<T> v(values, Shape{1, total, kv_width});
      // One query after every key: no mask needed (the causal mask would hide nothing).
      ops::AttentionForwardOneQuery<T>(
          q, k, v, config.num_heads, {},
          TensorView<T>(s.attended.data() + n * q_width, Shape{1, 1, q_width}),
          TensorView<T>(scores, Shape{total}), serial);
    }
  });
  ops::LinearForward<T>(s.attended.Reshape(Shape{sequences, q_width}), params.out_weight,
                        params.out_bias, output.Reshape(Shape{sequences, c}), ctx);
}

size_t SelfAttentionStepScratchBytes(const SelfAttentionConfig& config, int64_t sequences,
                                     int64_t total_len, int num_threads, size_t element_size) {
  return MeasureBytes(element_size, [&](Arena& arena, auto element) {
    AllocateStepScratch<decltype(element)>(arena, config, sequences, total_len, num_threads);
  });
}

size_t SelfAttentionForwardScratchBytes(const SelfAttentionConfig& config, int64_t batch,
                                        int64_t seq_len, int num_threads, size_t element_size) {
  return AttentionKernelForwardScratchBytes(config.kernel, batch, config.num_heads, seq_len,
                                            num_threads, element_size);
}

size_t SelfAttentionScratchBytes(const SelfAttentionConfig& config, int64_t batch, int64_t seq_len,
                                 int num_threads, size_t element_size) {
  const size_t own = MeasureBytes(element_size, [&](Arena& arena, auto element) {
    AllocateBackwardScratch<decltype(element)>(arena, config, batch, seq_len);
  });
  // The kernel's, taken while the backward's own buffers are held.
  return own + AttentionKernelBackwardScratchBytes(config.kernel, batch, config.num_heads, seq_len,
                                                   seq_len, num_threads, element_size);
}

size_t SelfAttentionCachedScratchBytes(const SelfAttentionConfig& config, int64_t new_tokens,
                                       int64_t total_len, size_t element_size) {
  return MeasureBytes(element_size, [&](Arena& arena, auto element) {
    AllocateCachedScratch<decltype(element)>(arena, config, new_tokens, total_len);
  });
}

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
    ConstTensorView<uint8_t>, const SelfAttentionActivations<float>&, ConstTensorView<float>,
    TensorView<float>, const SelfAttentionParams<float>&, const ExecutionContext&);
template void SelfAttentionBackward<double>(
    const SelfAttentionConfig&, const SelfAttentionParams<double>&, ConstTensorView<double>,
    int64_t, ConstTensorView<uint8_t>, const SelfAttentionActivations<double>&,
    ConstTensorView<double>, TensorView<double>, const SelfAttentionParams<double>&,
    const ExecutionContext&);

template void SelfAttentionForwardStep<float>(const SelfAttentionConfig&,
                                              const SelfAttentionParams<float>&,
                                              ConstTensorView<float>, TensorView<float>,
                                              TensorView<float>, int64_t, TensorView<float>,
                                              const ExecutionContext&);
template void SelfAttentionForwardStep<double>(const SelfAttentionConfig&,
                                               const SelfAttentionParams<double>&,
                                               ConstTensorView<double>, TensorView<double>,
                                               TensorView<double>, int64_t, TensorView<double>,
                                               const ExecutionContext&);
template void SelfAttentionForwardCached<float>(const SelfAttentionConfig&,
                                                const SelfAttentionParams<float>&,
                                                ConstTensorView<float>, TensorView<float>,
                                                TensorView<float>, int64_t, TensorView<float>,
                                                const ExecutionContext&);
template void SelfAttentionForwardCached<double>(const SelfAttentionConfig&,
                                                 const SelfAttentionParams<double>&,
                                                 ConstTensorView<double>, TensorView<double>,
                                                 TensorView<double>, int64_t, TensorView<double>,
                                                 const ExecutionContext&);

}  // namespace qkv::layers
