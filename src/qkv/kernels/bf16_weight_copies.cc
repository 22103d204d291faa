#include "qkv/kernels/bf16_weight_copies.h"

#include <algorithm>

#include "qkv/kernels/cpu/vector_kernels.h"
#include "qkv/runtime/parallel_for.h"

namespace qkv {

namespace {

void Round(const float* weight, std::vector<uint16_t>& copy, const ExecutionContext& ctx) {
  const kernels::VectorKernels& vector = kernels::VectorKernelsFor(ctx.isa);
  constexpr int64_t kChunk = 4096;
  const int64_t size = static_cast<int64_t>(copy.size());
  ParallelFor((size + kChunk - 1) / kChunk, ctx,
              [&](int64_t begin, int64_t end, int) {
                const int64_t from = begin * kChunk, to = std::min(size, end * kChunk);
                vector.to_bf16(weight + from, copy.data() + from, to - from);
              },
              16);
}

}  // namespace

void Bf16WeightCopies::Add(ConstTensorView<float> weight, const ExecutionContext& ctx) {
  QKV_CHECK(weight.shape().rank() == 2, "bf16 weight copies: a weight matrix has rank 2, got ",
            weight.shape().ToString());
  Copy& copy = copies_[weight.data()];
  if (!copy.values.empty()) return;
  copy.cols = weight.dim(1);
  copy.values.resize(static_cast<size_t>(weight.size()));
  Round(weight.data(), copy.values, ctx);
  bytes_ += copy.values.size() * sizeof(uint16_t);
}

void Bf16WeightCopies::Refresh(const ExecutionContext& ctx) {
  for (auto& [weight, copy] : copies_) Round(weight, copy.values, ctx);
}

const uint16_t* Bf16WeightCopies::Find(const float* weight, int64_t row_stride,
                                       int64_t elements) const {
  const auto found = copies_.find(weight);
  if (found == copies_.end() || found->second.cols != row_stride ||
      static_cast<int64_t>(found->second.values.size()) < elements) {
    return nullptr;
  }
  return found->second.values.data();
}

}  // namespace qkv
