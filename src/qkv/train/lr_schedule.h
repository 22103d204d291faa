// The learning-rate schedule of nanoGPT: linear warmup from lr/(warmup+1) to lr over `warmup`
// steps, then cosine decay to min_lr at `decay_steps`, then min_lr.
#pragma once

#include <cmath>
#include <cstdint>
#include <numbers>

namespace qkv::train {

struct LrSchedule {
  double max_lr = 1e-3;
  double min_lr = 1e-4;
  int64_t warmup = 100;
  int64_t decay_steps = 2000;  // usually the total number of steps

  // step is 0-based.
  double At(int64_t step) const {
    if (step < warmup) {
      return max_lr * static_cast<double>(step + 1) / static_cast<double>(warmup + 1);
    }
    if (step >= decay_steps) return min_lr;
    const double ratio =
        static_cast<double>(step - warmup) / static_cast<double>(decay_steps - warmup);
    const double coefficient = 0.5 * (1.0 + std::cos(std::numbers::pi * ratio));
    return min_lr + coefficient * (max_lr - min_lr);
  }
};

}  // namespace qkv::train
