// The learning-rate schedules: linear warmup from lr/(warmup+1) to lr over `warmup` steps, then
//   kCosine       nanoGPT's: cosine decay to min_lr at `decay_steps`, then min_lr. It needs the
//                 run's length in advance.
//   kInverseSqrt  the Transformer paper's (and Marian's --lr-decay-inv-sqrt, fairseq's
//                 inverse_sqrt): lr * sqrt((warmup+1) / (step+1)), never below min_lr. It needs no
//                 end, so a run stopped by a time limit ends on a sensible rate.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numbers>
#include <optional>
#include <string>
#include <string_view>

namespace qkv::train {

enum class LrDecay { kCosine, kInverseSqrt };

// "cosine" / "inv-sqrt": the names of the command line and the training state.
inline std::string ToString(LrDecay decay) {
  return decay == LrDecay::kCosine ? "cosine" : "inv-sqrt";
}
inline std::optional<LrDecay> ParseLrDecay(std::string_view name) {
  if (name == "cosine") return LrDecay::kCosine;
  if (name == "inv-sqrt") return LrDecay::kInverseSqrt;
  return std::nullopt;
}

struct LrSchedule {
  double max_lr = 1e-3;
  double min_lr = 1e-4;
  int64_t warmup = 100;
  int64_t decay_steps = 2000;  // kCosine: usually the total number of steps
  LrDecay decay = LrDecay::kCosine;

  // step is 0-based.
  double At(int64_t step) const {
    const double warmup_end = static_cast<double>(warmup + 1);
    if (step < warmup) return max_lr * static_cast<double>(step + 1) / warmup_end;
    if (decay == LrDecay::kInverseSqrt) {
      return std::max(min_lr, max_lr * std::sqrt(warmup_end / static_cast<double>(step + 1)));
    }
    if (step >= decay_steps) return min_lr;
    const double ratio =
        static_cast<double>(step - warmup) / static_cast<double>(decay_steps - warmup);
    const double coefficient = 0.5 * (1.0 + std::cos(std::numbers::pi * ratio));
    return min_lr + coefficient * (max_lr - min_lr);
  }
};

}  // namespace qkv::train
