// The mean next-token cross-entropy of a model over non-overlapping windows of a token
// sequence: windows of N tokens from token 0, the last partial window dropped, N - 1
// predictions per window (../shared/SPEC.md's definition for `qkv eval`).
#pragma once

#include <cstdint>
#include <functional>
#include <span>

#include "qkv/model/checkpoint.h"
#include "qkv/runtime/precision.h"
#include "qkv/runtime/thread_pool.h"

namespace qkv::model {

struct WindowLoss {
  double loss = 0;          // mean over predictions, nats
  int64_t predictions = 0;  // windows * (N - 1)
  int64_t windows = 0;
};

// window >= 2; batch windows go through one forward pass (speed only). max_windows > 0 caps
// the number of windows (the first ones). first_window_logits, when set, receives the logits
// (N, V) of the first window. Throws qkv::Error when tokens hold no full window, or the window
// is past a learned position table. precision: of the matrix products (runtime/precision.h;
// the caller has checked that bf16 can run). progress, when set, is called after each batch with
// the windows done and the windows in all.
WindowLoss EvaluateWindows(
    const Model& model, std::span<const int32_t> tokens, int64_t window, int64_t batch,
    int64_t max_windows, const ThreadPool& threads,
    const std::function<void(ConstTensorView<float>)>& first_window_logits = {},
    const std::function<void(int64_t done, int64_t total)>& progress = {},
    Precision precision = Precision::kFloat32);

}  // namespace qkv::model
