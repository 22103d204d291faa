#include "qkv/train/gradient_sync.h"

#include <climits>

#include "qkv/core/check.h"

namespace qkv::train {

namespace {

class AllReduceSync : public GradientSync {
 public:
  AllReduceSync(const Communicator& comm, int64_t num_params)
      : comm_(comm), flat_(static_cast<size_t>(num_params)) {}

  int rank() const override { return comm_.rank(); }
  int ranks() const override { return comm_.size(); }
  const Communicator* communicator() const override { return &comm_; }

  // The single-process loss is the mean over every counted target of the global batch, so
  // ranks' means (and gradients) are weighted by their counts.
  double ReduceLoss(const LossSums& local) const override {
    double sums[2] = {local.weighted, local.counted};
    comm_.AllreduceSum(sums, "the loss allreduce");
    return sums[1] > 0 ? sums[0] / sums[1] : 0.0;
  }

  double Synchronize(const LossSums& local, const ParameterList& grads) override {
    double sums[2] = {local.weighted, local.counted};
    comm_.AllreduceSum(sums, "the loss allreduce");
    // Gradients <- the sum over ranks of (counted here / counted everywhere) x gradients here.
    const float scale = static_cast<float>(sums[1] > 0 ? local.counted / sums[1] : 0.0);
    const int64_t n = static_cast<int64_t>(flat_.size());
    CopyToFlat(grads, 0, n, flat_.data());
    for (float& value : flat_) value *= scale;
    comm_.AllreduceSum(std::span<float>(flat_), "the gradient allreduce");
    CopyFromFlat(flat_.data(), 0, n, grads);
    return sums[1] > 0 ? sums[0] / sums[1] : 0.0;
  }

  std::vector<float> GatherToRoot(std::span<const float> shard, int64_t) const override {
    if (!comm_.is_root()) return {};  // every rank holds the whole state; rank 0 writes it
    return {shard.begin(), shard.end()};
  }

 protected:
  const Communicator& comm_;
  std::vector<float> flat_;  // all gradients or parameters, concatenated
};

class ShardedSync final : public AllReduceSync {
 public:
  ShardedSync(const Communicator& comm, int64_t num_params) : AllReduceSync(comm, num_params) {
    QKV_CHECK(num_params <= INT_MAX, "a sharded optimizer supports up to ", INT_MAX,
              " parameters (MPI counts are int), the model has ", num_params);
    // Rank q owns the flat elements [N q / W, N (q + 1) / W).
    const int64_t ranks = comm.size();
    for (int64_t q = 0; q < ranks; ++q) {
      const int64_t begin = num_params * q / ranks, end = num_params * (q + 1) / ranks;
      counts_.push_back(static_cast<int>(end - begin));
      displacements_.push_back(static_cast<int>(begin));
    }
  }

  std::pair<int64_t, int64_t> Shard(int64_t) const override {
    const int64_t begin = displacements_[static_cast<size_t>(comm_.rank())];
    return {begin, begin + counts_[static_cast<size_t>(comm_.rank())]};
  }

  void ShareParameters(const ParameterList& params) override {
    const auto [begin, end] = Shard(0);
    CopyToFlat(params, begin, end, flat_.data() + begin);
    comm_.AllgatherInPlace(std::span<float>(flat_), counts_, displacements_,
                           "the parameter allgather");
    CopyFromFlat(flat_.data(), 0, static_cast<int64_t>(flat_.size()), params);
  }

  std::vector<float> GatherToRoot(std::span<const float> shard, int64_t num_params) const override {
    std::vector<float> whole(comm_.is_root() ? static_cast<size_t>(num_params) : 0);
    comm_.GatherToRoot(shard, whole, counts_, displacements_, "the optimizer-state gather");
    return whole;
  }

 private:
  std::vector<int> counts_, displacements_;  // per rank, for the gathers
};

}  // namespace

std::unique_ptr<GradientSync> MakeGradientSync(const Communicator* comm, bool shard_optimizer,
                                               int64_t num_params) {
  if (comm == nullptr || comm->size() <= 1) return std::make_unique<GradientSync>();
  if (shard_optimizer) return std::make_unique<ShardedSync>(*comm, num_params);
  return std::make_unique<AllReduceSync>(*comm, num_params);
}

}  // namespace qkv::train
