#include "qkv/ops/flash_attention.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "qkv/kernels/cpu/gemm.h"
#include "qkv/kernels/cpu/vector_kernels.h"
#include "qkv/ops/op_checks.h"
#include "qkv/runtime/parallel_for.h"

// Blockwise form of docs/derivations/attention.md, for one (batch, head) and one query row i.
//
// Forward. Over key blocks K_1, K_2, ... keep m (the largest score seen so far), l (the sum of
// exp(score - m)) and o (the sum of exp(score - m) * v). A new block with scores s_j gives
//   m' = max(m, max_j s_j),  alpha = exp(m - m'),  p_j = exp(s_j - m'),
//   l' = alpha * l + sum_j p_j,  o' = alpha * o + sum_j p_j v_j,
// and at the end O_i = o / l and lse_i = m + log(l): the softmax without ever holding a row.
//
// Backward. P_ij = exp(S_ij - lse_i) is recomputed tile by tile, and the row sum of the
// softmax backward, sum_l dP_il P_il = sum_l (dO_i · v_l) P_il = dO_i · O_i =: D_i, is known
// before any tile (one dot product per row), so each tile is finished on its own:
//   dS = P ∘ (dO Vᵀ − D),  dV += Pᵀ dO,  dK += s dSᵀ Q,  dQ += s dS K.
// dK and dV of a key block are sums over query blocks, dQ of a query block a sum over key
// blocks. When one thread owns a whole (batch, key/value head) — with grouped-query
// attention, the query heads that share it too, whose dK and dV it sums — it sums both in one
// sweep over the tiles (5 tile GEMMs), each output row added in a fixed order. That is the
// usual case (the items split evenly over the threads, or there are many of them). Otherwise,
// so that no thread idles, backward runs two passes over finer work items: one over key
// blocks (dK, dV), one over query blocks (dQ), each output row again with one owner
// (deterministic, no atomics), at the price of computing the scores and dP twice (7 tile
// GEMMs).
//
// A query with no visible key has l = 0: its output is 0 and lse = +inf, which makes every
// recomputed P_ij = exp(S_ij - inf) = 0, so its gradients are 0 without a special case.

