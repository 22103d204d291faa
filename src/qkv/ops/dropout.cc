#include "qkv/ops/dropout.h"

#include "qkv/ops/op_checks.h"
#include "qkv/runtime/parallel_for.h"

namespace qkv::ops {

template <typename T>
void DropoutForward(ConstTensorView<T> input, float p, Random& random,
                    TensorView<uint8_t> keep_mask, TensorView<T> output,
                    const ExecutionContext& ctx) {
  QKV_CHECK(p >= 0 && p < 1, "dropout: p must be in [0, 1), got ", p);
  CheckShape("dropout", "output", output, input.shape());
  CheckShape("dropout", "keep_mask", keep_mask, input.shape());
  const int64_t count = input.size();
  const uint64_t threshold = static_cast<uint64_t>(static_cast<double>(p) * 18446744073709551616.0);
  // One draw per call seeds a splitmix64 stream whose element i is computed on its own: it
  // depends on the key and i only, so the mask is drawn in parallel and is the same for every
  // thread count, and the caller's Random advances by one draw (p == 0 draws nothing).
  const uint64_t key = p == 0 ? 0 : random.NextU64();
  const T scale = T(1) / (T(1) - static_cast<T>(p));
  ParallelFor(
      count, ctx,
      [mask = keep_mask.data(), in = input.data(), out = output.data(), p, key, threshold, scale](
          int64_t begin, int64_t end, int) {
        for (int64_t i = begin; i < end; ++i) {
          const bool keep = p == 0 || SplitMix64(key + static_cast<uint64_t>(i) *
                                                           kSplitMix64Increment) >= threshold;
          mask[i] = keep;
          out[i] = keep ? in[i] * scale : T(0);
        }
      },
      16384);
}

template <typename T>
void DropoutBackward(ConstTensorView<T> d_output, ConstTensorView<uint8_t> keep_mask, float p,
                     TensorView<T> d_input, const ExecutionContext& ctx) {
  QKV_CHECK(p >= 0 && p < 1, "dropout: p must be in [0, 1), got ", p);
  CheckShape("dropout", "keep_mask", keep_mask, d_output.shape());
  CheckShape("dropout", "d_input", d_input, d_output.shape());
  const T scale = T(1) / (T(1) - static_cast<T>(p));
  ParallelFor(
      d_output.size(), ctx,
      [keep = keep_mask.data(), d_out = d_output.data(), d_in = d_input.data(), scale](
          int64_t begin, int64_t end, int) {
        for (int64_t i = begin; i < end; ++i) d_in[i] = keep[i] ? d_out[i] * scale : T(0);
      },
      16384);
}

template void DropoutForward<float>(ConstTensorView<float>, float, Random&, TensorView<uint8_t>,
                                    TensorView<float>, const ExecutionContext&);
template void DropoutForward<double>(ConstTensorView<double>, float, Random&, TensorView<uint8_t>,
                                     TensorView<double>, const ExecutionContext&);
template void DropoutBackward<float>(ConstTensorView<float>, ConstTensorView<uint8_t>, float,
                                     TensorView<float>, const ExecutionContext&);
template void DropoutBackward<double>(ConstTensorView<double>, ConstTensorView<uint8_t>, float,
                                      TensorView<double>, const ExecutionContext&);

}  // namespace qkv::ops
