// Reference cases for the element-wise activations: ops/gelu, ops/relu, ops/swiglu.
#include "qkv/core/random.h"
#include "qkv/ops/gelu.h"
#include "qkv/ops/relu.h"
#include "qkv/ops/silu.h"
#include "qkv/ops/swiglu.h"
#include "qkv/testing/gradient_check.h"
#include "tests/pytorch/reference_cases.h"

namespace qkv::reference {
namespace {

using testing::RandomTensor;

// (5, 8), std 2 so that the inputs reach the tails where the approximations differ.
constexpr int64_t kRows = 5, kCols = 8;

io::SafetensorsFile GeluCase(ops::GeluApproximation approximation) {
  ThreadPool threads(2);
  ExecutionContext ctx{&threads, nullptr};
  const bool tanh = approximation == ops::GeluApproximation::kTanh;
  Random random(tanh ? 41 : 42);
  Tensor<float> input = RandomTensor<float>(Shape{kRows, kCols}, random, 2.0);
  Tensor<float> d_output = RandomTensor<float>(input.shape(), random);
  Tensor<float> output(input.shape()), d_input(input.shape());

  ops::GeluForward<float>(input.view(), approximation, output.view(), ctx);
  ops::GeluBackward<float>(d_output.view(), input.view(), approximation, d_input.view(), ctx);

  io::SafetensorsFile file;
  file.metadata["op"] = "gelu";
  file.metadata["approximate"] = tanh ? "tanh" : "none";
  Put(file, "input", input.view());
  Put(file, "d_output", d_output.view());
  Put(file, "output", output.view());
  Put(file, "d_input", d_input.view());
  return file;
}

io::SafetensorsFile ReluCase() {
  ThreadPool threads(2);
  ExecutionContext ctx{&threads, nullptr};
  Random random(43);
  Tensor<float> input = RandomTensor<float>(Shape{kRows, kCols}, random);
  // Exact zeros check the convention for the gradient at 0 (0, as in PyTorch).
  input[3] = 0.0f;
  input[17] = -0.0f;
  Tensor<float> d_output = RandomTensor<float>(input.shape(), random);
  Tensor<float> output(input.shape()), d_input(input.shape());

  ops::ReluForward<float>(input.view(), output.view(), ctx);
  ops::ReluBackward<float>(d_output.view(), input.view(), d_input.view(), ctx);

  io::SafetensorsFile file;
  file.metadata["op"] = "relu";
  Put(file, "input", input.view());
  Put(file, "d_output", d_output.view());
  Put(file, "output", output.view());
  Put(file, "d_input", d_input.view());
  return file;
}

io::SafetensorsFile SiluCase() {
  ThreadPool threads(2);
  ExecutionContext ctx{&threads, nullptr};
  Random random(45);
  // Scale 6: both tails (silu -> 0 and silu -> x) and the minimum near -1.28.
  Tensor<float> input = RandomTensor<float>(Shape{kRows, kCols}, random, 6.0);
  Tensor<float> d_output = RandomTensor<float>(input.shape(), random);
  Tensor<float> output(input.shape()), d_input(input.shape());

  ops::SiluForward<float>(input.view(), output.view(), ctx);
  ops::SiluBackward<float>(d_output.view(), input.view(), d_input.view(), ctx);

  io::SafetensorsFile file;
  file.metadata["op"] = "silu";
  Put(file, "input", input.view());
  Put(file, "d_output", d_output.view());
  Put(file, "output", output.view());
  Put(file, "d_input", d_input.view());
  return file;
}

io::SafetensorsFile SwiGluCase() {
  ThreadPool threads(2);
  ExecutionContext ctx{&threads, nullptr};
  Random random(44);
  Tensor<float> gate = RandomTensor<float>(Shape{kRows, kCols}, random, 2.0);
  Tensor<float> up = RandomTensor<float>(gate.shape(), random);
  Tensor<float> d_output = RandomTensor<float>(gate.shape(), random);
  Tensor<float> output(gate.shape()), d_gate(gate.shape()), d_up(gate.shape());

  ops::SwiGluForward<float>(gate.view(), up.view(), output.view(), ctx);
  ops::SwiGluBackward<float>(d_output.view(), gate.view(), up.view(), d_gate.view(), d_up.view(),
                             ctx);

  io::SafetensorsFile file;
  file.metadata["op"] = "swiglu";
  Put(file, "gate", gate.view());
  Put(file, "up", up.view());
  Put(file, "d_output", d_output.view());
  Put(file, "output", output.view());
  Put(file, "d_gate", d_gate.view());
  Put(file, "d_up", d_up.view());
  return file;
}

const RegisterCase kGeluExact("gelu_exact", [] { return GeluCase(ops::GeluApproximation::kNone); });
const RegisterCase kGeluTanh("gelu_tanh", [] { return GeluCase(ops::GeluApproximation::kTanh); });
const RegisterCase kRelu("relu", [] { return ReluCase(); });
const RegisterCase kSilu("silu", [] { return SiluCase(); });
const RegisterCase kSwiGlu("swiglu", [] { return SwiGluCase(); });

}  // namespace
}  // namespace qkv::reference
