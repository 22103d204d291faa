#include "qkv/ops/attention.h"

#include <cmath>
#include <limits>

#include "qkv/kernels/cpu/gemm.h"
#include "qkv/kernels/cpu/softmax_row.h"
#include "qkv/ops/op_checks.h"
#include "qkv/runtime/parallel_for.h"

namespace qkv::ops {

using kernels::Gemm;
using kernels::Transpose;

namespace {

struct AttentionDims {
  int64_t batch, query_len, key_len;
  int64_t num_heads, kv_heads, head_dim;  // H, KV (dividing H), D
  int64_t q_width, kv_width;              // H * D (q, output), KV * D (k, v)
  int64_t group() const { return num_heads / kv_heads; }
};

template <typename T>
AttentionDims CheckAttentionShapes(ConstTensorView<T> q, ConstTensorView<T> k, ConstTensorView<T> v,
                                   int64_t num_heads) {
  CheckRank("attention", "q", q, 3);
  CheckRank("attention", "k", k, 3);
  CheckPositive("attention", "batch", q.dim(0));
  CheckPositive("attention", "query length", q.dim(1));
  CheckPositive("attention", "key length", k.dim(1));
  CheckPositive("attention", "width", q.dim(2));
  CheckPositive("attention", "num_heads", num_heads);
  QKV_CHECK(q.dim(2) % num_heads == 0, "attention: width ", q.dim(2),
            " is not divisible by num_heads ", num_heads);
  const int64_t head_dim = q.dim(2) / num_heads;
  QKV_CHECK(k.dim(2) % head_dim == 0 && num_heads % (k.dim(2) / head_dim) == 0,
            "attention: k width ", k.dim(2), " is not a number of heads of size ", head_dim,
            " that divides ", num_heads);
  CheckShape("attention", "k", k, Shape{q.dim(0), k.dim(1), k.dim(2)});
  CheckShape("attention", "v", v, k.shape());
  return {q.dim(0), q.dim(1), k.dim(1), num_heads, k.dim(2) / head_dim,
          head_dim, q.dim(2), k.dim(2)};
}

}  // namespace

template <typename T>
void AttentionForward(ConstTensorView<T> q, ConstTensorView<T> k, ConstTensorView<T> v,
                      int64_t num_heads, const AttentionMask& mask, TensorView<T> output,
                      TensorView<T> probs, const ExecutionContext& ctx) {
  const AttentionDims d = CheckAttentionShapes(q, k, v, num_heads);
  CheckShape("attention", "output", output, q.shape());
  CheckShape("attention", "probs", probs, Shape{d.batch, d.num_heads, d.query_len, d.key_len});
  if (!mask.key_padding.empty()) {
    CheckShape("attention", "key_padding mask", mask.key_padding, Shape{d.batch, d.key_len});
  }
  QKV_CHECK(!mask.causal || d.key_len >= d.query_len,
            "attention: a causal mask needs at least "
            "as many keys as queries, got ",
            d.key_len, " keys for ", d.query_len, " queries");
  QKV_CHECK(
      mask.alibi_slopes.empty() || static_cast<int64_t>(mask.alibi_slopes.size()) == d.num_heads,
      "attention: ", mask.alibi_slopes.size(), " ALiBi slopes for ", d.num_heads, " heads");
  const T scale = T(1) / std::sqrt(static_cast<T>(d.head_dim));
  const int64_t causal_shift = d.key_len - d.query_len;

  ParallelFor(d.batch * d.num_heads, ctx, [&](int64_t begin, int64_t end, int) {
    for (int64_t pair = begin; pair < end; ++pair) {
      const int64_t b = pair / d.num_heads, h = pair % d.num_heads;
      const int64_t kv_h = h / d.group();  // the key/value head query head h shares
      const T* q_bh = q.data() + b * d.query_len * d.q_width + h * d.head_dim;
      const T* k_bh = k.data() + b * d.key_len * d.kv_width + kv_h * d.head_dim;
      const T* v_bh = v.data() + b * d.key_len * d.kv_width + kv_h * d.head_dim;
      T* probs_bh = probs.data() + pair * d.query_len * d.key_len;  // (Tq, Tk)
      // scores (Tq, Tk) = scale * q_bh (Tq, D) · k_bhᵀ (D, Tk)
      Gemm<T>(Transpose::kNo, Transpose::kTranspose, d.query_len, d.key_len, d.head_dim, scale,
              q_bh, d.q_width, k_bh, d.kv_width, T(0), probs_bh, d.key_len, ctx);
      const uint8_t* padding =
          mask.key_padding.empty() ? nullptr : mask.key_padding.data() + b * d.key_len;
      const T slope = mask.alibi_slopes.empty() ? T(0) : static_cast<T>(mask.alibi_slopes[h]);
      for (int64_t i = 0; i < d.query_len; ++i) {
        T* row = probs_bh + i * d.key_len;
        if (slope != T(0)) {
          for (int64_t j = 0; j < d.key_len; ++j) {
            const int64_t distance = i + causal_shift - j;
            row[j] -= slope * static_cast<T>(distance >= 0 ? distance : -distance);
          }
        }
        for (int64_t j = 0; j < d.key_len; ++j) {
          const bool future = mask.causal && j > i + causal_shift;
          const bool padded = padding != nullptr && padding[j] != 0;
          if (future || padded) row[j] = -std::numeric_limits<T>::infinity();
        }
        kernels::SoftmaxRow(row, row, d.key_len);
      }
      // output_bh (Tq, D) = probs (Tq, Tk) · v_bh (Tk, D)
      Gemm<T>(Transpose::kNo, Transpose::kNo, d.query_len, d.head_dim, d.key_len, T(1), probs_bh,
              d.key_len, v_bh, d.kv_width, T(0),
              output.data() + b * d.query_len * d.q_width + h * d.head_dim, d.q_width, ctx);
    }
  });
}

// One (Tq, Tk) gradient-of-scores buffer per thread; also sizes it (AttentionBackwardScratchBytes).
template <typename T>
TensorView<T> AllocateBackwardScratch(Arena& arena, int64_t query_len, int64_t key_len,
                                      int num_threads) {
  return arena.Allocate<T>(Shape{num_threads, query_len, key_len});
}

template <typename T>
void AttentionBackward(ConstTensorView<T> d_output, ConstTensorView<T> q, ConstTensorView<T> k,
                       ConstTensorView<T> v, ConstTensorView<T> probs, int64_t num_heads,
                       TensorView<T> d_q, TensorView<T> d_k, TensorView<T> d_v,
                       const ExecutionContext& ctx) {
  const AttentionDims d = CheckAttentionShapes(q, k, v, num_heads);
  CheckShape("attention", "d_output", d_output, q.shape());
  CheckShape("attention", "probs", probs, Shape{d.batch, d.num_heads, d.query_len, d.key_len});
  CheckShape("attention", "d_q", d_q, q.shape());
  CheckShape("attention", "d_k", d_k, k.shape());
  CheckShape("attention", "d_v", d_v, v.shape());
  const T scale = T(1) / std::sqrt(static_cast<T>(d.head_dim));

  Arena& scratch = ctx.Scratch();
  ArenaScope release_scratch(scratch);
  TensorView<T> d_scores_per_thread =
      AllocateBackwardScratch<T>(scratch, d.query_len, d.key_len, ctx.num_threads());

  // One work item per (batch, key/value head): the query heads of its group add their shares
  // of d_k and d_v in a fixed order, so every element has one owner (no races, bitwise
  // reproducible); d_q of each query head is written by the item of its group.
  ParallelFor(d.batch * d.kv_heads, ctx, [&](int64_t begin, int64_t end, int thread) {
    T* d_scores = d_scores_per_thread.data() + thread * d.query_len * d.key_len;  // (Tq, Tk)
    for (int64_t item = begin; item < end; ++item) {
      const int64_t b = item / d.kv_heads, kv_h = item % d.kv_heads;
      const int64_t k_offset = b * d.key_len * d.kv_width + kv_h * d.head_dim;
      for (int64_t member = 0; member < d.group(); ++member) {
        const int64_t h = kv_h * d.group() + member;
        const int64_t q_offset = b * d.query_len * d.q_width + h * d.head_dim;
        const T* probs_bh = probs.data() + (b * d.num_heads + h) * d.query_len * d.key_len;
        const T accumulate = member == 0 ? T(0) : T(1);  // the first head of a group overwrites
        // d_probs (Tq, Tk) = d_output_bh (Tq, D) · v_bhᵀ (D, Tk)
        Gemm<T>(Transpose::kNo, Transpose::kTranspose, d.query_len, d.key_len, d.head_dim, T(1),
                d_output.data() + q_offset, d.q_width, v.data() + k_offset, d.kv_width, T(0),
                d_scores, d.key_len, ctx);
        // d_v_bh (Tk, D) (+)= probsᵀ (Tk, Tq) · d_output_bh (Tq, D)
        Gemm<T>(Transpose::kTranspose, Transpose::kNo, d.key_len, d.head_dim, d.query_len, T(1),
                probs_bh, d.key_len, d_output.data() + q_offset, d.q_width, accumulate,
                d_v.data() + k_offset, d.kv_width, ctx);
        // Through the softmax; masked weights are 0, so their score gradients are 0 too.
        for (int64_t i = 0; i < d.query_len; ++i) {
          kernels::SoftmaxRowBackward(d_scores + i * d.key_len, probs_bh + i * d.key_len,
                                      d_scores + i * d.key_len, d.key_len);
        }
        // d_q_bh (Tq, D) = scale * d_scores (Tq, Tk) · k_bh (Tk, D)
        Gemm<T>(Transpose::kNo, Transpose::kNo, d.query_len, d.head_dim, d.key_len, scale, d_scores,
                d.key_len, k.data() + k_offset, d.kv_width, T(0), d_q.data() + q_offset, d.q_width,
                ctx);
        // d_k_bh (Tk, D) (+)= scale * d_scoresᵀ (Tk, Tq) · q_bh (Tq, D)
        Gemm<T>(Transpose::kTranspose, Transpose::kNo, d.key_len, d.head_dim, d.query_len, scale,
                d_scores, d.key_len, q.data() + q_offset, d.q_width, accumulate,
                d_k.data() + k_offset, d.kv_width, ctx);
      }
    }
  });
}

template <typename T>
size_t AttentionBackwardScratchBytes(int64_t query_len, int64_t key_len, int num_threads) {
  Arena measure = Arena::MeasureOnly();
  AllocateBackwardScratch<T>(measure, query_len, key_len, num_threads);
  return measure.used_bytes();
}

template size_t AttentionBackwardScratchBytes<float>(int64_t, int64_t, int);
template size_t AttentionBackwardScratchBytes<double>(int64_t, int64_t, int);
template void AttentionForward<float>(ConstTensorView<float>, ConstTensorView<float>,
                                      ConstTensorView<float>, int64_t, const AttentionMask&,
                                      TensorView<float>, TensorView<float>,
                                      const ExecutionContext&);
template void AttentionForward<double>(ConstTensorView<double>, ConstTensorView<double>,
                                       ConstTensorView<double>, int64_t, const AttentionMask&,
                                       TensorView<double>, TensorView<double>,
                                       const ExecutionContext&);
template void AttentionBackward<float>(ConstTensorView<float>, ConstTensorView<float>,
                                       ConstTensorView<float>, ConstTensorView<float>,
                                       ConstTensorView<float>, int64_t, TensorView<float>,
                                       TensorView<float>, TensorView<float>,
                                       const ExecutionContext&);
template void AttentionBackward<double>(ConstTensorView<double>, ConstTensorView<double>,
                                        ConstTensorView<double>, ConstTensorView<double>,
                                        ConstTensorView<double>, int64_t, TensorView<double>,
                                        TensorView<double>, TensorView<double>,
                                        const ExecutionContext&);

}  // namespace qkv::ops
