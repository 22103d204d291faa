// Reference cases for ops/linear.
#include "qkv/core/random.h"
#include "qkv/ops/linear.h"
#include "qkv/testing/gradient_check.h"
#include "tests/pytorch/reference_cases.h"

namespace qkv::reference {
namespace {

using testing::RandomTensor;

io::SafetensorsFile LinearCase(bool with_bias) {
  ThreadPool threads(2);
  ExecutionContext ctx{&threads, nullptr};
  Random random(with_bias ? 11 : 12);
  const int64_t rows = 7, in_features = 5, out_features = 4;
  Tensor<float> input = RandomTensor<float>(Shape{rows, in_features}, random);
  Tensor<float> weight = RandomTensor<float>(Shape{out_features, in_features}, random);
  Tensor<float> bias = RandomTensor<float>(Shape{out_features}, random);
  Tensor<float> d_output = RandomTensor<float>(Shape{rows, out_features}, random);
  Tensor<float> output(Shape{rows, out_features});
  Tensor<float> d_input(input.shape()), d_weight(weight.shape()), d_bias(bias.shape());

  ConstTensorView<float> bias_view = with_bias ? bias.view() : ConstTensorView<float>();
  ops::LinearForward<float>(input.view(), weight.view(), bias_view, output.view(), ctx);
  ops::LinearBackward<float>(d_output.view(), input.view(), weight.view(), d_input.view(),
                             d_weight.view(), with_bias ? d_bias.view() : TensorView<float>(), ctx);

  io::SafetensorsFile file;
  file.metadata["op"] = "linear";
  file.metadata["bias"] = with_bias ? "1" : "0";
  Put(file, "input", input.view());
  Put(file, "weight", weight.view());
  if (with_bias) Put(file, "bias", bias.view());
  Put(file, "d_output", d_output.view());
  Put(file, "output", output.view());
  Put(file, "d_input", d_input.view());
  Put(file, "d_weight", d_weight.view());
  if (with_bias) Put(file, "d_bias", d_bias.view());
  return file;
}

const RegisterCase kLinearWithBias("linear_bias", [] { return LinearCase(true); });
const RegisterCase kLinearNoBias("linear_no_bias", [] { return LinearCase(false); });

}  // namespace
}  // namespace qkv::reference
