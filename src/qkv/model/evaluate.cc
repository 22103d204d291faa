#include "qkv/model/evaluate.h"

#include <algorithm>

#include "qkv/core/checked.h"
#include "qkv/core/memory.h"
#include "qkv/model/transformer.h"
#include "qkv/ops/cross_entropy.h"

namespace qkv::model {

WindowLoss EvaluateWindows(const Model& model, std::span<const int32_t> tokens, int64_t window,
                           int64_t batch, int64_t max_windows, const ThreadPool& threads,
                           const std::function<void(ConstTensorView<float>)>& first_window_logits,
                           const std::function<void(int64_t done, int64_t total)>& progress,
                           Precision precision) {
  const ModelConfig& config = model.config;
  QKV_CHECK(window >= 2, "evaluation windows need at least 2 tokens, got ", window);
  QKV_CHECK(window <= config.context || config.position != PositionEncoding::kLearned,
            "a window of ", window, " tokens is longer than the model's learned position table of ",
            config.context);
  QKV_CHECK(batch > 0, "the evaluation batch must be > 0, got ", batch);
  int64_t windows = static_cast<int64_t>(tokens.size()) / window;
  QKV_CHECK(windows > 0, tokens.size(), " tokens are fewer than one window of ", window);
  if (max_windows > 0) windows = std::min(windows, max_windows);
  batch = std::min(batch, windows);

  Arena measure = Arena::MeasureOnly();
  AllocateModelActivations<float>(measure, config, batch, window);
  const size_t token_bytes = CheckedMulSize(
      static_cast<size_t>(CheckedMul(batch, window, "evaluation batch")), 2 * sizeof(int32_t));
  const size_t scratch_bytes =
      ModelForwardScratchBytes(config, batch, window, threads.num_threads(), sizeof(float));
  // Refused up front with the numbers, rather than by the allocator after the model loaded.
  CheckFitsInMemory(
      CheckedAddSize(CheckedAddSize(measure.used_bytes(), token_bytes), scratch_bytes),
      internal::StrCat("evaluating ", batch, " windows of ", window,
                       " tokens at a time (activations and scratch)"));
  Arena arena(measure.used_bytes() + token_bytes + 4 * kBufferAlignment);
  const ModelActivations<float> acts =
      AllocateModelActivations<float>(arena, config, batch, window);
  TensorView<int32_t> inputs = arena.Allocate<int32_t>(Shape{batch, window});
  TensorView<int32_t> targets = arena.Allocate<int32_t>(Shape{batch, window});
  // The forward pass needs scratch only for flash attention (long windows).
  Arena scratch(scratch_bytes);
  ExecutionContext ctx{&threads, &scratch};
  ctx.precision = precision;

  WindowLoss result;
  result.windows = windows;
  double loss_sum = 0;
  for (int64_t first = 0; first < windows; first += batch) {
    const int64_t count = std::min(batch, windows - first);
    for (int64_t b = 0; b < batch; ++b) {
      // A short last batch repeats its final window in the unused rows, all ignored.
      const int64_t w = first + std::min(b, count - 1);
      for (int64_t t = 0; t < window; ++t) {
        inputs[b * window + t] = tokens[w * window + t];
        const bool counted = b < count && t + 1 < window;
        targets[b * window + t] = counted ? tokens[w * window + t + 1] : ops::kDefaultIgnoreIndex;
      }
    }
    const double mean =
        ModelForward<float>(config, model.params, inputs, targets, false, nullptr, acts, ctx);
    const int64_t counted = count * (window - 1);
    loss_sum += mean * static_cast<double>(counted);
    result.predictions += counted;
    if (first == 0 && first_window_logits) {
      first_window_logits(
          ConstTensorView<float>(acts.logits.data(), Shape{window, config.vocab_size}));
    }
    if (progress) progress(first + count, windows);
  }
  result.loss = loss_sum / static_cast<double>(result.predictions);
  return result;
}

}  // namespace qkv::model
