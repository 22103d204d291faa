// Reference cases for ops/attention (the scaled dot-product core, without projections).
#include <string>
#include <utility>
#include <vector>

#include "qkv/core/random.h"
#include "qkv/ops/alibi.h"
#include "qkv/ops/attention.h"
#include "qkv/testing/gradient_check.h"
#include "tests/pytorch/reference_cases.h"

namespace qkv::reference {
namespace {

using testing::RandomTensor;

struct AttentionCaseSpec {
  uint64_t seed = 0;
  int64_t query_len = 0, key_len = 0;  // Tq, Tk
  bool causal = false;
  // (batch, key) pairs marked as padding; none means no mask is passed at all.
  std::vector<std::pair<int64_t, int64_t>> padded_keys;
  bool alibi = false;  // add ALiBi biases with the paper's slopes for the heads
};

io::SafetensorsFile AttentionCase(const AttentionCaseSpec& spec) {
  ThreadPool threads(2);
  Arena scratch(1 << 20);  // AttentionBackward needs threads * Tq * Tk floats
  ExecutionContext ctx{&threads, &scratch};
  Random random(spec.seed);
  const int64_t batch = 2, heads = spec.alibi ? 4 : 2, width = 8;  // head size 4 or 2
  const int64_t tq = spec.query_len, tk = spec.key_len;
  Tensor<float> q = RandomTensor<float>(Shape{batch, tq, width}, random);
  Tensor<float> k = RandomTensor<float>(Shape{batch, tk, width}, random);
  Tensor<float> v = RandomTensor<float>(Shape{batch, tk, width}, random);
  Tensor<float> d_output = RandomTensor<float>(q.shape(), random);
  Tensor<uint8_t> key_padding(Shape{batch, tk});
  Tensor<int32_t> key_padding_i32(Shape{batch, tk});  // safetensors here holds F32 and I32
  for (const auto& [b, j] : spec.padded_keys) {
    key_padding[b * tk + j] = 1;
    key_padding_i32[b * tk + j] = 1;
  }
  const bool has_mask = !spec.padded_keys.empty();
  Tensor<float> output(q.shape()), probs(Shape{batch, heads, tq, tk});
  Tensor<float> d_q(q.shape()), d_k(k.shape()), d_v(v.shape());

  const std::vector<double> slopes = spec.alibi ? ops::AlibiSlopes(heads) : std::vector<double>();
  ops::AttentionMask mask{spec.causal, has_mask ? key_padding.view() : ConstTensorView<uint8_t>(),
                          slopes};
  ops::AttentionForward<float>(q.view(), k.view(), v.view(), heads, mask, output.view(),
                               probs.view(), ctx);
  ops::AttentionBackward<float>(d_output.view(), q.view(), k.view(), v.view(), probs.view(), heads,
                                d_q.view(), d_k.view(), d_v.view(), ctx);

  io::SafetensorsFile file;
  file.metadata["op"] = "attention";
  file.metadata["heads"] = std::to_string(heads);
  file.metadata["causal"] = spec.causal ? "1" : "0";
  file.metadata["alibi"] = spec.alibi ? "1" : "0";
  Put(file, "q", q.view());
  Put(file, "k", k.view());
  Put(file, "v", v.view());
  if (has_mask) PutInt(file, "key_padding", key_padding_i32.view());
  Put(file, "d_output", d_output.view());
  Put(file, "output", output.view());
  Put(file, "probs", probs.view());
  Put(file, "d_q", d_q.view());
  Put(file, "d_k", d_k.view());
  Put(file, "d_v", d_v.view());
  return file;
}

const RegisterCase kNoMask("attention_no_mask", [] {
  return AttentionCase({61, 5, 5, false, {}});
});
const RegisterCase kCausal("attention_causal", [] { return AttentionCase({62, 6, 6, true, {}}); });
// Queries are the last 3 of 7 positions: query i sees keys 0..i+4.
const RegisterCase kCausalLongerKeys("attention_causal_tk_gt_tq", [] {
  return AttentionCase({63, 3, 7, true, {}});
});
const RegisterCase kKeyPadding("attention_key_padding", [] {
  return AttentionCase({64, 5, 5, false, {{0, 3}, {0, 4}, {1, 0}}});
});
// Batch 1's key 0 is padding, so its query 0 (which causally sees only key 0) has no key
// left: its weights and output must be zero, and it must pass no gradient.
const RegisterCase kCausalKeyPadding("attention_causal_key_padding", [] {
  return AttentionCase({65, 5, 5, true, {{0, 4}, {1, 0}, {1, 2}}});
});
const RegisterCase kCrossLengths("attention_cross_lengths", [] {
  return AttentionCase({66, 4, 6, false, {}});
});

// ALiBi: causal (the paper's setting), causal with more keys than queries, and bidirectional
// (the symmetric |i - j| extension).
const RegisterCase kAlibiCausal("attention_alibi_causal", [] {
  return AttentionCase({67, 6, 6, true, {}, true});
});
const RegisterCase kAlibiLongerKeys("attention_alibi_tk_gt_tq", [] {
  return AttentionCase({68, 3, 7, true, {{1, 1}}, true});
});
const RegisterCase kAlibiBidirectional("attention_alibi_bidirectional", [] {
  return AttentionCase({69, 5, 5, false, {}, true});
});

}  // namespace
}  // namespace qkv::reference
