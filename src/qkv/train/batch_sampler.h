// Training batches as nanoGPT makes them: B windows of T + 1 consecutive tokens starting at
// uniformly random offsets; inputs are the first T tokens, targets the last T.
#pragma once

#include <cstdint>
#include <span>

#include "qkv/core/check.h"
#include "qkv/core/random.h"
#include "qkv/core/tensor_view.h"

namespace qkv::train {

// inputs, targets: (B, T). tokens must hold at least T + 1 ids (throws qkv::Error otherwise,
// naming both numbers).
inline void SampleBatch(std::span<const int32_t> tokens, Random& random, TensorView<int32_t> inputs,
                        TensorView<int32_t> targets) {
  const int64_t batch = inputs.dim(0), seq = inputs.dim(1);
  const int64_t count = static_cast<int64_t>(tokens.size());
  QKV_CHECK(count >= seq + 1, "the data has ", count, " tokens, fewer than one window of ", seq + 1,
            " (context ", seq, " + 1); use more data or a shorter context");
  for (int64_t b = 0; b < batch; ++b) {
    const int64_t start = static_cast<int64_t>(random.Below(static_cast<uint64_t>(count - seq)));
    for (int64_t t = 0; t < seq; ++t) {
      inputs[b * seq + t] = tokens[start + t];
      targets[b * seq + t] = tokens[start + t + 1];
    }
  }
}

}  // namespace qkv::train
