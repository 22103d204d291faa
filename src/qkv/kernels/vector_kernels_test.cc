// The float vector kernels, every ISA this CPU runs (scalar, AVX2, AVX-512), against plain
// double-precision loops written here from the formulas, on sizes that exercise the partial
// vector at the end of each array (1 .. 3 vectors of 16 plus a tail).
#include "qkv/kernels/cpu/vector_kernels.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "qkv/core/random.h"

namespace qkv::kernels {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

std::vector<Isa> SupportedIsas() {
  std::vector<Isa> isas;
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512}) {
    if (CpuSupports(isa)) isas.push_back(isa);
  }
  return isas;
}

std::vector<int64_t> Sizes() { return {1, 2, 7, 8, 9, 15, 16, 17, 31, 33, 64, 100, 131}; }

std::vector<float> RandomFloats(int64_t n, Random& random, double scale) {
  std::vector<float> values(static_cast<size_t>(n));
  for (float& value : values) value = static_cast<float>(random.Normal() * scale);
  return values;
}

// |actual - expected| <= relative * |expected| + absolute, with a message naming the case.
void ExpectClose(double actual, double expected, double relative, double absolute, Isa isa,
                 int64_t n, int64_t i) {
  EXPECT_LE(std::abs(actual - expected), relative * std::abs(expected) + absolute)
      << IsaName(isa) << " n=" << n << " i=" << i << " actual " << actual << " expected "
      << expected;
}

TEST(VectorKernelsTest, ActiveIsaIsTheWidestSupportedUnlessChosen) {
  const Isa active = ActiveIsa();
  EXPECT_TRUE(CpuSupports(active));
  EXPECT_EQ(ActiveVectorKernels().isa, active);
  for (Isa isa : SupportedIsas()) EXPECT_EQ(VectorKernelsFor(isa).isa, isa);
}

TEST(VectorKernelsTest, MaxExpAndSumsMatchDoubleIncludingMaskedEntries) {
  Random random(3);
  for (Isa isa : SupportedIsas()) {
    const VectorKernels& vector = VectorKernelsFor(isa);
    for (int64_t n : Sizes()) {
      std::vector<float> x = RandomFloats(n, random, 4.0);
      // Masked scores (-inf) and values below exp's range must give exactly 0.
      if (n > 2) x[1] = -std::numeric_limits<float>::infinity();
      if (n > 5) x[5] = -200.0f;
      double max_value = -kInf;
      for (float value : x) max_value = std::max<double>(max_value, value);
      EXPECT_EQ(vector.max(x.data(), n), static_cast<float>(max_value)) << IsaName(isa);

      const float shift = static_cast<float>(max_value);
      std::vector<float> y(x.size());
      const float sum = vector.exp_shifted(x.data(), y.data(), n, shift);
      const float sum_only = vector.sum_exp_shifted(x.data(), n, shift);
      double expected_sum = 0;
      for (int64_t i = 0; i < n; ++i) {
        // The float subtraction is part of the kernel's contract; exp() itself is within 2 ulp.
        const double expected = std::exp(static_cast<double>(x[i] - shift));
        expected_sum += expected;
        ExpectClose(y[i], expected, 3e-7, 1e-38, isa, n, i);
      }
      if (n > 2) {
        EXPECT_EQ(y[1], 0.0f);
      }
      if (n > 5) {
        EXPECT_EQ(y[5], 0.0f);
      }
      ExpectClose(sum, expected_sum, 1e-6, 0, isa, n, -1);
      EXPECT_EQ(sum, sum_only) << IsaName(isa) << " n=" << n;

      std::vector<float> in_place = x;  // y may alias x
      EXPECT_EQ(vector.exp_shifted(in_place.data(), in_place.data(), n, shift), sum);
      EXPECT_EQ(in_place, y);

      vector.scale(y.data(), n, 0.5f);
      for (int64_t i = 0; i < n; ++i) {
        ExpectClose(y[i], 0.5 * std::exp(static_cast<double>(x[i] - shift)), 3e-7, 1e-38, isa, n,
                    i);
      }
    }
  }
}

