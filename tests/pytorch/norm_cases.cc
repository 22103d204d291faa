// Reference cases for ops/layer_norm and ops/rms_norm.
#include "qkv/core/random.h"
#include "qkv/ops/layer_norm.h"
#include "qkv/ops/rms_norm.h"
#include "qkv/testing/gradient_check.h"
#include "tests/pytorch/reference_cases.h"

namespace qkv::reference {
namespace {

using testing::RandomTensor;

constexpr int64_t kRows = 6, kCols = 16;
constexpr float kEps = 1e-5f;

// (kRows, kCols) with a nonzero mean and a spread far from 1, so that neither the mean
// subtraction nor the normalisation is a no-op.
Tensor<float> NormInput(Random& random) {
  Tensor<float> input = RandomTensor<float>(Shape{kRows, kCols}, random, 2.0);
  for (float& value : input.view()) value += 1.5f;
  return input;
}

io::SafetensorsFile LayerNormCase(bool with_beta) {
  ThreadPool threads(2);
  ExecutionContext ctx{&threads, nullptr};
  Random random(with_beta ? 31 : 32);
  Tensor<float> input = NormInput(random);
  Tensor<float> gamma = RandomTensor<float>(Shape{kCols}, random);
  Tensor<float> beta = RandomTensor<float>(Shape{kCols}, random);
  Tensor<float> d_output = RandomTensor<float>(input.shape(), random);
  Tensor<float> output(input.shape()), d_input(input.shape());
  Tensor<float> mean(Shape{kRows}), rstd(Shape{kRows});
  Tensor<float> d_gamma(gamma.shape()), d_beta(beta.shape());  // zero: accumulated (+=)
  ops::LayerNormSaved<float> saved{mean.view(), rstd.view()};

  ops::LayerNormForward<float>(input.view(), gamma.view(),
                               with_beta ? beta.view() : ConstTensorView<float>(), kEps,
                               output.view(), saved, ctx);
  ops::LayerNormBackward<float>(d_output.view(), input.view(), gamma.view(), saved, d_input.view(),
                                d_gamma.view(), with_beta ? d_beta.view() : TensorView<float>(),
                                ctx);

  io::SafetensorsFile file;
  file.metadata["op"] = "layer_norm";
  file.metadata["beta"] = with_beta ? "1" : "0";
  file.metadata["eps"] = "1e-5";
  Put(file, "input", input.view());
  Put(file, "gamma", gamma.view());
  if (with_beta) Put(file, "beta", beta.view());
  Put(file, "d_output", d_output.view());
  Put(file, "output", output.view());
  Put(file, "mean", mean.view());
  Put(file, "rstd", rstd.view());
  Put(file, "d_input", d_input.view());
  Put(file, "d_gamma", d_gamma.view());
  if (with_beta) Put(file, "d_beta", d_beta.view());
  return file;
}

io::SafetensorsFile RmsNormCase() {
  ThreadPool threads(2);
  ExecutionContext ctx{&threads, nullptr};
  Random random(33);
  Tensor<float> input = NormInput(random);
  Tensor<float> gamma = RandomTensor<float>(Shape{kCols}, random);
  Tensor<float> d_output = RandomTensor<float>(input.shape(), random);
  Tensor<float> output(input.shape()), d_input(input.shape());
  Tensor<float> rrms(Shape{kRows});
  Tensor<float> d_gamma(gamma.shape());  // zero: accumulated (+=)

  ops::RmsNormForward<float>(input.view(), gamma.view(), kEps, output.view(), rrms.view(), ctx);
  ops::RmsNormBackward<float>(d_output.view(), input.view(), gamma.view(), rrms.view(),
                              d_input.view(), d_gamma.view(), ctx);

  io::SafetensorsFile file;
  file.metadata["op"] = "rms_norm";
  file.metadata["eps"] = "1e-5";
  Put(file, "input", input.view());
  Put(file, "gamma", gamma.view());
  Put(file, "d_output", d_output.view());
  Put(file, "output", output.view());
  Put(file, "rrms", rrms.view());
  Put(file, "d_input", d_input.view());
  Put(file, "d_gamma", d_gamma.view());
  return file;
}

const RegisterCase kLayerNormBeta("layer_norm_beta", [] { return LayerNormCase(true); });
const RegisterCase kLayerNormNoBeta("layer_norm_no_beta", [] { return LayerNormCase(false); });
const RegisterCase kRmsNorm("rms_norm", [] { return RmsNormCase(); });

}  // namespace
}  // namespace qkv::reference