namespace qkv::ops {

using kernels::Gemm;
using kernels::Transpose;

namespace {

constexpr int64_t kBlock = kFlashAttentionBlock;

struct FlashDims {
  int64_t batch, query_len, key_len;
  int64_t num_heads, kv_heads, head_dim;  // H, KV (dividing H), D
  int64_t q_width, kv_width;              // H * D (q, output), KV * D (k, v)
  int64_t causal_shift;  // Tk - Tq: query i sits at absolute position i + causal_shift
  int64_t group() const { return num_heads / kv_heads; }
};

template <typename T>
FlashDims CheckFlashShapes(ConstTensorView<T> q, ConstTensorView<T> k, ConstTensorView<T> v,
                           int64_t num_heads, const AttentionMask& mask) {
  CheckRank("flash_attention", "q", q, 3);
  CheckRank("flash_attention", "k", k, 3);
  CheckPositive("flash_attention", "batch", q.dim(0));
  CheckPositive("flash_attention", "query length", q.dim(1));
  CheckPositive("flash_attention", "key length", k.dim(1));
  CheckPositive("flash_attention", "width", q.dim(2));
  CheckPositive("flash_attention", "num_heads", num_heads);
  QKV_CHECK(q.dim(2) % num_heads == 0, "flash_attention: width ", q.dim(2),
            " is not divisible by num_heads ", num_heads);
  const int64_t head_dim = q.dim(2) / num_heads;
  QKV_CHECK(k.dim(2) % head_dim == 0 && num_heads % (k.dim(2) / head_dim) == 0,
            "flash_attention: k width ", k.dim(2), " is not a number of heads of size ", head_dim,
            " that divides ", num_heads);
  CheckShape("flash_attention", "k", k, Shape{q.dim(0), k.dim(1), k.dim(2)});
  CheckShape("flash_attention", "v", v, k.shape());
  const FlashDims d{q.dim(0), q.dim(1), k.dim(1), num_heads,          k.dim(2) / head_dim,
                    head_dim, q.dim(2), k.dim(2), k.dim(1) - q.dim(1)};
  if (!mask.key_padding.empty()) {
    CheckShape("flash_attention", "key_padding mask", mask.key_padding, Shape{d.batch, d.key_len});
  }
  QKV_CHECK(!mask.causal || d.key_len >= d.query_len,
            "flash_attention: a causal mask needs at least as many keys as queries, got ",
            d.key_len, " keys for ", d.query_len, " queries");
  QKV_CHECK(
      mask.alibi_slopes.empty() || static_cast<int64_t>(mask.alibi_slopes.size()) == d.num_heads,
      "flash_attention: ", mask.alibi_slopes.size(), " ALiBi slopes for ", d.num_heads, " heads");
  return d;
}

// Scratch of both passes, allocated by the same code that measures it (core/arena.h).
template <typename T>
struct FlashScratch {
  TensorView<T> tiles;      // (threads, 2, kBlock, kBlock): scores/probs and dP/dS
  TensorView<T> row_stats;  // (threads, 2, kBlock): running max and sum (forward)
  TensorView<T> row_dots;   // (B, H, Tq): D_i = dO_i · O_i (backward)
};

template <typename T>
FlashScratch<T> AllocateFlashScratch(Arena& arena, int64_t batch, int64_t num_heads,
                                     int64_t query_len, int num_threads) {
  FlashScratch<T> s;
  s.tiles = arena.Allocate<T>(Shape{num_threads, 2, kBlock, kBlock});
  s.row_stats = arena.Allocate<T>(Shape{num_threads, 2, kBlock});
  s.row_dots = arena.Allocate<T>(Shape{batch, num_heads, query_len});
  return s;
}

// x[j] = exp(x[j] - shift) for x[j] <= shift (scores minus their row maximum or log-sum-exp):
// the only transcendental in the tile loops; returns the sum. double keeps std::exp: it is the
// precise path the tests compare at 1e-12. float uses the vectorised polynomial exp of
// kernels/cpu/vector_kernels.h (std::exp is a library call per element), which gives exactly 0
// for -inf, the masked scores.
template <typename T>
T ExpShiftedSum(T* x, int64_t count, T shift, const ExecutionContext& /*ctx*/) {
  T sum = 0;
  for (int64_t j = 0; j < count; ++j) {
    x[j] = std::exp(x[j] - shift);
    sum += x[j];
  }
  return sum;
}

template <>
float ExpShiftedSum<float>(float* x, int64_t count, float shift, const ExecutionContext& ctx) {
  return kernels::VectorKernelsFor(ctx.isa).exp_shifted(x, x, count, shift);
}

template <typename T>
void ExpShifted(T* x, int64_t count, T shift, const ExecutionContext& ctx) {
  ExpShiftedSum(x, count, shift, ctx);
}

// Mask and per-head data shared by the tile loops of one (batch, head).
template <typename T>
struct HeadView {
  const T* q;              // (Tq, D), row stride Cq
  const T* k;              // (Tk, D), row stride Ckv: the key/value head of the query head
  const T* v;              // (Tk, D), row stride Ckv
  const uint8_t* padding;  // (Tk) or null
  T slope;                 // ALiBi slope or 0
  int64_t key_end;         // keys [key_end, Tk) are all padding: never visited
};

// One past the last key that is not padding (0 when all are). A padded batch row's trailing
// padding is then skipped a whole tile at a time, and its last tile cut short.
int64_t UnpaddedKeyEnd(const uint8_t* padding, int64_t key_len) {
  if (padding == nullptr) return key_len;
  int64_t end = key_len;
  while (end > 0 && padding[end - 1] != 0) --end;
  return end;
}

template <typename T>
HeadView<T> ViewHead(const FlashDims& d, const AttentionMask& mask, const T* q, const T* k,
                     const T* v, int64_t b, int64_t h) {
  const int64_t kv_h = h / d.group();
  const uint8_t* padding =
      mask.key_padding.empty() ? nullptr : mask.key_padding.data() + b * d.key_len;
  return {q + b * d.query_len * d.q_width + h * d.head_dim,
          k + b * d.key_len * d.kv_width + kv_h * d.head_dim,
          v + b * d.key_len * d.kv_width + kv_h * d.head_dim,
          padding,
          mask.alibi_slopes.empty() ? T(0) : static_cast<T>(mask.alibi_slopes[h]),
          UnpaddedKeyEnd(padding, d.key_len)};
}

// tile (rows, cols) = scores of queries [i0, i0 + rows) against keys [j0, j0 + cols):
// scale * q kᵀ, minus the ALiBi distance, masked entries -inf — exactly AttentionForward's
// arithmetic, so both agree to rounding.
template <typename T>
void ScoreTile(const FlashDims& d, const AttentionMask& mask, const HeadView<T>& head, T scale,
               int64_t i0, int64_t rows, int64_t j0, int64_t cols, T* tile,
               const ExecutionContext& ctx) {
  Gemm<T>(Transpose::kNo, Transpose::kTranspose, rows, cols, d.head_dim, scale,
          head.q + i0 * d.q_width, d.q_width, head.k + j0 * d.kv_width, d.kv_width, T(0), tile,
          cols, ctx);
  if (head.slope != T(0)) {
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < cols; ++c) {
        const int64_t distance = i0 + r + d.causal_shift - (j0 + c);
        tile[r * cols + c] -= head.slope * static_cast<T>(distance >= 0 ? distance : -distance);
      }
    }
  }
  // Only tiles that cross the diagonal need the causal test.
  const bool crosses_diagonal = mask.causal && j0 + cols - 1 > i0 + d.causal_shift;
  if (crosses_diagonal || head.padding != nullptr) {
    constexpr T kMinusInf = -std::numeric_limits<T>::infinity();
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t last_visible = mask.causal ? i0 + r + d.causal_shift : d.key_len;
      for (int64_t c = 0; c < cols; ++c) {
        const bool future = j0 + c > last_visible;
        const bool padded = head.padding != nullptr && head.padding[j0 + c] != 0;
        if (future || padded) tile[r * cols + c] = kMinusInf;
      }
    }
  }
}

