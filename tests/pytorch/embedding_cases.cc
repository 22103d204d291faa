// Reference cases for ops/embedding.
#include <vector>

#include "qkv/core/random.h"
#include "qkv/ops/embedding.h"
#include "qkv/testing/gradient_check.h"
#include "tests/pytorch/reference_cases.h"

namespace qkv::reference {
namespace {

using testing::RandomTensor;

io::SafetensorsFile EmbeddingCase() {
  ThreadPool threads(2);
  ExecutionContext ctx{&threads, nullptr};
  Random random(21);
  const int64_t vocab = 7, dim = 5;
  // Ids 3 and 1 repeat, so the backward scatter-add must sum several rows into one; id 4 never
  // occurs, so its gradient row must stay zero; 0 and vocab-1 check both ends of the table.
  const std::vector<int32_t> ids = {3, 1, 3, 0, 6, 3, 1, 2, 5};
  const int64_t rows = static_cast<int64_t>(ids.size());
  Tensor<int32_t> tokens(Shape{rows});
  for (int64_t r = 0; r < rows; ++r) tokens[r] = ids[r];
  Tensor<float> table = RandomTensor<float>(Shape{vocab, dim}, random);
  Tensor<float> d_output = RandomTensor<float>(Shape{rows, dim}, random);
  Tensor<float> output(Shape{rows, dim});
  Tensor<float> d_table(table.shape());  // zero: the backward pass accumulates (+=)

  ops::EmbeddingForward<float>(tokens.view(), table.view(), output.view(), ctx);
  ops::EmbeddingBackward<float>(d_output.view(), tokens.view(), d_table.view(), ctx);

  io::SafetensorsFile file;
  file.metadata["op"] = "embedding";
  PutInt(file, "tokens", tokens.view());
  Put(file, "table", table.view());
  Put(file, "d_output", d_output.view());
  Put(file, "output", output.view());
  Put(file, "d_table", d_table.view());
  return file;
}

const RegisterCase kEmbedding("embedding_repeated_ids", [] { return EmbeddingCase(); });

}  // namespace
}  // namespace qkv::reference