TEST(VectorKernelsTest, ExpSaturatesInsteadOfOverflowing) {
  for (Isa isa : SupportedIsas()) {
    const float x[3] = {100.0f, 88.0f, 0.0f};
    float y[3];
    VectorKernelsFor(isa).exp_shifted(x, y, 3, 0.0f);
    EXPECT_TRUE(std::isfinite(y[0])) << IsaName(isa);
    ExpectClose(y[1], std::exp(88.0), 3e-7, 0, isa, 3, 1);
    EXPECT_EQ(y[2], 1.0f) << IsaName(isa);
  }
}

double GeluTanh(double x) {
  return 0.5 * x * (1 + std::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
}

double GeluTanhDerivative(double x) {
  const double u = std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x);
  const double t = std::tanh(u);
  return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * std::sqrt(2 / M_PI) * (1 + 3 * 0.044715 * x * x);
}

TEST(VectorKernelsTest, GeluTanhForwardAndBackwardMatchDouble) {
  Random random(5);
  for (Isa isa : SupportedIsas()) {
    const VectorKernels& vector = VectorKernelsFor(isa);
    for (int64_t n : Sizes()) {
      std::vector<float> x = RandomFloats(n, random, 3.0);
      x[0] = n > 1 ? -30.0f : 30.0f;  // far tails: exp() saturation must give 0 and x
      const std::vector<float> d_y = RandomFloats(n, random, 1.0);
      std::vector<float> y(x.size()), d_x(x.size());
      vector.gelu_tanh_forward(x.data(), y.data(), n);
      vector.gelu_tanh_backward(d_y.data(), x.data(), d_x.data(), n);
      for (int64_t i = 0; i < n; ++i) {
        ExpectClose(y[i], GeluTanh(x[i]), 2e-6, 1e-7, isa, n, i);
        ExpectClose(d_x[i], d_y[i] * GeluTanhDerivative(x[i]), 2e-6, 1e-7, isa, n, i);
      }
    }
  }
}

TEST(VectorKernelsTest, LayerNormRowsMatchDouble) {
  Random random(7);
  for (Isa isa : SupportedIsas()) {
    const VectorKernels& vector = VectorKernelsFor(isa);
    for (int64_t n : Sizes()) {
      // An offset mean: the two-pass variance must not lose it to cancellation.
      std::vector<float> x = RandomFloats(n, random, 2.0);
      for (float& value : x) value += 100.0f;
      const std::vector<float> gamma = RandomFloats(n, random, 1.0);
      const std::vector<float> beta = RandomFloats(n, random, 1.0);
      const std::vector<float> d_y = RandomFloats(n, random, 1.0);
      const float eps = 1e-5f;
      double mean = 0;
      for (float value : x) mean += value;
      mean /= n;
      double variance = 0;
      for (float value : x) variance += (value - mean) * (value - mean);
      variance /= n;
      const double rstd = 1 / std::sqrt(variance + eps);

      for (const float* beta_or_null : {beta.data(), static_cast<const float*>(nullptr)}) {
        std::vector<float> y(x.size());
        float saved_mean = 0, saved_rstd = 0;
        vector.layer_norm_forward_row(x.data(), gamma.data(), beta_or_null, eps, n, y.data(),
                                      &saved_mean, &saved_rstd);
        ExpectClose(saved_mean, mean, 1e-6, 0, isa, n, -1);
        ExpectClose(saved_rstd, rstd, 2e-4, 0, isa, n, -1);  // float rounding of x around 100
        for (int64_t i = 0; i < n; ++i) {
          const double expected = (x[i] - mean) * rstd * gamma[i] + (beta_or_null ? beta[i] : 0);
          ExpectClose(y[i], expected, 1e-4, 1e-4, isa, n, i);
        }
      }

      // Backward from the double statistics, so only the kernel's own rounding is measured.
      std::vector<float> d_x(x.size());
      vector.layer_norm_backward_row(d_y.data(), x.data(), gamma.data(), static_cast<float>(mean),
                                     static_cast<float>(rstd), n, d_x.data());
      double mean_g = 0, mean_g_xhat = 0;
      for (int64_t i = 0; i < n; ++i) {
        const double g = static_cast<double>(d_y[i]) * gamma[i];
        mean_g += g / n;
        mean_g_xhat += g * (x[i] - mean) * rstd / n;
      }
      for (int64_t i = 0; i < n; ++i) {
        const double x_hat = (x[i] - mean) * rstd;
        const double expected =
            rstd * (static_cast<double>(d_y[i]) * gamma[i] - mean_g - x_hat * mean_g_xhat);
        ExpectClose(d_x[i], expected, 1e-4, 1e-4 * rstd, isa, n, i);
      }
    }
  }
}

