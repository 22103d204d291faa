// Reference cases for the position encodings: ops/sinusoidal, ops/position_add, ops/rope.
#include <string>

#include "qkv/core/random.h"
#include "qkv/ops/position_add.h"
#include "qkv/ops/rope.h"
#include "qkv/ops/sinusoidal.h"
#include "qkv/testing/gradient_check.h"
#include "tests/pytorch/reference_cases.h"

namespace qkv::reference {
namespace {

using testing::RandomTensor;

// An odd dim ends with a sine column; 60 positions reach angles well past 2*pi.
io::SafetensorsFile SinusoidalCase(int64_t max_len, int64_t dim) {
  Tensor<float> table(Shape{max_len, dim});
  ops::FillSinusoidalTable<float>(table.view());

  io::SafetensorsFile file;
  file.metadata["op"] = "sinusoidal";
  Put(file, "table", table.view());
  return file;
}

// A learned table read from start_position 3 on, so its gradient lands in rows 3..6 only.
io::SafetensorsFile AddPositionsCase() {
  ThreadPool threads(2);
  ExecutionContext ctx{&threads, nullptr};
  Random random(71);
  const int64_t batch = 2, seq = 4, dim = 6, max_len = 10, start = 3;
  Tensor<float> input = RandomTensor<float>(Shape{batch, seq, dim}, random);
  Tensor<float> table = RandomTensor<float>(Shape{max_len, dim}, random);
  Tensor<float> d_output = RandomTensor<float>(input.shape(), random);
  Tensor<float> output(input.shape());
  Tensor<float> d_table(table.shape());  // zero: accumulated (+=)

  ops::AddPositionsForward<float>(input.view(), table.view(), start, output.view(), ctx);
  ops::AddPositionsBackward<float>(d_output.view(), start, d_table.view(), ctx);

  io::SafetensorsFile file;
  file.metadata["op"] = "add_positions";
  file.metadata["start_position"] = std::to_string(start);
  Put(file, "input", input.view());
  Put(file, "table", table.view());
  Put(file, "d_output", d_output.view());
  Put(file, "output", output.view());
  Put(file, "d_table", d_table.view());
  return file;
}

io::SafetensorsFile RopeCase(uint64_t seed, ops::RopeStyle style, double theta,
                             ops::RopeScaling scaling = ops::RopeScaling::kNone,
                             double factor = 1.0, int64_t sequence_length = 0) {
  ThreadPool threads(2);
  ExecutionContext ctx{&threads, nullptr};
  Random random(seed);
  const int64_t batch = 2, seq = 5, heads = 2, width = 16, start = 3;  // head size 8
  ops::RopeConfig config{theta, style, scaling, factor, /*original_context=*/64};
  config.sequence_length = sequence_length;  // llama3's low/high frequency factors: 1 and 4
  Tensor<float> input = RandomTensor<float>(Shape{batch, seq, width}, random);
  Tensor<float> d_output = RandomTensor<float>(input.shape(), random);
  Tensor<float> output(input.shape()), d_input(input.shape());

  ops::RopeForward<float>(input.view(), heads, config, start, output.view(), ctx);
  ops::RopeBackward<float>(d_output.view(), heads, config, start, d_input.view(), ctx);

  io::SafetensorsFile file;
  file.metadata["op"] = "rope";
  file.metadata["style"] = style == ops::RopeStyle::kHalf ? "half" : "interleaved";
  file.metadata["theta"] = std::to_string(theta);
  file.metadata["heads"] = std::to_string(heads);
  file.metadata["start_position"] = std::to_string(start);
  const char* scaling_names[] = {"none", "linear", "ntk", "dynamic", "yarn", "llama3"};
  file.metadata["scaling"] = scaling_names[static_cast<int>(scaling)];
  file.metadata["factor"] = std::to_string(factor);
  file.metadata["original_context"] = "64";
  file.metadata["sequence_length"] = std::to_string(sequence_length);
  Put(file, "input", input.view());
  Put(file, "d_output", d_output.view());
  Put(file, "output", output.view());
  Put(file, "d_input", d_input.view());
  return file;
}

const RegisterCase kSinusoidalEven("sinusoidal_even_dim", [] { return SinusoidalCase(60, 8); });
const RegisterCase kSinusoidalOdd("sinusoidal_odd_dim", [] { return SinusoidalCase(60, 7); });
const RegisterCase kAddPositions("add_positions_learned", [] { return AddPositionsCase(); });
const RegisterCase kRopeHalf("rope_half_theta10000",
                             [] { return RopeCase(72, ops::RopeStyle::kHalf, 10000.0); });
const RegisterCase kRopeHalf500("rope_half_theta500",
                                [] { return RopeCase(73, ops::RopeStyle::kHalf, 500.0); });
const RegisterCase kRopeInterleaved("rope_interleaved_theta10000", [] {
  return RopeCase(74, ops::RopeStyle::kInterleaved, 10000.0);
});
const RegisterCase kRopeInterleaved500("rope_interleaved_theta500", [] {
  return RopeCase(75, ops::RopeStyle::kInterleaved, 500.0);
});

// Scaled RoPE for running past the training context (factor s = 4; YaRN with its training
// context 64 and positions from 3, so some pairs extrapolate, some interpolate, some blend).
const RegisterCase kRopeLinear("rope_scaling_linear", [] {
  return RopeCase(76, ops::RopeStyle::kHalf, 10000.0, ops::RopeScaling::kLinear, 4.0);
});
const RegisterCase kRopeNtk("rope_scaling_ntk", [] {
  return RopeCase(77, ops::RopeStyle::kInterleaved, 10000.0, ops::RopeScaling::kNtk, 4.0);
});
const RegisterCase kRopeYarn("rope_scaling_yarn", [] {
  return RopeCase(78, ops::RopeStyle::kHalf, 10000.0, ops::RopeScaling::kYarn, 4.0);
});
// llama3 (head size 8, theta 10000 against the original context 64: one pair keeps its
// frequency, one blends, two are interpolated) and dynamic NTK at 100 tokens (past 64).
const RegisterCase kRopeLlama3("rope_scaling_llama3", [] {
  return RopeCase(80, ops::RopeStyle::kHalf, 10000.0, ops::RopeScaling::kLlama3, 8.0);
});
const RegisterCase kRopeDynamic("rope_scaling_dynamic", [] {
  return RopeCase(81, ops::RopeStyle::kHalf, 10000.0, ops::RopeScaling::kDynamic, 4.0, 100);
});
const RegisterCase kRopeDynamicShort("rope_scaling_dynamic_within_context", [] {
  return RopeCase(82, ops::RopeStyle::kHalf, 10000.0, ops::RopeScaling::kDynamic, 4.0, 40);
});
const RegisterCase kRopeYarnLarge("rope_scaling_yarn_theta500_factor16", [] {
  return RopeCase(79, ops::RopeStyle::kInterleaved, 500.0, ops::RopeScaling::kYarn, 16.0);
});

}  // namespace
}  // namespace qkv::reference
