#include "qkv/kernels/cpu/matmul_bf16.h"

#include <omp.h>

#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <oneapi/dnnl/dnnl.hpp>
#include <tuple>
#include <vector>

#include "qkv/core/check.h"

namespace qkv::kernels {

namespace {

using dnnl::memory;

struct Key {
  int64_t m, n, k, lda, ldb, ldc;
  Transpose trans_a, trans_b;
  float alpha, beta;
  bool operator<(const Key& other) const {
    return std::tie(m, n, k, lda, ldb, ldc, trans_a, trans_b, alpha, beta) <
           std::tie(other.m, other.n, other.k, other.lda, other.ldb, other.ldc, other.trans_a,
                    other.trans_b, other.alpha, other.beta);
  }
};

struct Primitive {
  memory::desc a, b, c;
  dnnl::matmul matmul;
  size_t scratch_bytes = 0;
  std::string implementation;
};

const dnnl::engine& Engine() {
  static const dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

// op(X) is (rows, cols); X is stored (rows, cols) with row stride ld, or (cols, rows).
memory::desc OperandDesc(int64_t rows, int64_t cols, int64_t ld, Transpose trans) {
  const memory::dims strides = trans == Transpose::kNo ? memory::dims{ld, 1} : memory::dims{1, ld};
  return memory::desc({rows, cols}, memory::data_type::bf16, strides);
}

std::shared_ptr<const Primitive> Create(const Key& key) {
  auto made = std::make_shared<Primitive>();
  made->a = OperandDesc(key.m, key.k, key.lda, key.trans_a);
  made->b = OperandDesc(key.k, key.n, key.ldb, key.trans_b);
  made->c = memory::desc({key.m, key.n}, memory::data_type::f32, memory::dims{key.ldc, 1});
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  if (key.alpha != 1.0f) attr.set_output_scales(0, {key.alpha});
  if (key.beta != 0.0f) {
    dnnl::post_ops sum;
    sum.append_sum(key.beta);
    attr.set_post_ops(sum);
  }
  const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(made->a, made->b, made->c), attr,
                                        Engine());
  made->matmul = dnnl::matmul(pd);
  made->scratch_bytes = pd.scratchpad_desc().get_size();
  made->implementation = pd.impl_info_str();
  return made;
}

// The primitives made so far, the least recently used dropped past kMatmulBf16PrimitivesMax:
// decoding makes one per number of live rows and source length, so a long-running translator
// would otherwise keep growing.
class PrimitiveCache {
 public:
  std::shared_ptr<const Primitive> Find(const Key& key) {
    const std::lock_guard<std::mutex> lock(mutex_);
    const auto found = entries_.find(key);
    if (found != entries_.end()) {
      recency_.splice(recency_.begin(), recency_, found->second.recency);
      return found->second.primitive;
    }
    std::shared_ptr<const Primitive> made;
    try {
      made = Create(key);
    } catch (const dnnl::error& error) {
      QKV_CHECK(false, "oneDNN has no bfloat16 matmul for m=", key.m, " n=", key.n, " k=", key.k,
                ": ", error.what());
    }
    recency_.push_front(key);
    entries_.emplace(key, Entry{made, recency_.begin()});
    if (entries_.size() > kMatmulBf16PrimitivesMax) {  // callers hold theirs by shared_ptr
      entries_.erase(recency_.back());
      recency_.pop_back();
    }
    return made;
  }

  size_t size() {
    const std::lock_guard<std::mutex> lock(mutex_);
    return entries_.size();
  }

 private:
  struct Entry {
    std::shared_ptr<const Primitive> primitive;
    std::list<Key>::iterator recency;
  };
  std::mutex mutex_;
  std::map<Key, Entry> entries_;
  std::list<Key> recency_;  // most recently used first
};

PrimitiveCache& Cache() {
  static PrimitiveCache cache;
  return cache;
}

std::shared_ptr<const Primitive> Find(const Key& key) { return Cache().Find(key); }

}  // namespace

void MatmulBf16(int64_t m, int64_t n, int64_t k, float alpha, const uint16_t* a, int64_t lda,
                Transpose trans_a, const uint16_t* b, int64_t ldb, Transpose trans_b, float beta,
                float* c, int64_t ldc, const ExecutionContext& ctx) {
  if (m == 0 || n == 0) return;
  // oneDNN sizes its team from OpenMP's per-thread setting: make it this context's.
  if (!omp_in_parallel() && omp_get_max_threads() != ctx.num_threads()) {
    omp_set_num_threads(ctx.num_threads());
  }
  const std::shared_ptr<const Primitive> primitive =
      Find({m, n, k, lda, ldb, ldc, trans_a, trans_b, alpha, beta});
  thread_local dnnl::stream stream(Engine());
  thread_local std::vector<uint8_t> scratch;  // grows to the largest primitive's need
  if (scratch.size() < primitive->scratch_bytes) scratch.resize(primitive->scratch_bytes);
  const memory a_memory(primitive->a, Engine(), const_cast<uint16_t*>(a));
  const memory b_memory(primitive->b, Engine(), const_cast<uint16_t*>(b));
  const memory c_memory(primitive->c, Engine(), c);
  const memory scratch_memory(memory::desc({static_cast<int64_t>(scratch.size())},
                                           memory::data_type::u8, memory::format_tag::a),
                              Engine(), scratch.data());
  primitive->matmul.execute(stream, {{DNNL_ARG_SRC, a_memory},
                                     {DNNL_ARG_WEIGHTS, b_memory},
                                     {DNNL_ARG_DST, c_memory},
                                     {DNNL_ARG_SCRATCHPAD, scratch_memory}});
  stream.wait();
}

size_t MatmulBf16CachedPrimitives() { return Cache().size(); }

std::string MatmulBf16Implementation(int64_t m, int64_t n, int64_t k, Transpose trans_a,
                                     Transpose trans_b) {
  const int64_t lda = trans_a == Transpose::kNo ? k : m;
  const int64_t ldb = trans_b == Transpose::kNo ? n : k;
  return Find({m, n, k, lda, ldb, n, trans_a, trans_b, 1.0f, 0.0f})->implementation;
}

}  // namespace qkv::kernels