TEST(VectorKernelsTest, ColumnSumsAreTheRowOrderSumsExactly) {
  Random random(11);
  for (Isa isa : SupportedIsas()) {
    const VectorKernels& vector = VectorKernelsFor(isa);
    for (int64_t cols : Sizes()) {
      const int64_t rows = 13, stride = cols + 3;  // a row stride wider than the columns
      const std::vector<float> x = RandomFloats(rows * stride, random, 1.0);
      std::vector<float> sums = RandomFloats(cols, random, 1.0);
      std::vector<float> expected = sums;
      for (int64_t c = 0; c < cols; ++c) {
        float sum = 0;
        for (int64_t r = 0; r < rows; ++r) sum += x[r * stride + c];
        expected[c] += sum;
      }
      vector.add_column_sums(x.data(), rows, cols, stride, sums.data());
      EXPECT_EQ(sums, expected) << IsaName(isa) << " cols=" << cols;
    }
  }
}

TEST(VectorKernelsTest, SumOfSquaresMatchesDouble) {
  Random random(17);
  for (Isa isa : SupportedIsas()) {
    for (int64_t n :
         {int64_t{1}, int64_t{17}, int64_t{511}, int64_t{512}, int64_t{513}, int64_t{5000}}) {
      const std::vector<float> x = RandomFloats(n, random, 3.0);
      double expected = 0;
      for (float value : x) expected += static_cast<double>(value) * value;
      ExpectClose(VectorKernelsFor(isa).sum_squares(x.data(), n), expected, 1e-6, 0, isa, n, -1);
    }
  }
}

// bfloat16 weights: the dot product against the exact product of the widened values (a
// bfloat16 is a float's upper 16 bits, here taken by a shift written in the test).
TEST(VectorKernelsTest, DotWithBfloat16MatchesDouble) {
  Random random(29);
  for (Isa isa : SupportedIsas()) {
    for (int64_t n : Sizes()) {
      const std::vector<float> x = RandomFloats(n, random, 2.0);
      std::vector<uint16_t> w(static_cast<size_t>(n));
      double expected = 0, magnitude = 0;
      for (size_t i = 0; i < w.size(); ++i) {
        const float source = static_cast<float>(random.Normal());
        uint32_t source_bits;
        std::memcpy(&source_bits, &source, sizeof(source_bits));
        w[i] = static_cast<uint16_t>(source_bits >> 16);  // any bfloat16 of a normal spread
        const uint32_t bits = static_cast<uint32_t>(w[i]) << 16;
        float weight;
        std::memcpy(&weight, &bits, sizeof(weight));
        expected += static_cast<double>(x[i]) * weight;
        magnitude += std::abs(static_cast<double>(x[i]) * weight);
      }
      ExpectClose(VectorKernelsFor(isa).dot_bf16(x.data(), w.data(), n), expected, 0,
                  1e-6 * magnitude + 1e-30, isa, n, -1);
    }
  }
}

// The bfloat16 value of bits b (the upper half of a float), in double; the encoding of
// infinity stands for 2^128, the next step after the largest finite value, so that rounding
// to it is decided by distance like any other.
double Bf16Value(uint32_t b) {
  const double sign = (b & 0x8000u) != 0 ? -1.0 : 1.0;
  if ((b & 0x7FFFu) == 0x7F80u) return sign * std::ldexp(1.0, 128);
  const uint32_t bits = b << 16;
  float value;
  std::memcpy(&value, &bits, sizeof(value));
  return value;
}

