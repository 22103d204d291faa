#include "qkv/ops/attention_one_query.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "qkv/kernels/cpu/vector_kernels.h"
#include "qkv/ops/op_checks.h"

namespace qkv::ops {

namespace {

// One head, in T's own arithmetic: the plain loops that the float kernel is tested against.
template <typename T>
void AttendOneQueryPlain(const T* q, const T* k, const T* v, int64_t row_stride, int64_t key_len,
                         int64_t head_dim, T scale, const uint8_t* padding, T* scores, T* out) {
  T max_score = -std::numeric_limits<T>::infinity();
  for (int64_t j = 0; j < key_len; ++j) {
    if (padding != nullptr && padding[j] != 0) {
      scores[j] = -std::numeric_limits<T>::infinity();
      continue;
    }
    T dot = 0;
    for (int64_t c = 0; c < head_dim; ++c) dot += q[c] * k[j * row_stride + c];
    scores[j] = scale * dot;
    max_score = std::max(max_score, scores[j]);
  }
  for (int64_t c = 0; c < head_dim; ++c) out[c] = 0;
  if (max_score == -std::numeric_limits<T>::infinity()) return;
  T sum = 0;
  for (int64_t j = 0; j < key_len; ++j) {
    scores[j] = std::exp(scores[j] - max_score);
    sum += scores[j];
  }
  for (int64_t j = 0; j < key_len; ++j) {
    scores[j] /= sum;
    for (int64_t c = 0; c < head_dim; ++c) out[c] += scores[j] * v[j * row_stride + c];
  }
}

void AttendOneQuery(const float* q, const float* k, const float* v, int64_t row_stride,
                    int64_t key_len, int64_t head_dim, float scale, const uint8_t* padding,
                    float* scores, float* out, const ExecutionContext& ctx) {
  kernels::VectorKernelsFor(ctx.isa).attend_one_query(q, k, v, row_stride, key_len, head_dim, scale,
                                                      padding, scores, out);
}

void AttendOneQuery(const double* q, const double* k, const double* v, int64_t row_stride,
                    int64_t key_len, int64_t head_dim, double scale, const uint8_t* padding,
                    double* scores, double* out, const ExecutionContext& /*ctx*/) {
  AttendOneQueryPlain(q, k, v, row_stride, key_len, head_dim, scale, padding, scores, out);
}

}  // namespace

template <typename T>
void AttentionForwardOneQuery(ConstTensorView<T> q, ConstTensorView<T> k, ConstTensorView<T> v,
                              int64_t num_heads, ConstTensorView<uint8_t> key_padding,
                              TensorView<T> output, TensorView<T> scores,
                              const ExecutionContext& ctx) {
  CheckRank("attention_one_query", "q", q, 3);
  CheckRank("attention_one_query", "k", k, 3);
  CheckPositive("attention_one_query", "num_heads", num_heads);
  QKV_CHECK(q.dim(0) == 1 && q.dim(1) == 1 && q.dim(2) % num_heads == 0, "attention_one_query: q ",
            q.shape().ToString(), " is not one query of ", num_heads, " heads");
  const int64_t head_dim = q.dim(2) / num_heads, key_len = k.dim(1), kv_width = k.dim(2);
  QKV_CHECK(k.dim(0) == 1 && key_len > 0 && kv_width % head_dim == 0 &&
                num_heads % (kv_width / head_dim) == 0,
            "attention_one_query: k ", k.shape().ToString(), " is not keys of heads of size ",
            head_dim, " dividing ", num_heads);
  CheckShape("attention_one_query", "v", v, k.shape());
  CheckShape("attention_one_query", "output", output, q.shape());
  CheckShape("attention_one_query", "scores", scores, Shape{key_len});
  if (!key_padding.empty()) {
    CheckShape("attention_one_query", "key_padding", key_padding, Shape{1, key_len});
  }
  const int64_t group = num_heads / (kv_width / head_dim);
  const T scale = T(1) / std::sqrt(static_cast<T>(head_dim));
  const uint8_t* padding = key_padding.empty() ? nullptr : key_padding.data();
  for (int64_t h = 0; h < num_heads; ++h) {
    const int64_t kv_offset = h / group * head_dim;
    AttendOneQuery(q.data() + h * head_dim, k.data() + kv_offset, v.data() + kv_offset, kv_width,
                   key_len, head_dim, scale, padding, scores.data(), output.data() + h * head_dim,
                   ctx);
  }
}

template void AttentionForwardOneQuery<float>(ConstTensorView<float>, ConstTensorView<float>,
                                              ConstTensorView<float>, int64_t,
                                              ConstTensorView<uint8_t>, TensorView<float>,
                                              TensorView<float>, const ExecutionContext&);
template void AttentionForwardOneQuery<double>(ConstTensorView<double>, ConstTensorView<double>,
                                               ConstTensorView<double>, int64_t,
                                               ConstTensorView<uint8_t>, TensorView<double>,
                                               TensorView<double>, const ExecutionContext&);

}  // namespace qkv::ops
