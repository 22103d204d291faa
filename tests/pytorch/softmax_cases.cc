// Reference cases for ops/softmax and ops/cross_entropy.
#include <limits>
#include <string>
#include <vector>

#include "qkv/core/random.h"
#include "qkv/ops/cross_entropy.h"
#include "qkv/ops/softmax.h"
#include "qkv/testing/gradient_check.h"
#include "tests/pytorch/reference_cases.h"

namespace qkv::reference {
namespace {

using testing::RandomTensor;

constexpr float kInf = std::numeric_limits<float>::infinity();

io::SafetensorsFile SoftmaxCase() {
  ThreadPool threads(2);
  ExecutionContext ctx{&threads, nullptr};
  Random random(51);
  const int64_t rows = 6, cols = 7;
  Tensor<float> input = RandomTensor<float>(Shape{rows, cols}, random, 2.0);
  // Row 1: two masked entries. Row 2: one finite entry (a one-hot output, zero gradient).
  // Row 3: all -inf, which qkv defines as all-zero weights. Row 4: large logits, which
  // overflow exp() unless the row maximum is subtracted first.
  input[1 * cols + 2] = -kInf;
  input[1 * cols + 5] = -kInf;
  for (int64_t c = 0; c < cols; ++c) {
    if (c != 4) input[2 * cols + c] = -kInf;
    input[3 * cols + c] = -kInf;
    input[4 * cols + c] = 90.0f + 10.0f * input[4 * cols + c];
  }
  Tensor<float> d_output = RandomTensor<float>(input.shape(), random);
  Tensor<float> output(input.shape()), d_input(input.shape());

  ops::SoftmaxForward<float>(input.view(), output.view(), ctx);
  ops::SoftmaxBackward<float>(d_output.view(), output.view(), d_input.view(), ctx);

  io::SafetensorsFile file;
  file.metadata["op"] = "softmax";
  Put(file, "input", input.view());
  Put(file, "d_output", d_output.view());
  Put(file, "output", output.view());
  Put(file, "d_input", d_input.view());
  return file;
}

// The rows listed in ignored_rows get the ignore index as their target.
io::SafetensorsFile CrossEntropyCase(uint64_t seed, int32_t ignore_index,
                                     const std::vector<int64_t>& ignored_rows) {
  ThreadPool threads(2);
  ExecutionContext ctx{&threads, nullptr};
  Random random(seed);
  const int64_t rows = 8, vocab = 7;
  Tensor<float> logits = RandomTensor<float>(Shape{rows, vocab}, random, 2.0);
  Tensor<int32_t> targets(Shape{rows});
  for (int64_t r = 0; r < rows; ++r) {
    // Avoid drawing the ignore index by chance when it is a valid class id.
    do {
      targets[r] = static_cast<int32_t>(random.Below(vocab));
    } while (targets[r] == ignore_index);
  }
  for (int64_t r : ignored_rows) targets[r] = ignore_index;
  Tensor<float> d_loss(Shape{1});
  d_loss[0] = static_cast<float>(0.5 + random.Uniform());
  Tensor<float> logsumexp(Shape{rows}), d_logits(logits.shape());
  Tensor<float> loss(Shape{1});

  loss[0] = ops::CrossEntropyForward<float>(logits.view(), targets.view(), ignore_index,
                                            logsumexp.view(), ctx);
  ops::CrossEntropyBackward<float>(d_loss[0], logits.view(), targets.view(), ignore_index,
                                   logsumexp.view(), d_logits.view(), ctx);

  io::SafetensorsFile file;
  file.metadata["op"] = "cross_entropy";
  file.metadata["ignore_index"] = std::to_string(ignore_index);
  Put(file, "logits", logits.view());
  PutInt(file, "targets", targets.view());
  Put(file, "d_loss", d_loss.view());
  Put(file, "loss", loss.view());
  Put(file, "logsumexp", logsumexp.view());
  Put(file, "d_logits", d_logits.view());
  return file;
}

const RegisterCase kSoftmax("softmax_masked_rows", [] { return SoftmaxCase(); });
const RegisterCase kCrossEntropy("cross_entropy_ignore_default", [] {
  return CrossEntropyCase(52, ops::kDefaultIgnoreIndex, {1, 4, 5});
});
// An ignore index that is also a valid class id: rows with that target are still skipped.
const RegisterCase kCrossEntropyClassIgnored("cross_entropy_ignore_class_id", [] {
  return CrossEntropyCase(53, 3, {0, 6});
});
// Every row ignored: qkv returns loss 0 and zero gradients (PyTorch would give NaN).
const RegisterCase kCrossEntropyAllIgnored("cross_entropy_all_ignored", [] {
  return CrossEntropyCase(54, ops::kDefaultIgnoreIndex, {0, 1, 2, 3, 4, 5, 6, 7});
});

}  // namespace
}  // namespace qkv::reference