// Keys [0, end) may be visible to a query of [i0, i0 + rows); the causal mask and trailing
// padding hide the rest, which are never touched.
template <typename T>
int64_t KeyEnd(const FlashDims& d, const AttentionMask& mask, const HeadView<T>& head, int64_t i0,
               int64_t rows) {
  return mask.causal ? std::min(head.key_end, i0 + rows + d.causal_shift) : head.key_end;
}

// Work units for ParallelFor: (batch, head, pair of blocks). Under the causal mask block n of
// queries sees n + 1 key blocks, so a unit takes blocks p and count - 1 - p together and all
// units cost about the same; a static split then leaves no thread idle.
struct BlockPairs {
  int64_t blocks, pairs;
  explicit BlockPairs(int64_t length)
      : blocks((length + kBlock - 1) / kBlock), pairs((blocks + 1) / 2) {}
  template <typename Fn>
  void ForEach(int64_t pair, Fn&& fn) const {
    fn(pair);
    if (blocks - 1 - pair != pair) fn(blocks - 1 - pair);
  }
};

// P = exp(S - lse_i) and dS = P ∘ (dO Vᵀ − D_i) for one tile; probs holds S on entry.
template <typename T>
void ProbsAndScoreGradients(const FlashDims& d, const HeadView<T>& head, const T* d_out_rows,
                            const T* lse_rows, const T* dots_rows, int64_t rows, int64_t j0,
                            int64_t cols, T* probs, T* d_scores, const ExecutionContext& ctx) {
  for (int64_t r = 0; r < rows; ++r) {
    ExpShifted(probs + r * cols, cols, lse_rows[r], ctx);
  }
  // dP (rows, cols) = dO (rows, D) · V_blockᵀ (D, cols)
  Gemm<T>(Transpose::kNo, Transpose::kTranspose, rows, cols, d.head_dim, T(1), d_out_rows,
          d.q_width, head.v + j0 * d.kv_width, d.kv_width, T(0), d_scores, cols, ctx);
  for (int64_t r = 0; r < rows; ++r) {
    const T* p = probs + r * cols;
    T* ds = d_scores + r * cols;
    const T dot = dots_rows[r];
    for (int64_t c = 0; c < cols; ++c) ds[c] = p[c] * (ds[c] - dot);
  }
}

template <typename T>
void ZeroRows(T* rows_begin, int64_t rows, int64_t row_stride, int64_t count) {
  for (int64_t r = 0; r < rows; ++r) std::fill_n(rows_begin + r * row_stride, count, T(0));
}

}  // namespace

template <typename T>
size_t FlashAttentionScratchBytes(int64_t batch, int64_t num_heads, int64_t query_len,
                                  int num_threads) {
  Arena measure = Arena::MeasureOnly();
  AllocateFlashScratch<T>(measure, batch, num_heads, query_len, num_threads);
  return measure.used_bytes();
}

