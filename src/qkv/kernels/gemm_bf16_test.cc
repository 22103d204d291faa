// kernels::Matmul with bfloat16 operands and in bf16 precision, against the scalar reference
// GEMM in double over the same bfloat16-rounded values: every transpose, alpha and beta,
// shapes with odd sizes and padded leading dimensions. Skips where the CPU has no bfloat16
// matrix hardware (qkv refuses bf16 there).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "qkv/core/bfloat16.h"
#include "qkv/core/random.h"
#include "qkv/core/tensor_view.h"
#include "qkv/kernels/bf16_weight_copies.h"
#include "qkv/kernels/cpu/gemm.h"
#include "qkv/kernels/cpu/matmul_bf16.h"
#include "qkv/kernels/reference/gemm_reference.h"
#include "qkv/runtime/parallel_for.h"
#include "qkv/runtime/precision.h"

namespace qkv::kernels {
namespace {

#define QKV_SKIP_WITHOUT_BF16()                                  \
  if (const std::string why = Bf16Unavailable(); !why.empty()) { \
    GTEST_SKIP() << why;                                         \
  }

// A stored matrix of rows x cols floats with row stride ld >= cols (the padding holds NaNs,
// which a product that read them would show).
struct Stored {
  int64_t rows, cols, ld;
  std::vector<float> values;
  Stored(int64_t r, int64_t c, Random& random, int64_t padding = 3)
      : rows(r), cols(c), ld(c + padding) {
    values.assign(static_cast<size_t>(rows * ld), std::nanf(""));
    for (int64_t i = 0; i < rows; ++i) {
      for (int64_t j = 0; j < cols; ++j) values[i * ld + j] = static_cast<float>(random.Normal());
    }
  }
  std::vector<uint16_t> Bf16() const {
    std::vector<uint16_t> out(values.size());
    for (size_t i = 0; i < values.size(); ++i) out[i] = ToBfloat16(values[i]);
    return out;
  }
  std::vector<double> RoundedDouble() const {
    std::vector<double> out(values.size());
    for (size_t i = 0; i < values.size(); ++i) out[i] = FromBfloat16(ToBfloat16(values[i]));
    return out;
  }
};

struct Case {
  int64_t m, n, k;
  Transpose ta, tb;
  double alpha, beta;
};

std::vector<Case> Cases() {
  std::vector<Case> cases;
  for (Transpose ta : {Transpose::kNo, Transpose::kTranspose}) {
    for (Transpose tb : {Transpose::kNo, Transpose::kTranspose}) {
      cases.push_back({37, 53, 71, ta, tb, 1.0, 0.0});
      cases.push_back({64, 48, 200, ta, tb, 0.125, 1.0});
      cases.push_back({1, 17, 33, ta, tb, 1.0, 0.5});
    }
  }
  return cases;
}

TEST(MatmulBf16Test, MatchesTheDoubleReferenceOnRoundedInputs) {
  QKV_SKIP_WITHOUT_BF16();
  Random random(3);
  ThreadPool threads(2);
  const ExecutionContext ctx{&threads};
  for (const Case& c : Cases()) {
    const Stored a = c.ta == Transpose::kNo ? Stored(c.m, c.k, random) : Stored(c.k, c.m, random);
    const Stored b = c.tb == Transpose::kNo ? Stored(c.k, c.n, random) : Stored(c.n, c.k, random);
    const int64_t ldc = c.n + 1;
    std::vector<float> out(static_cast<size_t>(c.m * ldc));
    for (float& value : out) value = static_cast<float>(random.Normal());
    std::vector<double> expected(out.begin(), out.end());
    const std::vector<double> a64 = a.RoundedDouble(), b64 = b.RoundedDouble();
    reference::Gemm(c.ta, c.tb, c.m, c.n, c.k, c.alpha, a64.data(), a.ld, b64.data(), b.ld, c.beta,
                    expected.data(), ldc);
    const std::vector<uint16_t> a16 = a.Bf16(), b16 = b.Bf16();
    Matmul(c.m, c.n, c.k, c.alpha, {a16.data(), DataType::kBFloat16, a.ld, c.ta},
           {b16.data(), DataType::kBFloat16, b.ld, c.tb}, c.beta,
           {out.data(), DataType::kFloat32, ldc}, ctx);
    for (int64_t i = 0; i < c.m; ++i) {
      for (int64_t j = 0; j < c.n; ++j) {
        // float32 accumulation of k products of magnitude ~1: a few ulps of sqrt(k).
        EXPECT_NEAR(out[i * ldc + j], expected[i * ldc + j], 2e-5 * std::sqrt(c.k) + 1e-6)
            << "m=" << c.m << " n=" << c.n << " k=" << c.k
            << " ta=" << (c.ta == Transpose::kTranspose)
            << " tb=" << (c.tb == Transpose::kTranspose) << " at " << i << "," << j;
      }
    }
    EXPECT_EQ(MatmulBf16Implementation(c.m, c.n, c.k, c.ta, c.tb).rfind("ref", 0),
              std::string::npos)
        << "oneDNN emulates this bfloat16 product";
  }
}

// In bf16 precision a float32 product rounds its operands itself: bitwise the product of
// operands rounded beforehand, whether it runs on two threads or inside a parallel loop. (The
// operands are unpadded: oneDNN may block a product differently for another leading
// dimension, which moves the last bit.)
TEST(MatmulBf16Test, Bf16PrecisionRoundsFloatOperandsLikeExplicitBfloat16) {
  QKV_SKIP_WITHOUT_BF16();
  Random random(5);
  ThreadPool threads(2);
  ExecutionContext ctx{&threads};
  for (const Case& c : Cases()) {
    const Stored a =
        c.ta == Transpose::kNo ? Stored(c.m, c.k, random, 0) : Stored(c.k, c.m, random, 0);
    const Stored b =
        c.tb == Transpose::kNo ? Stored(c.k, c.n, random, 0) : Stored(c.n, c.k, random, 0);
    const std::vector<uint16_t> a16 = a.Bf16(), b16 = b.Bf16();
    std::vector<float> explicit_out(static_cast<size_t>(c.m * c.n), 1.0f);
    std::vector<float> rounded_out = explicit_out;
    ctx.precision = Precision::kFloat32;
    Matmul(c.m, c.n, c.k, c.alpha, {a16.data(), DataType::kBFloat16, a.ld, c.ta},
           {b16.data(), DataType::kBFloat16, b.ld, c.tb}, c.beta,
           {explicit_out.data(), DataType::kFloat32, c.n}, ctx);
    ctx.precision = Precision::kBfloat16;
    Gemm<float>(c.ta, c.tb, c.m, c.n, c.k, static_cast<float>(c.alpha), a.values.data(), a.ld,
                b.values.data(), b.ld, static_cast<float>(c.beta), rounded_out.data(), c.n, ctx);
    EXPECT_EQ(rounded_out, explicit_out) << "m=" << c.m << " n=" << c.n << " k=" << c.k;

    // Four products at once from a parallel loop: each thread converts into its own buffers.
    std::vector<std::vector<float>> outs(4, std::vector<float>(explicit_out.size(), 1.0f));
    ParallelFor(4, ctx, [&](int64_t begin, int64_t end, int) {
      for (int64_t i = begin; i < end; ++i) {
        Gemm<float>(c.ta, c.tb, c.m, c.n, c.k, static_cast<float>(c.alpha), a.values.data(), a.ld,
                    b.values.data(), b.ld, static_cast<float>(c.beta), outs[i].data(), c.n, ctx);
      }
    });
    for (const std::vector<float>& out : outs) EXPECT_EQ(out, explicit_out);
  }
}

// A weight with a bfloat16 copy is read from the copy (so a changed float32 weight shows only
// after Refresh), and only where the layout matches the copy's.
TEST(MatmulBf16Test, WeightCopiesAreReadUntilRefreshed) {
  QKV_SKIP_WITHOUT_BF16();
  Random random(7);
  ThreadPool threads(1);
  ExecutionContext ctx{&threads};
  ctx.precision = Precision::kBfloat16;
  const int64_t rows = 9, in = 24, out = 20;
  std::vector<float> weight(static_cast<size_t>(out * in));
  for (float& value : weight) value = static_cast<float>(random.Normal());
  const Stored input(rows, in, random);
  Bf16WeightCopies copies;
  copies.Add(ConstTensorView<float>(weight.data(), Shape{out, in}), ctx);
  const auto product = [&](const ExecutionContext& context) {
    std::vector<float> y(static_cast<size_t>(rows * out));
    Gemm<float>(Transpose::kNo, Transpose::kTranspose, rows, out, in, 1.0f, input.values.data(),
                input.ld, weight.data(), in, 0.0f, y.data(), out, context);
    return y;
  };
  const std::vector<float> before = product(ctx);
  ExecutionContext with_copies = ctx;
  with_copies.bf16_weights = &copies;
  EXPECT_EQ(product(with_copies), before);
  for (float& value : weight) value *= 2.0f;
  EXPECT_EQ(product(with_copies), before) << "the stale copy was not read";
  copies.Refresh(ctx);
  EXPECT_EQ(product(with_copies), product(ctx));
  EXPECT_NE(product(ctx), before);
  // A different row stride is not the copy's layout.
  EXPECT_EQ(copies.Find(weight.data(), in + 1, out * in), nullptr);
  EXPECT_EQ(copies.Find(weight.data(), in, out * in + 1), nullptr);
  EXPECT_NE(copies.Find(weight.data(), in, out * in), nullptr);
}

// The primitive cache keeps the most recently used kMatmulBf16PrimitivesMax: past that many
// shapes it stays at the bound, and a shape it dropped is made again and still right.
TEST(MatmulBf16Test, KeepsOnlyTheMostRecentlyUsedPrimitives) {
  QKV_SKIP_WITHOUT_BF16();
  const ThreadPool threads(1);
  const ExecutionContext ctx{&threads};
  constexpr int64_t kInner = 3, kCols = 2;
  const int64_t shapes = static_cast<int64_t>(kMatmulBf16PrimitivesMax) + 5;
  // A (m, 3) of ones times B (3, 2) of twos: every entry of C is 6, whatever m.
  const std::vector<uint16_t> a(static_cast<size_t>(shapes * kInner), ToBfloat16(1.0f));
  const std::vector<uint16_t> b(static_cast<size_t>(kInner * kCols), ToBfloat16(2.0f));
  std::vector<float> c(static_cast<size_t>(shapes * kCols));
  const auto product_is_right = [&](int64_t m) {
    std::fill(c.begin(), c.end(), 0.0f);
    MatmulBf16(m, kCols, kInner, 1.0f, a.data(), kInner, Transpose::kNo, b.data(), kCols,
               Transpose::kNo, 0.0f, c.data(), kCols, ctx);
    return std::all_of(c.begin(), c.begin() + m * kCols, [](float x) { return x == 6.0f; });
  };
  // n = 2 and k = 3 are this test's own, so that every m makes a new primitive.
  for (int64_t m = 1; m <= shapes; ++m) {
    ASSERT_TRUE(product_is_right(m)) << "m=" << m;
    ASSERT_LE(MatmulBf16CachedPrimitives(), kMatmulBf16PrimitivesMax) << "after m=" << m;
  }
  EXPECT_EQ(MatmulBf16CachedPrimitives(), kMatmulBf16PrimitivesMax);
  EXPECT_TRUE(product_is_right(1)) << "the first shape, dropped and made again";
  EXPECT_EQ(MatmulBf16CachedPrimitives(), kMatmulBf16PrimitivesMax);
}

}  // namespace
}  // namespace qkv::kernels
