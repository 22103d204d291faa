#include "qkv/ops/rope.h"

#include <algorithm>
#include <cmath>
#include <numbers>

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
  config.Validate(head_dim);
  QKV_CHECK(start_position >= 0, "rope: start position must be >= 0, got ", start_position);
}

// Rotates every pair by +angle (direction = 1) or -angle (direction = -1), and scales by the
// configuration's magnitude (1 except for YaRN).
template <typename T>
void Rotate(ConstTensorView<T> input, int64_t num_heads, const RopeConfig& config,
            int64_t start_position, double direction, TensorView<T> output,
            const ExecutionContext& ctx) {
  const int64_t seq = input.dim(1), width = input.dim(2);
  const int64_t head_dim = width / num_heads, half = head_dim / 2;
  const std::vector<double> frequencies = RopeFrequencies(config, head_dim);
  const double magnitude = RopeMagnitude(config);
  ParallelFor(
      input.dim(0) * seq, ctx,
      [&](int64_t begin, int64_t end, int) {
        for (int64_t row = begin; row < end; ++row) {
          const double position = static_cast<double>(start_position + row % seq);
          for (int64_t i = 0; i < half; ++i) {
            const double angle = direction * position * frequencies[i];
            const T cos_angle = static_cast<T>(magnitude * std::cos(angle));
            const T sin_angle = static_cast<T>(magnitude * std::sin(angle));
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

void RopeConfig::Validate(int64_t head_dim) const {
  QKV_CHECK(theta > 0 && std::isfinite(theta), "rope: theta must be > 0, got ", theta);
  QKV_CHECK(factor >= 1 && std::isfinite(factor), "rope: the scaling factor must be >= 1, got ",
            factor);
  QKV_CHECK(head_dim % 2 == 0, "rope: the head size must be even, got ", head_dim);
  if (scaling == RopeScaling::kNtk || scaling == RopeScaling::kDynamic) {
    QKV_CHECK(head_dim > 2, "rope: NTK scaling needs a head size > 2, got ", head_dim);
  }
  if (scaling == RopeScaling::kDynamic || scaling == RopeScaling::kLlama3) {
    QKV_CHECK(original_context > 0,
              "rope: ", scaling == RopeScaling::kDynamic ? "dynamic" : "llama3",
              " scaling needs the original (training) context, got ", original_context);
  }
  if (scaling == RopeScaling::kLlama3) {
    QKV_CHECK(high_freq_factor > low_freq_factor && low_freq_factor > 0 &&
                  std::isfinite(high_freq_factor),
              "rope: llama3 scaling needs high_freq_factor > low_freq_factor > 0, got ",
              high_freq_factor, " and ", low_freq_factor);
  }
  QKV_CHECK(yarn_attention_factor >= 0 && std::isfinite(yarn_attention_factor),
            "rope: the YaRN attention factor must be >= 0, got ", yarn_attention_factor);
  QKV_CHECK(sequence_length >= 0, "rope: the sequence length must be >= 0, got ", sequence_length);
  if (scaling == RopeScaling::kYarn) {
    QKV_CHECK(original_context > 0, "rope: YaRN needs the original (training) context, got ",
              original_context);
    QKV_CHECK(yarn_beta_fast > yarn_beta_slow && yarn_beta_slow > 0,
              "rope: YaRN needs beta_fast > beta_slow > 0, got ", yarn_beta_fast, " and ",
              yarn_beta_slow);
  }
}

std::vector<double> RopeFrequencies(const RopeConfig& config, int64_t head_dim) {
  const int64_t half = head_dim / 2;
  const double d = static_cast<double>(head_dim);
  // Factor 1 is plain RoPE under every scaling, bit for bit.
  // (Dynamic NTK is the exception: its base grows with the sequence length even at s = 1.)
  const RopeScaling scaling = config.factor == 1.0 && config.scaling != RopeScaling::kDynamic
                                  ? RopeScaling::kNone
                                  : config.scaling;
  double theta = config.theta;
  if (scaling == RopeScaling::kNtk) theta *= std::pow(config.factor, d / (d - 2));
  if (scaling == RopeScaling::kDynamic && config.sequence_length > config.original_context) {
    const double growth = config.factor * static_cast<double>(config.sequence_length) /
                              static_cast<double>(config.original_context) -
                          (config.factor - 1);
    theta *= std::pow(growth, d / (d - 2));
  }
  std::vector<double> frequencies(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i) {
    frequencies[i] = std::pow(theta, -static_cast<double>(2 * i) / d);
  }
  if (scaling == RopeScaling::kLinear) {
    for (double& frequency : frequencies) frequency /= config.factor;
  } else if (scaling == RopeScaling::kLlama3) {
    // By wavelength 2pi / f against the original context: short waves (several turns within
    // it) are kept, long ones interpolated, and the band between blends the two linearly in
    // L0 / wavelength (Llama 3.1's reference code and Hugging Face's).
    const double context = static_cast<double>(config.original_context);
    const double short_wave = context / config.high_freq_factor;
    const double long_wave = context / config.low_freq_factor;
    for (double& frequency : frequencies) {
      const double wavelength = 2 * std::numbers::pi / frequency;
      if (wavelength < short_wave) continue;
      if (wavelength > long_wave) {
        frequency /= config.factor;
        continue;
      }
      const double smooth = (context / wavelength - config.low_freq_factor) /
                            (config.high_freq_factor - config.low_freq_factor);
      frequency = (1 - smooth) * frequency / config.factor + smooth * frequency;
    }
  } else if (scaling == RopeScaling::kYarn) {
    // Pair i turns original_context * f_i / 2pi times over the original context. Pairs that
    // turn more than beta_fast times keep their frequency (extrapolate), pairs that turn less
    // than beta_slow times are interpolated (f / s), and a linear ramp over the pair index
    // blends in between — the formulation of YaRN's reference code and Hugging Face's.
    const double context = static_cast<double>(config.original_context);
    auto pair_index_for_turns = [&](double turns) {
      return d * std::log(context / (turns * 2 * std::numbers::pi)) / (2 * std::log(config.theta));
    };
    double low = std::floor(pair_index_for_turns(config.yarn_beta_fast));
    double high = std::ceil(pair_index_for_turns(config.yarn_beta_slow));
    low = std::max(low, 0.0);
    high = std::min(high, d - 1);    // clamped to the head size, as the reference code does
    if (high == low) high += 0.001;  // avoid a zero-width ramp
    for (int64_t i = 0; i < half; ++i) {
      const double ramp = std::clamp((static_cast<double>(i) - low) / (high - low), 0.0, 1.0);
      const double extrapolation_weight = 1.0 - ramp;
      frequencies[i] = frequencies[i] / config.factor * (1.0 - extrapolation_weight) +
                       frequencies[i] * extrapolation_weight;
    }
  }
  return frequencies;
}

double RopeMagnitude(const RopeConfig& config) {
  if (config.scaling != RopeScaling::kYarn) return 1.0;
  if (config.yarn_attention_factor > 0) return config.yarn_attention_factor;
  if (config.factor == 1.0) return 1.0;
  return 0.1 * std::log(config.factor) + 1.0;
}

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