// Round to nearest, ties to even, by distance: the bfloat16 just below |x| in magnitude
// (truncation) against the one just above, measured in double.
uint16_t ReferenceBf16(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof(bits));
  if (std::isnan(x)) return static_cast<uint16_t>((bits >> 16) | 0x40u);
  const uint32_t down = bits >> 16;
  if ((bits & 0xFFFFu) == 0 || std::isinf(x)) return static_cast<uint16_t>(down);
  const uint32_t up = down + 1;
  const double to_down = std::abs(static_cast<double>(x) - Bf16Value(down));
  const double to_up = std::abs(Bf16Value(up) - static_cast<double>(x));
  if (to_down != to_up) return static_cast<uint16_t>(to_down < to_up ? down : up);
  return static_cast<uint16_t>((down & 1u) == 0 ? down : up);
}

// Normal values of several scales, exact ties (even and odd), subnormals, zeros, infinities,
// NaNs and the values around the overflow to infinity.
std::vector<float> Bf16ConversionCases(Random& random) {
  std::vector<float> cases;
  for (double scale : {1e-30, 1e-3, 1.0, 7.0, 1e5, 1e30}) {
    for (int i = 0; i < 40; ++i) cases.push_back(static_cast<float>(random.Normal() * scale));
  }
  const auto from_bits = [](uint32_t bits) {
    float value;
    std::memcpy(&value, &bits, sizeof(value));
    return value;
  };
  for (uint32_t upper : {0x3F80u, 0x3F81u, 0xBF80u, 0xBF81u, 0x4049u, 0x0001u, 0x7F7Fu}) {
    for (uint32_t lower : {0x0000u, 0x7FFFu, 0x8000u, 0x8001u, 0xFFFFu}) {
      cases.push_back(from_bits(upper << 16 | lower));
    }
  }
  for (uint32_t bits : {0x00000001u, 0x0000FFFFu, 0x00008000u, 0x807FFFFFu, 0x00400000u,
                        0x00000000u, 0x80000000u, 0x7F800000u, 0xFF800000u, 0x7FC00000u,
                        0x7F800001u, 0xFFFFFFFFu, 0x7F7FFFFFu, 0xFF7F8000u, 0x7F7F7FFFu}) {
    cases.push_back(from_bits(bits));
  }
  return cases;
}

void ExpectBf16Conversion(void (*to_bf16)(const float*, uint16_t*, int64_t), const char* name,
                          bool flushes_subnormals) {
  Random random(41);
  const std::vector<float> cases = Bf16ConversionCases(random);
  // Every start offset and length of the head of the list: partial vectors at both ends.
  for (int64_t n : {int64_t{1}, int64_t{15}, int64_t{17}, static_cast<int64_t>(cases.size())}) {
    for (int64_t start = 0; start + n <= static_cast<int64_t>(cases.size()); start += 37) {
      std::vector<uint16_t> out(static_cast<size_t>(n) + 1, 0xABCD);
      to_bf16(cases.data() + start, out.data(), n);
      for (int64_t i = 0; i < n; ++i) {
        const float x = cases[static_cast<size_t>(start + i)];
        uint16_t expected = ReferenceBf16(x);
        if (flushes_subnormals && std::fpclassify(x) == FP_SUBNORMAL) {
          expected = std::signbit(x) ? 0x8000 : 0x0000;
        }
        EXPECT_EQ(out[static_cast<size_t>(i)], expected)
            << name << " n=" << n << " input " << x << " (bits " << std::hex
            << std::bit_cast<uint32_t>(x) << ")";
      }
      EXPECT_EQ(out.back(), 0xABCD) << name << ": wrote past n=" << n;
    }
  }
}

TEST(VectorKernelsTest, Bfloat16ConversionRoundsToNearestEven) {
  for (Isa isa : SupportedIsas()) {
    const bool native = isa == Isa::kAvx512 && __builtin_cpu_supports("avx512bf16");
    ExpectBf16Conversion(VectorKernelsFor(isa).to_bf16, IsaName(isa).data(), native);
  }
  if (CpuSupports(Isa::kAvx512)) {
    ExpectBf16Conversion(Avx512VectorKernelsWithoutBf16Instructions().to_bf16,
                         "avx512 without AVX512-BF16", false);
  }
  if (!__builtin_cpu_supports("avx512bf16")) {
    GTEST_LOG_(INFO) << "this CPU has no AVX512-BF16: its conversion instruction is not tested";
  }
}