template <typename T>
void FlashAttentionForward(ConstTensorView<T> q, ConstTensorView<T> k, ConstTensorView<T> v,
                           int64_t num_heads, const AttentionMask& mask, TensorView<T> output,
                           TensorView<T> log_sum_exp, const ExecutionContext& ctx) {
  const FlashDims d = CheckFlashShapes(q, k, v, num_heads, mask);
  CheckShape("flash_attention", "output", output, q.shape());
  CheckShape("flash_attention", "log_sum_exp", log_sum_exp,
             Shape{d.batch, d.num_heads, d.query_len});
  const T scale = T(1) / std::sqrt(static_cast<T>(d.head_dim));
  Arena& arena = ctx.Scratch();
  ArenaScope release_scratch(arena);
  const FlashScratch<T> scratch =
      AllocateFlashScratch<T>(arena, d.batch, d.num_heads, d.query_len, ctx.num_threads());
  constexpr T kInf = std::numeric_limits<T>::infinity();
  const BlockPairs query_blocks(d.query_len);

  ParallelFor(
      d.batch * d.num_heads * query_blocks.pairs, ctx, [&](int64_t begin, int64_t end, int thread) {
        T* tile = scratch.tiles.data() + static_cast<int64_t>(thread) * 2 * kBlock * kBlock;
        T* row_max = scratch.row_stats.data() + static_cast<int64_t>(thread) * 2 * kBlock;
        T* row_sum = row_max + kBlock;
        for (int64_t unit = begin; unit < end; ++unit) {
          const int64_t bh = unit / query_blocks.pairs, b = bh / d.num_heads, h = bh % d.num_heads;
          const HeadView<T> head = ViewHead(d, mask, q.data(), k.data(), v.data(), b, h);
          query_blocks.ForEach(unit % query_blocks.pairs, [&](int64_t block) {
            const int64_t i0 = block * kBlock, rows = std::min(kBlock, d.query_len - i0);
            T* out =
                output.data() + (b * d.query_len + i0) * d.q_width + h * d.head_dim;  // (rows, D)
            ZeroRows(out, rows, d.q_width, d.head_dim);
            std::fill_n(row_max, rows, -kInf);
            std::fill_n(row_sum, rows, T(0));
            const int64_t key_end = KeyEnd(d, mask, head, i0, rows);
            for (int64_t j0 = 0; j0 < key_end; j0 += kBlock) {
              const int64_t cols = std::min(kBlock, key_end - j0);
              ScoreTile(d, mask, head, scale, i0, rows, j0, cols, tile, ctx);
              for (int64_t r = 0; r < rows; ++r) {
                T* s = tile + r * cols;
                T new_max = row_max[r];
                for (int64_t c = 0; c < cols; ++c) new_max = s[c] > new_max ? s[c] : new_max;
                if (new_max == -kInf) {  // nothing visible yet: the row adds nothing
                  std::fill_n(s, cols, T(0));
                  continue;
                }
                const T alpha = std::exp(row_max[r] - new_max);  // 0 while row_max is -inf
                row_sum[r] = row_sum[r] * alpha + ExpShiftedSum(s, cols, new_max, ctx);
                row_max[r] = new_max;
                if (alpha != T(1)) {
                  T* out_row = out + r * d.q_width;
                  for (int64_t c = 0; c < d.head_dim; ++c) out_row[c] *= alpha;
                }
              }
              // out (rows, D) += P (rows, cols) · V_block (cols, D)
              Gemm<T>(Transpose::kNo, Transpose::kNo, rows, d.head_dim, cols, T(1), tile, cols,
                      head.v + j0 * d.kv_width, d.kv_width, T(1), out, d.q_width, ctx);
            }
            T* lse = log_sum_exp.data() + bh * d.query_len + i0;
            for (int64_t r = 0; r < rows; ++r) {
              T* out_row = out + r * d.q_width;
              if (row_sum[r] == T(0)) {  // every key masked: zero output, P = 0 in backward
                std::fill_n(out_row, d.head_dim, T(0));
                lse[r] = kInf;
                continue;
              }
              const T inverse = T(1) / row_sum[r];
              for (int64_t c = 0; c < d.head_dim; ++c) out_row[c] *= inverse;
              lse[r] = row_max[r] + std::log(row_sum[r]);
            }
          });
        }
      });
}

