// Tests of core/: shapes, views, owning tensors, the arena.
#include <gtest/gtest.h>

#include "qkv/core/arena.h"
#include "qkv/core/random.h"
#include "qkv/core/tensor.h"

namespace qkv {
namespace {

TEST(ShapeTest, CountsAndPrints) {
  Shape shape{2, 3, 4};
  EXPECT_EQ(shape.rank(), 3);
  EXPECT_EQ(shape.NumElements(), 24);
  EXPECT_EQ(shape[-1], 4);
  EXPECT_EQ(shape.ToString(), "[2, 3, 4]");
  EXPECT_EQ(Shape{}.NumElements(), 1);
}

TEST(ShapeTest, RejectsNegativeExtentsAndTooManyDimensions) {
  EXPECT_THROW(Shape({2, -1}), Error);
  EXPECT_THROW(Shape({1, 2, 3, 4, 5}), Error);
  try {
    Shape shape{3, -7};
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("-7"), std::string::npos) << error.what();
  }
  EXPECT_THROW(Shape({2, 3})[2], Error);
}

TEST(TensorTest, ZeroInitialisedMoveOnlyWithExplicitClone) {
  Tensor<float> tensor(Shape{3, 5});
  for (float value : tensor.view()) EXPECT_EQ(value, 0.0f);
  tensor[7] = 2.5f;
  Tensor<float> copy = tensor.Clone();
  copy[7] = 1.0f;
  EXPECT_EQ(tensor[7], 2.5f);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(tensor.data()) % kBufferAlignment, 0u);
  Tensor<float> moved = std::move(tensor);
  EXPECT_EQ(moved[7], 2.5f);
  static_assert(!std::is_copy_constructible_v<Tensor<float>>);
}

TEST(TensorViewTest, ReshapeKeepsDataAndChecksCount) {
  Tensor<int32_t> tensor(Shape{2, 6});
  TensorView<int32_t> view = tensor.view();
  TensorView<int32_t> reshaped = view.Reshape(Shape{3, 4});
  EXPECT_EQ(reshaped.data(), view.data());
  EXPECT_THROW(view.Reshape(Shape{5, 2}), Error);
  ConstTensorView<int32_t> read_only = view;  // implicit conversion to const
  EXPECT_EQ(read_only.size(), 12);
}

TEST(ArenaTest, MeasureThenAllocateGivesAlignedDisjointViews) {
  auto allocate = [](Arena& arena) {
    auto a = arena.Allocate<float>(Shape{3});
    auto b = arena.Allocate<double>(Shape{5, 2});
    return std::make_pair(a, b);
  };
  Arena measure = Arena::MeasureOnly();
  auto [null_a, null_b] = allocate(measure);
  EXPECT_EQ(null_a.data(), nullptr);
  Arena arena(measure.used_bytes());
  auto [a, b] = allocate(arena);
  EXPECT_EQ(arena.used_bytes(), measure.used_bytes());
  EXPECT_EQ(reinterpret_cast<uintptr_t>(b.data()) % kBufferAlignment, 0u);
  EXPECT_GE(reinterpret_cast<const char*>(b.data()),
            reinterpret_cast<const char*>(a.data() + a.size()));
  EXPECT_THROW(arena.Allocate<float>(Shape{1}), Error);  // full
}

TEST(ArenaTest, ScopeReleasesScratch) {
  Arena arena(4096);
  arena.Allocate<float>(Shape{10});
  const size_t before = arena.used_bytes();
  {
    ArenaScope scope(arena);
    arena.Allocate<float>(Shape{100});
    EXPECT_GT(arena.used_bytes(), before);
  }
  EXPECT_EQ(arena.used_bytes(), before);
}

TEST(RandomTest, SameSeedSameNumbersAndSaneMoments) {
  Random first(42), second(42), other(43);
  EXPECT_EQ(first.NextU64(), second.NextU64());
  EXPECT_NE(first.NextU64(), other.NextU64());
  Random random(7);
  double sum = 0, squares = 0;
  const int count = 200000;
  for (int i = 0; i < count; ++i) {
    const double x = random.Normal();
    sum += x;
    squares += x * x;
  }
  EXPECT_NEAR(sum / count, 0.0, 0.01);
  EXPECT_NEAR(squares / count, 1.0, 0.02);
}

}  // namespace
}  // namespace qkv
