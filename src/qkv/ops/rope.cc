#include "qkv/ops/rope.h"

#include <cmath>

#include "qkv/ops/op_checks.h"
#include "qkv/runtime/parallel_for.h"

namespace qkv::ops {

namespace {

template <typename T>
void CheckRopeArgs(const TensorView<T>& input, int64_t num_heads, const RopeConfig& config,
                   int64_t start_position) {
  CheckRank("rope", "input", input, 3);
  CheckPositive("rope", "batch", input.dim(0));
  CheckPositive("rope", "sequence length", input.dim(1));
  CheckPositive("rope", "width", input.dim(2));
  CheckPositive("rope", "num_heads", num_heads);
  QKV_CHECK(input.dim(2) % num_heads == 0, "rope: width ", input.dim(2),
            " is not divisible by num_heads ", num_heads);
  const int64_t head_dim = input.dim(2) / num_heads;
  QKV_CHECK(head_dim % 2 == 0, "rope: the head size must be even to form pairs, got ", head_dim,
            " (width ", input.dim(2), " / ", num_heads, " heads)");
  QKV_CHECK(config.theta > 0 && std::isfinite(config.theta), "rope: theta must be > 0, got ",
            config.theta);
  QKV_CHECK(start_position >= 0, "rope: start position must be >= 0, got ", start_position);
}

// Rotates every pair by +angle (direction = 1) or -angle (direction = -1).
template <typename T>
void Rotate(ConstTensorView<T> input, int64_t num_heads, const RopeConfig& config,
            int64_t start_position, double direction, TensorView<T> output,
            const ExecutionContext& ctx) {
  const int64_t seq = input.dim(1), width = input.dim(2);
  const int64_t head_dim = width / num_heads, half = head_dim / 2;
  ParallelFor(
      input.dim(0) * seq, ctx,
      [&](int64_t begin, int64_t end, int) {
        for (int64_t row = begin; row < end; ++row) {
          const double position = static_cast<double>(start_position + row % seq);
          for (int64_t i = 0; i < half; ++i) {
            const double frequency =
                std::pow(config.theta, -static_cast<double>(2 * i) / static_cast<double>(head_dim));
            const double angle = direction * position * frequency;
            const T cos_angle = static_cast<T>(std::cos(angle));
            const T sin_angle = static_cast<T>(std::sin(angle));
            const int64_t first = config.style == RopeStyle::kHalf ? i : 2 * i;
            const int64_t second = config.style == RopeStyle::kHalf ? i + half : 2 * i + 1;
            for (int64_t h = 0; h < num_heads; ++h) {
              const int64_t offset = row * width + h * head_dim;
              const T a = input.data()[offset + first], b = input.data()[offset + second];
              output.data()[offset + first] = a * cos_angle - b * sin_angle;
              output.data()[offset + second] = a * sin_angle + b * cos_angle;
            }
          }
        }
      },
      4);
}

}  // namespace

template <typename T>
void RopeForward(ConstTensorView<T> input, int64_t num_heads, const RopeConfig& config,
                 int64_t start_position, TensorView<T> output, const ExecutionContext& ctx) {
  CheckRopeArgs(input, num_heads, config, start_position);
  CheckShape("rope", "output", output, input.shape());
  Rotate(input, num_heads, config, start_position, 1.0, output, ctx);
}

template <typename T>
void RopeBackward(ConstTensorView<T> d_output, int64_t num_heads, const RopeConfig& config,
                  int64_t start_position, TensorView<T> d_input, const ExecutionContext& ctx) {
  CheckRopeArgs(d_output, num_heads, config, start_position);
  CheckShape("rope", "d_input", d_input, d_output.shape());
  Rotate(d_output, num_heads, config, start_position, -1.0, d_input, ctx);
}

template void RopeForward<float>(ConstTensorView<float>, int64_t, const RopeConfig&, int64_t,
                                 TensorView<float>, const ExecutionContext&);
template void RopeForward<double>(ConstTensorView<double>, int64_t, const RopeConfig&, int64_t,
                                  TensorView<double>, const ExecutionContext&);
template void RopeBackward<float>(ConstTensorView<float>, int64_t, const RopeConfig&, int64_t,
                                  TensorView<float>, const ExecutionContext&);
template void RopeBackward<double>(ConstTensorView<double>, int64_t, const RopeConfig&, int64_t,
                                   TensorView<double>, const ExecutionContext&);

}  // namespace qkv::ops
