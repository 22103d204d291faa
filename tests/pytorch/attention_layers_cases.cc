// Reference cases for layers/self_attention and layers/cross_attention: the projections,
// RoPE and masks around ops/attention, with every parameter gradient.
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "qkv/core/arena.h"
#include "qkv/core/random.h"
#include "qkv/layers/cross_attention.h"
#include "qkv/layers/self_attention.h"
#include "qkv/testing/gradient_check.h"
#include "tests/pytorch/reference_cases.h"

namespace qkv::reference {
namespace {

using testing::RandomTensor;

constexpr int64_t kBatch = 2, kWidth = 16, kHeads = 2;  // head size 8
// Parameters ~ N(0, 0.3^2): large enough that the attention weights are far from uniform,
// so a wrong mask or a swapped projection changes the result visibly.
constexpr double kParamStd = 0.3;

// (batch, key) pairs marked as padding: the (B, Tk) mask as uint8 for qkv and I32 for the
// file (the safetensors writer holds F32 and I32).
struct PaddingMask {
  Tensor<uint8_t> mask;
  Tensor<int32_t> mask_i32;
  bool present = false;
};

PaddingMask MakePadding(int64_t key_len, const std::vector<std::pair<int64_t, int64_t>>& keys) {
  PaddingMask padding{Tensor<uint8_t>(Shape{kBatch, key_len}),
                      Tensor<int32_t>(Shape{kBatch, key_len}), !keys.empty()};
  for (const auto& [b, j] : keys) {
    padding.mask[b * key_len + j] = 1;
    padding.mask_i32[b * key_len + j] = 1;
  }
  return padding;
}

void PutIfPresent(io::SafetensorsFile& file, const std::string& name, TensorView<float> view) {
  if (!view.empty()) Put(file, name, view);
}

// The "rope" metadata: none, half or interleaved.
const char* RopeName(const std::optional<ops::RopeConfig>& rope) {
  if (!rope) return "none";
  return rope->style == ops::RopeStyle::kHalf ? "half" : "interleaved";
}

struct SelfAttentionCaseSpec {
  uint64_t seed = 0;
  int64_t seq_len = 0;
  bool causal = false;
  bool bias = false;
  std::optional<ops::RopeConfig> rope;
  int64_t start_position = 0;
  std::vector<std::pair<int64_t, int64_t>> padded_keys;
};

io::SafetensorsFile SelfAttentionCase(const SelfAttentionCaseSpec& spec) {
  ThreadPool threads(2);
  Arena scratch(1 << 20);  // the backward pass's temporaries
  ExecutionContext ctx{&threads, &scratch};
  Random random(spec.seed);
  layers::SelfAttentionConfig config{kWidth, kHeads, spec.causal, spec.bias, spec.rope};
  const int64_t seq = spec.seq_len;

  Arena measure = Arena::MeasureOnly();
  layers::AllocateSelfAttentionParams<float>(measure, config);
  Arena param_arena(measure.used_bytes()), grad_arena(measure.used_bytes());
  auto params = layers::AllocateSelfAttentionParams<float>(param_arena, config);
  auto d_params = layers::AllocateSelfAttentionParams<float>(grad_arena, config);  // zero
  for (TensorView<float> p :
       {params.qkv_weight, params.qkv_bias, params.out_weight, params.out_bias}) {
    if (!p.empty()) random.FillNormal(p, 0.0, kParamStd);
  }
  Arena measure_acts = Arena::MeasureOnly();
  layers::AllocateSelfAttentionActivations<float>(measure_acts, config, kBatch, seq);
  Arena act_arena(measure_acts.used_bytes());
  auto acts = layers::AllocateSelfAttentionActivations<float>(act_arena, config, kBatch, seq);

  Tensor<float> input = RandomTensor<float>(Shape{kBatch, seq, kWidth}, random);
  Tensor<float> d_output = RandomTensor<float>(input.shape(), random);
  Tensor<float> output(input.shape()), d_input(input.shape());
  PaddingMask padding = MakePadding(seq, spec.padded_keys);
  ConstTensorView<uint8_t> key_padding =
      padding.present ? padding.mask.view() : ConstTensorView<uint8_t>();

  layers::SelfAttentionForward<float>(config, params, input.view(), spec.start_position,
                                      key_padding, acts, output.view(), ctx);
  layers::SelfAttentionBackward<float>(config, params, input.view(), spec.start_position,
                                       key_padding, acts, d_output.view(), d_input.view(), d_params,
                                       ctx);

  io::SafetensorsFile file;
  file.metadata["op"] = "self_attention";
  file.metadata["heads"] = std::to_string(kHeads);
  file.metadata["causal"] = spec.causal ? "1" : "0";
  file.metadata["bias"] = spec.bias ? "1" : "0";
  file.metadata["rope"] = RopeName(spec.rope);
  if (spec.rope) file.metadata["theta"] = std::to_string(spec.rope->theta);
  file.metadata["start_position"] = std::to_string(spec.start_position);
  Put(file, "input", input.view());
  Put(file, "qkv_weight", params.qkv_weight);
  PutIfPresent(file, "qkv_bias", params.qkv_bias);
  Put(file, "out_weight", params.out_weight);
  PutIfPresent(file, "out_bias", params.out_bias);
  if (padding.present) PutInt(file, "key_padding", padding.mask_i32.view());
  Put(file, "d_output", d_output.view());
  Put(file, "output", output.view());
  Put(file, "probs", acts.probs);
  Put(file, "d_input", d_input.view());
  Put(file, "d_qkv_weight", d_params.qkv_weight);
  PutIfPresent(file, "d_qkv_bias", d_params.qkv_bias);
  Put(file, "d_out_weight", d_params.out_weight);
  PutIfPresent(file, "d_out_bias", d_params.out_bias);
  return file;
}

struct CrossAttentionCaseSpec {
  uint64_t seed = 0;
  int64_t query_len = 0, key_len = 0;
  bool bias = false;
  std::vector<std::pair<int64_t, int64_t>> padded_keys;
  layers::AttentionKernel kernel = layers::AttentionKernel::kSimple;
};

io::SafetensorsFile CrossAttentionCase(const CrossAttentionCaseSpec& spec) {
  ThreadPool threads(2);
  Arena scratch(4 << 20);  // the backward pass's temporaries
  ExecutionContext ctx{&threads, &scratch};
  Random random(spec.seed);
  layers::CrossAttentionConfig config{kWidth, kHeads, spec.bias, spec.kernel};
  const bool flash = spec.kernel == layers::AttentionKernel::kFlash;
  const int64_t tq = spec.query_len, tk = spec.key_len;

  Arena measure = Arena::MeasureOnly();
  layers::AllocateCrossAttentionParams<float>(measure, config);
  Arena param_arena(measure.used_bytes()), grad_arena(measure.used_bytes());
  auto params = layers::AllocateCrossAttentionParams<float>(param_arena, config);
  auto d_params = layers::AllocateCrossAttentionParams<float>(grad_arena, config);  // zero
  for (TensorView<float> p : {params.q_weight, params.q_bias, params.kv_weight, params.kv_bias,
                              params.out_weight, params.out_bias}) {
    if (!p.empty()) random.FillNormal(p, 0.0, kParamStd);
  }
  Arena measure_acts = Arena::MeasureOnly();
  layers::AllocateCrossAttentionActivations<float>(measure_acts, config, kBatch, tq, tk);
  Arena act_arena(measure_acts.used_bytes());
  auto acts = layers::AllocateCrossAttentionActivations<float>(act_arena, config, kBatch, tq, tk);

  Tensor<float> input = RandomTensor<float>(Shape{kBatch, tq, kWidth}, random);
  Tensor<float> memory = RandomTensor<float>(Shape{kBatch, tk, kWidth}, random);
  Tensor<float> d_output = RandomTensor<float>(input.shape(), random);
  Tensor<float> output(input.shape()), d_input(input.shape()), d_memory(memory.shape());
  PaddingMask padding = MakePadding(tk, spec.padded_keys);
  ConstTensorView<uint8_t> key_padding =
      padding.present ? padding.mask.view() : ConstTensorView<uint8_t>();

  layers::CrossAttentionForward<float>(config, params, input.view(), memory.view(), key_padding,
                                       acts, output.view(), ctx);
  layers::CrossAttentionBackward<float>(config, params, input.view(), memory.view(), key_padding,
                                        acts, d_output.view(), d_input.view(), d_memory.view(),
                                        d_params, ctx);

  io::SafetensorsFile file;
  file.metadata["op"] = "cross_attention";
  file.metadata["kernel"] = flash ? "flash" : "simple";
  file.metadata["heads"] = std::to_string(kHeads);
  file.metadata["bias"] = spec.bias ? "1" : "0";
  Put(file, "input", input.view());
  Put(file, "memory", memory.view());
  Put(file, "q_weight", params.q_weight);
  PutIfPresent(file, "q_bias", params.q_bias);
  Put(file, "kv_weight", params.kv_weight);
  PutIfPresent(file, "kv_bias", params.kv_bias);
  Put(file, "out_weight", params.out_weight);
  PutIfPresent(file, "out_bias", params.out_bias);
  if (padding.present) PutInt(file, "key_padding", padding.mask_i32.view());
  Put(file, "d_output", d_output.view());
  Put(file, "output", output.view());
  if (!flash) Put(file, "probs", acts.probs);  // the flash kernel stores none
  Put(file, "d_input", d_input.view());
  Put(file, "d_memory", d_memory.view());
  Put(file, "d_q_weight", d_params.q_weight);
  PutIfPresent(file, "d_q_bias", d_params.q_bias);
  Put(file, "d_kv_weight", d_params.kv_weight);
  PutIfPresent(file, "d_kv_bias", d_params.kv_bias);
  Put(file, "d_out_weight", d_params.out_weight);
  PutIfPresent(file, "d_out_bias", d_params.out_bias);
  return file;
}

const ops::RopeConfig kRopeHalf{10000.0, ops::RopeStyle::kHalf};
const ops::RopeConfig kRopeInterleaved{500.0, ops::RopeStyle::kInterleaved};

const RegisterCase kSelfCausal("self_attention_causal_bias", [] {
  return SelfAttentionCase({81, 5, /*causal=*/true, /*bias=*/true, std::nullopt, 0, {}});
});
// start_position 2: RoPE angles do not start at 0.
const RegisterCase kSelfRope("self_attention_causal_rope_half", [] {
  return SelfAttentionCase({82, 5, true, true, kRopeHalf, 2, {}});
});
const RegisterCase kSelfPadding("self_attention_key_padding_no_bias", [] {
  return SelfAttentionCase({83, 6, false, false, std::nullopt, 0, {{0, 5}, {1, 0}, {1, 1}}});
});
// Batch 1's key 0 is padding, so its first query (causal: sees key 0 only) attends nothing.
const RegisterCase kSelfAll("self_attention_causal_padding_rope_interleaved", [] {
  return SelfAttentionCase({84, 5, true, true, kRopeInterleaved, 1, {{0, 3}, {1, 0}}});
});
const RegisterCase kCrossPadding("cross_attention_bias_padding", [] {
  return CrossAttentionCase({85, 4, 6, /*bias=*/true, {{0, 5}, {1, 0}, {1, 3}}});
});
const RegisterCase kCrossNoBias("cross_attention_no_bias", [] {
  return CrossAttentionCase({86, 3, 7, false, {}});
});
// The flash kernel over several 64-row tiles of queries and keys: batch 0's keys from 70 on
// are padding (a partly padded tile and a wholly padded one, which the kernel skips), batch
// 1's key 3 is.
const RegisterCase kCrossFlash("cross_attention_flash_padding", [] {
  CrossAttentionCaseSpec spec{
      87, 70, 150, /*bias=*/true, {{1, 3}}, layers::AttentionKernel::kFlash};
  for (int64_t key = 70; key < 150; ++key) spec.padded_keys.emplace_back(0, key);
  return CrossAttentionCase(spec);
});

}  // namespace
}  // namespace qkv::reference
