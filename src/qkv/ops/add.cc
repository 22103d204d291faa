#include "qkv/ops/add.h"

#include "qkv/core/check.h"
#include "qkv/runtime/parallel_for.h"

namespace qkv::ops {

template <typename T>
void AddForward(ConstTensorView<T> a, ConstTensorView<T> b, TensorView<T> out,
                const ExecutionContext& ctx) {
  QKV_CHECK(a.size() == b.size() && a.size() == out.size(), "add: sizes ", a.size(), ", ", b.size(),
            " and ", out.size(), " differ");
  ParallelFor(
      a.size(), ctx,
      [&](int64_t begin, int64_t end, int) {
        for (int64_t i = begin; i < end; ++i) out.data()[i] = a.data()[i] + b.data()[i];
      },
      16384);
}

template void AddForward<float>(ConstTensorView<float>, ConstTensorView<float>, TensorView<float>,
                                const ExecutionContext&);
template void AddForward<double>(ConstTensorView<double>, ConstTensorView<double>,
                                 TensorView<double>, const ExecutionContext&);

}  // namespace qkv::ops