// Both operands bfloat16: every ISA's kernel (the AVX512-BF16 instruction where the CPU has
// it) and the AVX-512 F one against the double sum of the exact products.
TEST(VectorKernelsTest, DotOfBfloat16PairsMatchesDouble) {
  Random random(31);
  std::vector<std::pair<const char*, float (*)(const uint16_t*, const uint16_t*, int64_t)>> dots;
  for (Isa isa : SupportedIsas())
    dots.emplace_back(IsaName(isa).data(), VectorKernelsFor(isa).dot_bf16_pairs);
  if (CpuSupports(Isa::kAvx512)) {
    dots.emplace_back("avx512 without AVX512-BF16",
                      Avx512VectorKernelsWithoutBf16Instructions().dot_bf16_pairs);
  }
  for (int64_t n : {int64_t{1}, int64_t{31}, int64_t{32}, int64_t{33}, int64_t{64}, int64_t{100},
                    int64_t{131}, int64_t{768}}) {
    std::vector<uint16_t> x(static_cast<size_t>(n)), w(static_cast<size_t>(n));
    double expected = 0, magnitude = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      x[i] = ReferenceBf16(static_cast<float>(random.Normal()));
      w[i] = ReferenceBf16(static_cast<float>(random.Normal()));
      const double product = Bf16Value(x[i]) * Bf16Value(w[i]);
      expected += product;
      magnitude += std::abs(product);
    }
    for (const auto& [name, dot] : dots) {
      EXPECT_NEAR(dot(x.data(), w.data(), n), expected, 1e-6 * magnitude + 1e-30)
          << name << " n=" << n;
    }
  }
}

TEST(VectorKernelsTest, AdamWMatchesDouble) {
  Random random(13);
  for (Isa isa : SupportedIsas()) {
    const VectorKernels& vector = VectorKernelsFor(isa);
    for (bool decayed : {true, false}) {
      for (int64_t n : Sizes()) {
        std::vector<float> p = RandomFloats(n, random, 1.0), g = RandomFloats(n, random, 1.0);
        std::vector<float> m = RandomFloats(n, random, 0.1), v = RandomFloats(n, random, 0.1);
        for (float& value : v) value = value * value;
        const double lr = 1e-3, wd = 0.1, beta1 = 0.9, beta2 = 0.99, eps = 1e-8;
        const int step = 3;
        const float grad_scale = decayed ? 0.25f : 1.0f;  // clipping folded into the update
        const double bc1 = 1 - std::pow(beta1, step), bc2 = 1 - std::pow(beta2, step);
        const AdamWScalars scalars{decayed,
                                   static_cast<float>(1 - lr * wd),
                                   static_cast<float>(beta1),
                                   static_cast<float>(beta2),
                                   static_cast<float>(1 - beta1),
                                   static_cast<float>(1 - beta2),
                                   static_cast<float>(lr / bc1),
                                   static_cast<float>(std::sqrt(bc2)),
                                   static_cast<float>(eps),
                                   grad_scale};
        std::vector<double> expected_p(p.size()), expected_m(p.size()), expected_v(p.size());
        for (float& value : g) value *= grad_scale;  // what the kernel must see
        for (int64_t i = 0; i < n; ++i) {
          double param = p[i];
          if (decayed) param *= 1 - lr * wd;
          expected_m[i] = beta1 * m[i] + (1 - beta1) * g[i];
          expected_v[i] = beta2 * v[i] + (1 - beta2) * static_cast<double>(g[i]) * g[i];
          expected_p[i] = param - lr / bc1 * expected_m[i] / (std::sqrt(expected_v[i] / bc2) + eps);
        }
        for (float& value : g) value /= grad_scale;  // exact: a power of two
        vector.adamw_update(p.data(), g.data(), m.data(), v.data(), n, scalars);
        for (int64_t i = 0; i < n; ++i) {
          // Absolute terms: the float rounding of inputs of size ~1 in sums that may cancel.
          ExpectClose(m[i], expected_m[i], 1e-6, 1e-7, isa, n, i);
          ExpectClose(v[i], expected_v[i], 1e-6, 1e-7, isa, n, i);
          ExpectClose(p[i], expected_p[i], 1e-6, 1e-7, isa, n, i);  // ~1e-6 of the update
        }
      }
    }
  }
}

}  // namespace
}  // namespace qkv::kernels