template <typename T>
void FlashAttentionBackward(ConstTensorView<T> d_output, ConstTensorView<T> q, ConstTensorView<T> k,
                            ConstTensorView<T> v, ConstTensorView<T> output,
                            ConstTensorView<T> log_sum_exp, int64_t num_heads,
                            const AttentionMask& mask, TensorView<T> d_q, TensorView<T> d_k,
                            TensorView<T> d_v, const ExecutionContext& ctx) {
  const FlashDims d = CheckFlashShapes(q, k, v, num_heads, mask);
  CheckShape("flash_attention", "d_output", d_output, q.shape());
  CheckShape("flash_attention", "output", output, q.shape());
  CheckShape("flash_attention", "log_sum_exp", log_sum_exp,
             Shape{d.batch, d.num_heads, d.query_len});
  CheckShape("flash_attention", "d_q", d_q, q.shape());
  CheckShape("flash_attention", "d_k", d_k, k.shape());
  CheckShape("flash_attention", "d_v", d_v, v.shape());
  const T scale = T(1) / std::sqrt(static_cast<T>(d.head_dim));
  Arena& arena = ctx.Scratch();
  ArenaScope release_scratch(arena);
  const FlashScratch<T> scratch =
      AllocateFlashScratch<T>(arena, d.batch, d.num_heads, d.query_len, ctx.num_threads());
  T* row_dots = scratch.row_dots.data();  // (B, H, Tq)

  // D_i = dO_i · O_i for every (batch, query, head).
  ParallelFor(
      d.batch * d.query_len, ctx,
      [&](int64_t begin, int64_t end, int) {
        for (int64_t row = begin; row < end; ++row) {
          const int64_t b = row / d.query_len, i = row % d.query_len;
          for (int64_t h = 0; h < d.num_heads; ++h) {
            const T* d_out = d_output.data() + row * d.q_width + h * d.head_dim;
            const T* out = output.data() + row * d.q_width + h * d.head_dim;
            T dot = 0;
            for (int64_t c = 0; c < d.head_dim; ++c) dot += d_out[c] * out[c];
            row_dots[(b * d.num_heads + h) * d.query_len + i] = dot;
          }
        }
      },
      /*min_per_thread=*/64);

  // One tile of queries [i0, i0 + rows) against keys [j0, j0 + cols) of head bh: recomputes
  // P into probs and dS into d_scores (left there for dQ) and adds the tile's share to the key
  // block's dV and dK (cols, D), row stride Ckv.
  const auto KeyBlockTile = [&](int64_t bh, const HeadView<T>& head, int64_t q_offset, int64_t i0,
                                int64_t rows, int64_t j0, int64_t cols, T* dk, T* dv, T* probs,
                                T* d_scores) {
    const T* d_out_rows = d_output.data() + q_offset + i0 * d.q_width;
    ScoreTile(d, mask, head, scale, i0, rows, j0, cols, probs, ctx);
    ProbsAndScoreGradients(d, head, d_out_rows, log_sum_exp.data() + bh * d.query_len + i0,
                           row_dots + bh * d.query_len + i0, rows, j0, cols, probs, d_scores, ctx);
    // dV_block (cols, D) += Pᵀ (cols, rows) · dO (rows, D)
    Gemm<T>(Transpose::kTranspose, Transpose::kNo, cols, d.head_dim, rows, T(1), probs, cols,
            d_out_rows, d.q_width, T(1), dv, d.kv_width, ctx);
    // dK_block (cols, D) += scale * dSᵀ (cols, rows) · Q (rows, D)
    Gemm<T>(Transpose::kTranspose, Transpose::kNo, cols, d.head_dim, rows, scale, d_scores, cols,
            head.q + i0 * d.q_width, d.q_width, T(1), dk, d.kv_width, ctx);
  };

  // When the (batch, key/value head) items split evenly over the threads (or are many), one
  // thread takes a whole key/value head and the query heads of its group: it sums d_k and d_v
  // over them and d_q over the key blocks itself, in a fixed order, so one sweep over the tiles
  // gives d_q, d_k and d_v (5 tile products, FlashAttention-2's count) with no atomics and no
  // dependence on timing.
  const int64_t kv_total = d.batch * d.kv_heads;
  const int64_t threads = ctx.num_threads();
  if (kv_total % threads == 0 || kv_total >= 8 * threads) {
    ParallelFor(kv_total, ctx, [&](int64_t begin, int64_t end, int thread) {
      T* probs = scratch.tiles.data() + static_cast<int64_t>(thread) * 2 * kBlock * kBlock;
      T* d_scores = probs + kBlock * kBlock;
      for (int64_t item = begin; item < end; ++item) {
        const int64_t b = item / d.kv_heads, first_head = item % d.kv_heads * d.group();
        for (int64_t h = first_head; h < first_head + d.group(); ++h) {
          ZeroRows(d_q.data() + b * d.query_len * d.q_width + h * d.head_dim, d.query_len,
                   d.q_width, d.head_dim);
        }
        for (int64_t j0 = 0; j0 < d.key_len; j0 += kBlock) {
          const int64_t cols = std::min(kBlock, d.key_len - j0);
          const int64_t k_offset =
              (b * d.key_len + j0) * d.kv_width + item % d.kv_heads * d.head_dim;
          T* dk = d_k.data() + k_offset;  // (cols, D), row stride Ckv
          T* dv = d_v.data() + k_offset;
          ZeroRows(dk, cols, d.kv_width, d.head_dim);
          ZeroRows(dv, cols, d.kv_width, d.head_dim);
          const int64_t first_query =
              mask.causal ? std::max<int64_t>(0, j0 - d.causal_shift) : int64_t{0};
          for (int64_t h = first_head; h < first_head + d.group(); ++h) {
            const int64_t bh = b * d.num_heads + h;
            const HeadView<T> head = ViewHead(d, mask, q.data(), k.data(), v.data(), b, h);
            const int64_t q_offset = b * d.query_len * d.q_width + h * d.head_dim;
            // Query blocks start at multiples of kBlock, as in the forward pass.
            const int64_t visible_cols = std::min(cols, head.key_end - j0);
            for (int64_t i0 = first_query / kBlock * kBlock; i0 < d.query_len; i0 += kBlock) {
              const int64_t rows = std::min(kBlock, d.query_len - i0);
              if (KeyEnd(d, mask, head, i0, rows) <= j0) continue;  // no query of it sees j0
              KeyBlockTile(bh, head, q_offset, i0, rows, j0, visible_cols, dk, dv, probs, d_scores);
              // dQ (rows, D) += scale * dS (rows, cols) · K_block (cols, D)
              Gemm<T>(Transpose::kNo, Transpose::kNo, rows, d.head_dim, visible_cols, scale,
                      d_scores, visible_cols, head.k + j0 * d.kv_width, d.kv_width, T(1),
                      d_q.data() + q_offset + i0 * d.q_width, d.q_width, ctx);
            }
          }
        }
      }
    });
    return;
  }

  // Otherwise two sweeps, each output summed by one thread, with finer work items so that no
  // thread idles. Pass 1: d_k and d_v, one key block per work item, summed over the query
  // blocks that see it.
  const BlockPairs key_blocks(d.key_len);
  ParallelFor(
      d.batch * d.kv_heads * key_blocks.pairs, ctx, [&](int64_t begin, int64_t end, int thread) {
        T* probs = scratch.tiles.data() + static_cast<int64_t>(thread) * 2 * kBlock * kBlock;
        T* d_scores = probs + kBlock * kBlock;
        for (int64_t unit = begin; unit < end; ++unit) {
          const int64_t item = unit / key_blocks.pairs, b = item / d.kv_heads;
          const int64_t kv_h = item % d.kv_heads;
          key_blocks.ForEach(unit % key_blocks.pairs, [&](int64_t block) {
            const int64_t j0 = block * kBlock, cols = std::min(kBlock, d.key_len - j0);
            const int64_t k_offset = (b * d.key_len + j0) * d.kv_width + kv_h * d.head_dim;
            T* dk = d_k.data() + k_offset;  // (cols, D), row stride Ckv
            T* dv = d_v.data() + k_offset;
            ZeroRows(dk, cols, d.kv_width, d.head_dim);
            ZeroRows(dv, cols, d.kv_width, d.head_dim);
            // Under the causal mask, query i sees key j0 only from i = j0 - shift on.
            const int64_t first_query =
                mask.causal ? std::max<int64_t>(0, j0 - d.causal_shift) : int64_t{0};
            // The query heads of the group, in order, each over the query blocks that see j0.
            for (int64_t h = kv_h * d.group(); h < (kv_h + 1) * d.group(); ++h) {
              const int64_t bh = b * d.num_heads + h;
              const HeadView<T> head = ViewHead(d, mask, q.data(), k.data(), v.data(), b, h);
              if (head.key_end <= j0) break;  // the block is padding: zero gradients
              const int64_t visible_cols = std::min(cols, head.key_end - j0);
              const int64_t q_offset = b * d.query_len * d.q_width + h * d.head_dim;
              for (int64_t i0 = first_query; i0 < d.query_len; i0 += kBlock) {
                const int64_t rows = std::min(kBlock, d.query_len - i0);
                KeyBlockTile(bh, head, q_offset, i0, rows, j0, visible_cols, dk, dv, probs,
                             d_scores);
              }
            }
          });
        }
      });

  // Pass 2: d_q, one query block per work item, summed over the key blocks it sees.
  const BlockPairs query_blocks(d.query_len);
  ParallelFor(
      d.batch * d.num_heads * query_blocks.pairs, ctx, [&](int64_t begin, int64_t end, int thread) {
        T* probs = scratch.tiles.data() + static_cast<int64_t>(thread) * 2 * kBlock * kBlock;
        T* d_scores = probs + kBlock * kBlock;
        for (int64_t unit = begin; unit < end; ++unit) {
          const int64_t bh = unit / query_blocks.pairs, b = bh / d.num_heads, h = bh % d.num_heads;
          const HeadView<T> head = ViewHead(d, mask, q.data(), k.data(), v.data(), b, h);
          query_blocks.ForEach(unit % query_blocks.pairs, [&](int64_t block) {
            const int64_t i0 = block * kBlock, rows = std::min(kBlock, d.query_len - i0);
            const int64_t q_offset = (b * d.query_len + i0) * d.q_width + h * d.head_dim;
            T* dq = d_q.data() + q_offset;  // (rows, D), row stride Cq
            ZeroRows(dq, rows, d.q_width, d.head_dim);
            const int64_t key_end = KeyEnd(d, mask, head, i0, rows);
            for (int64_t j0 = 0; j0 < key_end; j0 += kBlock) {
              const int64_t cols = std::min(kBlock, key_end - j0);
              ScoreTile(d, mask, head, scale, i0, rows, j0, cols, probs, ctx);
              ProbsAndScoreGradients(
                  d, head, d_output.data() + q_offset, log_sum_exp.data() + bh * d.query_len + i0,
                  row_dots + bh * d.query_len + i0, rows, j0, cols, probs, d_scores, ctx);
              // dQ (rows, D) += scale * dS (rows, cols) · K_block (cols, D)
              Gemm<T>(Transpose::kNo, Transpose::kNo, rows, d.head_dim, cols, scale, d_scores, cols,
                      head.k + j0 * d.kv_width, d.kv_width, T(1), dq, d.q_width, ctx);
            }
          });
        }
      });
}

