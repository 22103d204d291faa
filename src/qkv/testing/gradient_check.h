// Test helpers: central finite differences in double precision, and tensor comparisons.
// Test-only; nothing in the library includes this.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "qkv/core/random.h"
#include "qkv/core/tensor.h"
#include "qkv/runtime/execution_context.h"

namespace qkv::testing {

// max_i |actual_i - expected_i| / max(max_i |expected_i|, floor): an error relative to the
// scale of the whole tensor, so that near-zero entries do not dominate.
template <typename A, typename B>
double MaxRelativeError(TensorView<A> actual, TensorView<B> expected, double floor = 1e-12) {
  QKV_CHECK(actual.size() == expected.size(), "comparing ", actual.shape().ToString(), " with ",
            expected.shape().ToString());
  double max_difference = 0, max_expected = 0;
  for (int64_t i = 0; i < actual.size(); ++i) {
    const double a = static_cast<double>(actual[i]), e = static_cast<double>(expected[i]);
    if (std::isnan(a) != std::isnan(e)) return INFINITY;
    max_difference = std::max(max_difference, std::abs(a - e));
    max_expected = std::max(max_expected, std::abs(e));
  }
  return max_difference / std::max(max_expected, floor);
}

// Numerical gradient of loss() with respect to every element of `input`, by central
// differences with step h: (loss(x + h) - loss(x - h)) / 2h. loss() must read `input`.
inline Tensor<double> NumericalGradient(TensorView<double> input,
                                        const std::function<double()>& loss, double h = 1e-6) {
  Tensor<double> gradient(input.shape());
  for (int64_t i = 0; i < input.size(); ++i) {
    const double saved = input[i];
    input[i] = saved + h;
    const double plus = loss();
    input[i] = saved - h;
    const double minus = loss();
    input[i] = saved;
    gradient[i] = (plus - minus) / (2 * h);
  }
  return gradient;
}

// sum_i a_i * b_i in double: the scalar "loss" whose gradient with respect to a is b.
template <typename A, typename B>
double Dot(TensorView<A> a, TensorView<B> b) {
  double sum = 0;
  for (int64_t i = 0; i < a.size(); ++i) sum += static_cast<double>(a[i]) * b[i];
  return sum;
}

template <typename T>
Tensor<T> RandomTensor(Shape shape, Random& random, double stddev = 1.0) {
  Tensor<T> tensor(shape);
  random.FillNormal(tensor.view(), 0.0, stddev);
  return tensor;
}

// The same values in another precision. (A and B above may be const-qualified.)
template <typename To, typename From>
Tensor<To> Convert(TensorView<From> source) {
  Tensor<To> result(source.shape());
  for (int64_t i = 0; i < source.size(); ++i) result[i] = static_cast<To>(source[i]);
  return result;
}

// One input of an op and the gradient its backward pass computed for it.
struct GradientToCheck {
  std::string name;
  TensorView<double> input;          // perturbed in place, then restored
  ConstTensorView<double> analytic;  // d loss / d input from the op's backward
};

struct GradientCheckResult {
  std::string name;
  double relative_error;
};

// For loss = sum(output * d_output), compares each analytic gradient with central differences.
// forward() must recompute `output` from the current inputs.
inline std::vector<GradientCheckResult> CheckGradients(const std::function<void()>& forward,
                                                       ConstTensorView<double> output,
                                                       ConstTensorView<double> d_output,
                                                       const std::vector<GradientToCheck>& checks,
                                                       double h = 1e-6) {
  std::vector<GradientCheckResult> results;
  for (const GradientToCheck& check : checks) {
    Tensor<double> numerical = NumericalGradient(
        check.input,
        [&] {
          forward();
          return Dot(output, d_output);
        },
        h);
    results.push_back({check.name, MaxRelativeError(check.analytic, numerical.view())});
  }
  forward();  // leave the outputs as they were for the unperturbed inputs
  return results;
}

// A thread pool, a scratch arena and the context that carries them, for tests.
struct TestContext {
  TestContext(const TestContext&) = delete;
  TestContext& operator=(const TestContext&) = delete;
  explicit TestContext(int num_threads = 1, size_t scratch_bytes = size_t{8} << 20)
      : threads(num_threads), scratch(scratch_bytes), ctx{&threads, &scratch} {}
  ThreadPool threads;
  Arena scratch;
  ExecutionContext ctx;
};

}  // namespace qkv::testing
