// The optimizer as an object that owns its state: AdamW (train/adamw.h) over a shard
// [begin, end) of the concatenated parameters — the whole model, unless the optimizer state
// is sharded over data-parallel ranks (train/gradient_sync.h) — with the two moments of that
// shard. One update is one parallel pass over every piece (AdamWUpdateAll), the clipping
// factor folded into how the gradients are read.
#pragma once

#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "qkv/runtime/execution_context.h"
#include "qkv/train/adamw.h"
#include "qkv/train/parameter_list.h"

namespace qkv::train {

class AdamWOptimizer {
 public:
  // params and grads: the same list of tensors (values, gradients); they must outlive the
  // optimizer. shard = [begin, end): the elements of their concatenation it updates
  // (GradientSync::Shard).
  AdamWOptimizer(const ParameterList& params, const ParameterList& grads,
                 const AdamWOptions& options, std::pair<int64_t, int64_t> shard);

  // One update of the shard with every gradient multiplied by grad_scale as it is read; step
  // is the 1-based number of this update (for the bias corrections).
  void Update(int64_t step, double learning_rate, float grad_scale, const ExecutionContext& ctx);

  int64_t begin() const { return begin_; }
  int64_t end() const { return end_; }
  // The first (index 0) and second (index 1) moments of the shard: (end - begin) each.
  std::span<const float> moment(int index) const { return moments_[index]; }
  // Sets both moments from the whole model's (num_params each, concatenation order).
  void LoadMoments(std::span<const float> first, std::span<const float> second);

 private:
  AdamWOptions options_;
  int64_t begin_, end_;
  std::vector<float> moments_[2];
  std::vector<AdamWTensor> pieces_;  // the shard, cut at tensor boundaries
};

}  // namespace qkv::train
