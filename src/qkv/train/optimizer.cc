#include "qkv/train/optimizer.h"

#include <algorithm>

#include "qkv/core/check.h"

namespace qkv::train {

AdamWOptimizer::AdamWOptimizer(const ParameterList& params, const ParameterList& grads,
                               const AdamWOptions& options, std::pair<int64_t, int64_t> shard)
    : options_(options), begin_(shard.first), end_(shard.second) {
  const int64_t begin = begin_, end = end_;
  options_.Validate();
  QKV_CHECK(params.size() == grads.size(), "optimizer: ", params.size(), " parameters but ",
            grads.size(), " gradients");
  QKV_CHECK(0 <= begin && begin <= end && end <= CountElements(params), "optimizer: shard [", begin,
            ", ", end, ") is outside the ", CountElements(params), " parameters");
  for (std::vector<float>& moment : moments_) moment.assign(static_cast<size_t>(end - begin), 0);
  int64_t first = 0;  // where tensor i starts in the concatenation
  for (size_t i = 0; i < params.size(); ++i) {
    const int64_t size = params[i].second.size();
    QKV_CHECK(grads[i].second.size() == size, "optimizer: gradient '", grads[i].first.name,
              "' has ", grads[i].second.size(), " values for ", size, " parameters");
    const int64_t from = std::max(first, begin), to = std::min(first + size, end);
    if (from < to) {
      const Shape shape{to - from};
      const int64_t local = from - begin;
      pieces_.push_back({TensorView<float>(params[i].second.data() + (from - first), shape),
                         ConstTensorView<float>(grads[i].second.data() + (from - first), shape),
                         TensorView<float>(moments_[0].data() + local, shape),
                         TensorView<float>(moments_[1].data() + local, shape),
                         params[i].first.decayed});
    }
    first += size;
  }
}

void AdamWOptimizer::Update(int64_t step, double learning_rate, float grad_scale,
                            const ExecutionContext& ctx) {
  AdamWUpdateAll(pieces_, step, learning_rate, options_, grad_scale, ctx);
}

void AdamWOptimizer::LoadMoments(std::span<const float> first, std::span<const float> second) {
  QKV_CHECK(
      static_cast<int64_t>(first.size()) >= end_ && static_cast<int64_t>(second.size()) >= end_,
      "optimizer: moments of ", first.size(), " values for a shard ending at ", end_);
  std::copy(first.begin() + begin_, first.begin() + end_, moments_[0].begin());
  std::copy(second.begin() + begin_, second.begin() + end_, moments_[1].begin());
}

}  // namespace qkv::train
