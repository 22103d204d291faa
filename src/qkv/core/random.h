// Random numbers with a fixed algorithm (xoshiro256**, seeded by splitmix64; Box-Muller for
// normals), so that a seed gives the same numbers with every compiler and standard library —
// std::normal_distribution does not promise that.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>

#include "qkv/core/tensor_view.h"

namespace qkv {

inline constexpr uint64_t kSplitMix64Increment = 0x9e3779b97f4a7c15ULL;

// The number that splitmix64 gives after `state` (which then advances by kSplitMix64Increment):
// element i of the stream seeded with s is SplitMix64(s + i * kSplitMix64Increment), so any
// element can be drawn on its own, in parallel.
inline uint64_t SplitMix64(uint64_t state) {
  uint64_t z = state + kSplitMix64Increment;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

class Random {
 public:
  explicit Random(uint64_t seed) {
    for (uint64_t& word : state_) {
      word = SplitMix64(seed);
      seed += kSplitMix64Increment;
    }
  }

  // The whole generator state, for checkpoints: SetState(State()) continues the same stream.
  std::array<uint64_t, 4> State() const { return {state_[0], state_[1], state_[2], state_[3]}; }
  void SetState(const std::array<uint64_t, 4>& state) {
    for (int i = 0; i < 4; ++i) state_[i] = state[i];
  }

  uint64_t NextU64() {
    const uint64_t result = RotateLeft(state_[1] * 5, 7) * 9;
    const uint64_t shifted = state_[1] << 17;
    state_[2] ^= state_[0];
    state_[3] ^= state_[1];
    state_[1] ^= state_[2];
    state_[0] ^= state_[3];
    state_[2] ^= shifted;
    state_[3] = RotateLeft(state_[3], 45);
    return result;
  }

  // Uniform in [0, 1), 53 random bits.
  double Uniform() { return static_cast<double>(NextU64() >> 11) * 0x1.0p-53; }

  // Uniform integer in [0, bound), bound > 0.
  uint64_t Below(uint64_t bound) { return static_cast<uint64_t>(Uniform() * bound); }

  // Standard normal (Box-Muller; the second value of each pair is discarded for simplicity).
  double Normal() {
    const double u1 = 1.0 - Uniform();  // in (0, 1], so log is finite
    const double u2 = Uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }

  template <typename T>
  void FillNormal(TensorView<T> view, double mean, double stddev) {
    for (T& value : view) value = static_cast<T>(mean + stddev * Normal());
  }
  template <typename T>
  void FillUniform(TensorView<T> view, double low, double high) {
    for (T& value : view) value = static_cast<T>(low + (high - low) * Uniform());
  }

 private:
  static uint64_t RotateLeft(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t state_[4];
};

}  // namespace qkv
