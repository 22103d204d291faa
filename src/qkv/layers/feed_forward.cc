#include "qkv/layers/feed_forward.h"

#include "qkv/layers/head_packing.h"
#include "qkv/ops/gelu.h"
#include "qkv/ops/linear.h"
#include "qkv/ops/relu.h"
#include "qkv/ops/silu.h"
#include "qkv/ops/swiglu.h"

namespace qkv::layers {

namespace {

// The temporaries of the backward pass, taken from the scratch arena (and from a counting
// arena to size it).
template <typename T>
struct BackwardScratch {
  TensorView<T> d_hidden;         // (rows, F)
  TensorView<T> d_up;             // (rows, up_rows)
  TensorView<T> d_gate, d_value;  // (rows, F), SwiGLU only
};

template <typename T>
BackwardScratch<T> AllocateBackwardScratch(Arena& arena, const FeedForwardConfig& config,
                                           int64_t rows) {
  BackwardScratch<T> scratch;
  scratch.d_hidden = arena.Allocate<T>(Shape{rows, config.hidden});
  scratch.d_up = arena.Allocate<T>(Shape{rows, config.up_rows()});
  if (config.kind == FfnKind::kSwiGlu) {
    scratch.d_gate = arena.Allocate<T>(Shape{rows, config.hidden});
    scratch.d_value = arena.Allocate<T>(Shape{rows, config.hidden});
  }
  return scratch;
}

}  // namespace

template <typename T>
FeedForwardActivations<T> AllocateFeedForwardActivations(Arena& arena,
                                                         const FeedForwardConfig& config,
                                                         int64_t rows) {
  FeedForwardActivations<T> acts;
  acts.up = arena.Allocate<T>(Shape{rows, config.up_rows()});
  if (config.kind == FfnKind::kSwiGlu) {
    acts.gate = arena.Allocate<T>(Shape{rows, config.hidden});
    acts.value = arena.Allocate<T>(Shape{rows, config.hidden});
  }
  acts.hidden = arena.Allocate<T>(Shape{rows, config.hidden});
  acts.out = arena.Allocate<T>(Shape{rows, config.width});
  return acts;
}

template <typename T>
void FeedForwardForward(const FeedForwardConfig& config, const FeedForwardParams<T>& params,
                        ConstTensorView<T> input, const FeedForwardActivations<T>& acts,
                        const ExecutionContext& ctx) {
  const int64_t rows = input.dim(0), f = config.hidden;
  ops::LinearForward<T>(input, params.up_weight, params.up_bias, acts.up, ctx);
  switch (config.kind) {
    case FfnKind::kSwiGlu:
      UnpackColumns<T>(acts.up.data(), rows, 2 * f, 0, f, acts.gate.data(), ctx);
      UnpackColumns<T>(acts.up.data(), rows, 2 * f, f, f, acts.value.data(), ctx);
      ops::SwiGluForward<T>(acts.gate, acts.value, acts.hidden, ctx);
      break;
    case FfnKind::kGeluTanh:
      ops::GeluForward<T>(acts.up, ops::GeluApproximation::kTanh, acts.hidden, ctx);
      break;
    case FfnKind::kGelu:
      ops::GeluForward<T>(acts.up, ops::GeluApproximation::kNone, acts.hidden, ctx);
      break;
    case FfnKind::kRelu:
      ops::ReluForward<T>(acts.up, acts.hidden, ctx);
      break;
    case FfnKind::kSilu:
      ops::SiluForward<T>(acts.up, acts.hidden, ctx);
      break;
  }
  ops::LinearForward<T>(acts.hidden, params.down_weight, params.down_bias, acts.out, ctx);
}

template <typename T>
void FeedForwardBackward(const FeedForwardConfig& config, const FeedForwardParams<T>& params,
                         ConstTensorView<T> input, const FeedForwardActivations<T>& acts,
                         ConstTensorView<T> d_out, TensorView<T> d_input,
                         const FeedForwardParams<T>& d_params, const ExecutionContext& ctx) {
  const int64_t rows = input.dim(0), f = config.hidden;
  Arena& arena = ctx.Scratch();
  ArenaScope release(arena);
  const BackwardScratch<T> s = AllocateBackwardScratch<T>(arena, config, rows);
  ops::LinearBackward<T>(d_out, acts.hidden, params.down_weight, s.d_hidden, d_params.down_weight,
                         d_params.down_bias, ctx);
  switch (config.kind) {
    case FfnKind::kSwiGlu:
      ops::SwiGluBackward<T>(s.d_hidden, acts.gate, acts.value, s.d_gate, s.d_value, ctx);
      PackColumns<T>(s.d_gate.data(), rows, 2 * f, 0, f, s.d_up.data(), ctx);
      PackColumns<T>(s.d_value.data(), rows, 2 * f, f, f, s.d_up.data(), ctx);
      break;
    case FfnKind::kGeluTanh:
      ops::GeluBackward<T>(s.d_hidden, acts.up, ops::GeluApproximation::kTanh, s.d_up, ctx);
      break;
    case FfnKind::kGelu:
      ops::GeluBackward<T>(s.d_hidden, acts.up, ops::GeluApproximation::kNone, s.d_up, ctx);
      break;
    case FfnKind::kRelu:
      ops::ReluBackward<T>(s.d_hidden, acts.up, s.d_up, ctx);
      break;
    case FfnKind::kSilu:
      ops::SiluBackward<T>(s.d_hidden, acts.up, s.d_up, ctx);
      break;
  }
  ops::LinearBackward<T>(s.d_up, input, params.up_weight, d_input, d_params.up_weight,
                         d_params.up_bias, ctx);
}

size_t FeedForwardBackwardScratchBytes(const FeedForwardConfig& config, int64_t rows,
                                       size_t element_size) {
  return MeasureBytes(element_size, [&](Arena& arena, auto element) {
    AllocateBackwardScratch<decltype(element)>(arena, config, rows);
  });
}

#define QKV_INSTANTIATE_FFN(T)                                                                \
  template FeedForwardActivations<T> AllocateFeedForwardActivations<T>(                       \
      Arena&, const FeedForwardConfig&, int64_t);                                             \
  template void FeedForwardForward<T>(const FeedForwardConfig&, const FeedForwardParams<T>&,  \
                                      ConstTensorView<T>, const FeedForwardActivations<T>&,   \
                                      const ExecutionContext&);                               \
  template void FeedForwardBackward<T>(const FeedForwardConfig&, const FeedForwardParams<T>&, \
                                       ConstTensorView<T>, const FeedForwardActivations<T>&,  \
                                       ConstTensorView<T>, TensorView<T>,                     \
                                       const FeedForwardParams<T>&, const ExecutionContext&);
QKV_INSTANTIATE_FFN(float)
QKV_INSTANTIATE_FFN(double)
#undef QKV_INSTANTIATE_FFN

}  // namespace qkv::layers