template size_t FlashAttentionScratchBytes<float>(int64_t, int64_t, int64_t, int);
template size_t FlashAttentionScratchBytes<double>(int64_t, int64_t, int64_t, int);
template void FlashAttentionForward<float>(ConstTensorView<float>, ConstTensorView<float>,
                                           ConstTensorView<float>, int64_t, const AttentionMask&,
                                           TensorView<float>, TensorView<float>,
                                           const ExecutionContext&);
template void FlashAttentionForward<double>(ConstTensorView<double>, ConstTensorView<double>,
                                            ConstTensorView<double>, int64_t, const AttentionMask&,
                                            TensorView<double>, TensorView<double>,
                                            const ExecutionContext&);
template void FlashAttentionBackward<float>(ConstTensorView<float>, ConstTensorView<float>,
                                            ConstTensorView<float>, ConstTensorView<float>,
                                            ConstTensorView<float>, ConstTensorView<float>, int64_t,
                                            const AttentionMask&, TensorView<float>,
                                            TensorView<float>, TensorView<float>,
                                            const ExecutionContext&);
template void FlashAttentionBackward<double>(ConstTensorView<double>, ConstTensorView<double>,
                                             ConstTensorView<double>, ConstTensorView<double>,
                                             ConstTensorView<double>, ConstTensorView<double>,
                                             int64_t, const AttentionMask&, TensorView<double>,
                                             TensorView<double>, TensorView<double>,
                                             const ExecutionContext&);

}  // namespace qkv::ops
