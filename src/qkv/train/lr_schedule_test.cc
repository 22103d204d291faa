// The warmup + cosine learning-rate schedule against a second implementation of nanoGPT's
// get_lr written here, the inverse square root against hand values, and their boundaries.
#include "qkv/train/lr_schedule.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>

namespace qkv::train {
namespace {

// nanoGPT's get_lr (train.py), written differently from lr_schedule.h so that a slip in one is
// not repeated in the other: the cosine factor 0.5 * (1 + cos(pi r)) as cos^2(pi r / 2), and
// warmup as a fraction of the way from 0 to max_lr.
double ReferenceLr(const LrSchedule& s, int64_t step) {
  if (step < s.warmup) {
    const double fraction = static_cast<double>(step + 1) / static_cast<double>(s.warmup + 1);
    return fraction * s.max_lr;
  }
  if (step >= s.decay_steps) return s.min_lr;
  const double r =
      static_cast<double>(step - s.warmup) / static_cast<double>(s.decay_steps - s.warmup);
  const double half_angle = std::acos(-1.0) * r / 2;
  const double factor = std::cos(half_angle) * std::cos(half_angle);
  return s.min_lr + factor * (s.max_lr - s.min_lr);
}

// cos^2 and 0.5 * (1 + cos) differ by a few roundings of values near max_lr.
constexpr double kTolerance = 1e-15;

TEST(LrScheduleTest, EveryStepMatchesTheReferenceFormula) {
  for (const LrSchedule schedule : {LrSchedule{}, LrSchedule{6e-4, 6e-5, 20, 500},
                                    LrSchedule{1.0, 0.0, 1, 7}, LrSchedule{3e-3, 3e-3, 10, 50}}) {
    for (int64_t step = 0; step < schedule.decay_steps + 50; ++step) {
      EXPECT_NEAR(schedule.At(step), ReferenceLr(schedule, step), kTolerance * schedule.max_lr)
          << "step " << step << " of warmup " << schedule.warmup << ", decay "
          << schedule.decay_steps;
    }
  }
}

TEST(LrScheduleTest, WarmupRisesLinearlyFromLrOverWarmupPlusOneToTheMaximum) {
  const LrSchedule schedule{2e-3, 1e-4, 4, 100};
  // Hand derivation: (step + 1) / 5 * 2e-3 for steps 0..3, then max_lr at step 4, where the
  // cosine starts at cos(0) = 1.
  const double expected[] = {0.4e-3, 0.8e-3, 1.2e-3, 1.6e-3, 2e-3};
  for (int64_t step = 0; step < 5; ++step) {
    EXPECT_NEAR(schedule.At(step), expected[step], kTolerance) << step;
  }
  for (int64_t step = 1; step < schedule.warmup; ++step) {
    EXPECT_NEAR(schedule.At(step) - schedule.At(step - 1), schedule.max_lr / 5, kTolerance);
  }
}

TEST(LrScheduleTest, CosineHalfwayIsTheMeanAndTheCurveDecreasesMonotonically) {
  const LrSchedule schedule{1e-3, 1e-4, 100, 2100};
  // Halfway through the decay the cosine is cos(pi / 2) = 0: (max + min) / 2.
  EXPECT_NEAR(schedule.At(1100), 5.5e-4, kTolerance);
  // A quarter of the way: 0.5 * (1 + cos(pi / 4)) = (2 + sqrt 2) / 4.
  EXPECT_NEAR(schedule.At(600), 1e-4 + (2 + std::sqrt(2.0)) / 4 * 9e-4, kTolerance);
  for (int64_t step = 1; step < schedule.warmup; ++step) {
    EXPECT_GT(schedule.At(step), schedule.At(step - 1)) << step;
  }
  for (int64_t step = schedule.warmup + 1; step <= schedule.decay_steps; ++step) {
    EXPECT_LT(schedule.At(step), schedule.At(step - 1)) << step;
  }
}

TEST(LrScheduleTest, ZeroWarmupStartsAtTheMaximum) {
  const LrSchedule schedule{1e-3, 1e-5, 0, 10};
  EXPECT_NEAR(schedule.At(0), 1e-3, kTolerance);
  EXPECT_LT(schedule.At(1), schedule.At(0));
  EXPECT_NEAR(schedule.At(5), (1e-3 + 1e-5) / 2, kTolerance);
}

TEST(LrScheduleTest, AtAndPastTheEndItIsExactlyMinLr) {
  const LrSchedule schedule{1e-3, 2e-5, 10, 100};
  // The last decaying step is within a hair of min_lr; from decay_steps on it is min_lr.
  EXPECT_GT(schedule.At(99), schedule.min_lr);
  EXPECT_NEAR(schedule.At(99), schedule.min_lr, 1e-6);
  for (int64_t step :
       {int64_t{100}, int64_t{101}, int64_t{1'000'000}, std::numeric_limits<int64_t>::max()}) {
    EXPECT_EQ(schedule.At(step), schedule.min_lr) << step;
  }
  // min_lr = 0 decays all the way to zero.
  const LrSchedule to_zero{1e-3, 0.0, 10, 100};
  EXPECT_EQ(to_zero.At(100), 0.0);
  EXPECT_GT(to_zero.At(99), 0.0);
}

TEST(LrScheduleTest, DecayEndingAtOrBeforeWarmupDoesNotDivideByZero) {
  // decay_steps == warmup leaves no cosine phase: warmup, then min_lr (no 0 / 0).
  const LrSchedule schedule{1e-3, 1e-4, 10, 10};
  EXPECT_NEAR(schedule.At(9), 1e-3 * 10 / 11, kTolerance);
  EXPECT_EQ(schedule.At(10), 1e-4);
  const LrSchedule shorter{1e-3, 1e-4, 10, 5};
  EXPECT_NEAR(shorter.At(9), 1e-3 * 10 / 11, kTolerance);
  EXPECT_EQ(shorter.At(10), 1e-4);
  for (int64_t step = 0; step < 20; ++step) {
    EXPECT_TRUE(std::isfinite(schedule.At(step)) && std::isfinite(shorter.At(step))) << step;
  }
}

TEST(LrScheduleTest, InverseSqrtPeaksAtTheWarmupsEndAndFallsAsOneOverRootStep) {
  LrSchedule schedule{1e-3, 1e-5, 3, 10};
  schedule.decay = LrDecay::kInverseSqrt;
  // Hand values: warmup (step + 1) / 4 * 1e-3, peak 1e-3 at step 3, then 1e-3 * sqrt(4 / 16) at
  // step 15 and 1e-3 * sqrt(4 / 400) = 1e-4 at step 399; decay_steps plays no part.
  EXPECT_NEAR(schedule.At(0), 0.25e-3, kTolerance);
  EXPECT_NEAR(schedule.At(2), 0.75e-3, kTolerance);
  EXPECT_NEAR(schedule.At(3), 1e-3, kTolerance);
  EXPECT_NEAR(schedule.At(15), 0.5e-3, kTolerance);
  EXPECT_NEAR(schedule.At(399), 1e-4, kTolerance);
  for (int64_t step = 4; step < 2000; ++step) {
    EXPECT_LT(schedule.At(step), schedule.At(step - 1)) << step;
  }
  // It never goes below min_lr: 1e-3 * sqrt(4 / n) = 1e-5 at n = 40000.
  EXPECT_GT(schedule.At(39'998), schedule.min_lr);
  EXPECT_EQ(schedule.At(40'000), schedule.min_lr);
  EXPECT_EQ(schedule.At(std::numeric_limits<int64_t>::max() - 1), schedule.min_lr);
  // Zero warmup starts at the peak and halves at step 3 (sqrt(1 / 4)).
  schedule.warmup = 0;
  EXPECT_NEAR(schedule.At(0), 1e-3, kTolerance);
  EXPECT_NEAR(schedule.At(3), 0.5e-3, kTolerance);
}

TEST(LrScheduleTest, DecayNamesRoundTripAndUnknownNamesAreRefused) {
  for (const LrDecay decay : {LrDecay::kCosine, LrDecay::kInverseSqrt}) {
    EXPECT_EQ(ParseLrDecay(ToString(decay)), decay);
  }
  EXPECT_EQ(ToString(LrDecay::kInverseSqrt), "inv-sqrt");
  EXPECT_FALSE(ParseLrDecay("linear").has_value());
  EXPECT_FALSE(ParseLrDecay("").has_value());
}

}  // namespace
}  // namespace qkv::train
