// oneDNN's matmul primitive. Transposes and leading dimensions are expressed as memory-descriptor
// strides, so weights stay stored (out, in) with no copy; alpha becomes an output scale and
// beta a sum post-op. A primitive is specialised to one shape, so primitives are created once
// per distinct call and cached, the way an engine integration would have to.
#include <omp.h>

#include <chrono>
#include <map>
#include <oneapi/dnnl/dnnl.hpp>
#include <string>
#include <tuple>

#include "gemm_backend.h"
#include "gemm_backend_dnnl_info.h"

namespace qkv::bench {
namespace {

using dnnl::memory;

class DnnlMatmulBackend : public GemmBackend {
 public:
  DnnlMatmulBackend() : engine_(dnnl::engine::kind::cpu, 0), stream_(engine_) {}

  std::string Describe() const override {
    return "oneDNN matmul primitive (cached per shape), " + DnnlInfo();
  }

  // The primitive's blocking is picked at creation from the current thread count, so threads
  // are set before any Prepare().
  void SetNumThreads(int num_threads) override { omp_set_num_threads(num_threads); }

  double Prepare(const GemmArgs& args) override {
    const auto start = std::chrono::steady_clock::now();
    Get(args);
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }

  std::string ImplName(const GemmArgs& args) override { return Get(args).impl; }

  void Gemm(const GemmArgs& args) override {
    Entry& e = Get(args);
    e.a.set_data_handle(const_cast<float*>(args.a));
    e.b.set_data_handle(const_cast<float*>(args.b));
    e.c.set_data_handle(args.c);
    e.matmul.execute(stream_, {{DNNL_ARG_SRC, e.a}, {DNNL_ARG_WEIGHTS, e.b}, {DNNL_ARG_DST, e.c}});
    stream_.wait();
  }

 private:
  using Key =
      std::tuple<bool, bool, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, float, float>;
  struct Entry {
    dnnl::matmul matmul;
    memory a, b, c;
    std::string impl;
  };

  Entry& Get(const GemmArgs& args) {
    const Key key{args.trans_a, args.trans_b, args.m,   args.n,     args.k,
                  args.lda,     args.ldb,     args.ldc, args.alpha, args.beta};
    auto it = cache_.find(key);
    if (it != cache_.end()) return it->second;

    const auto f32 = memory::data_type::f32;
    // Row-major (rows, cols) with row stride ld; a transposed operand swaps the strides.
    const memory::desc a_md({args.m, args.k}, f32,
                            args.trans_a ? memory::dims{1, args.lda} : memory::dims{args.lda, 1});
    const memory::desc b_md({args.k, args.n}, f32,
                            args.trans_b ? memory::dims{1, args.ldb} : memory::dims{args.ldb, 1});
    const memory::desc c_md({args.m, args.n}, f32, memory::dims{args.ldc, 1});
    dnnl::primitive_attr attr;
    if (args.alpha != 1) attr.set_output_scales(0, {args.alpha});
    if (args.beta != 0) {
      dnnl::post_ops ops;
      ops.append_sum(args.beta);
      attr.set_post_ops(ops);
    }
    const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a_md, b_md, c_md), attr, engine_);
    Entry entry{dnnl::matmul(pd), memory(a_md, engine_, DNNL_MEMORY_NONE),
                memory(b_md, engine_, DNNL_MEMORY_NONE), memory(c_md, engine_, DNNL_MEMORY_NONE),
                pd.impl_info_str()};
    return cache_.emplace(key, std::move(entry)).first->second;
  }

  dnnl::engine engine_;
  dnnl::stream stream_;
  std::map<Key, Entry> cache_;
};

}  // namespace

GemmBackend* CreateBackend() { return new DnnlMatmulBackend(); }

}  // namespace qkv::bench
