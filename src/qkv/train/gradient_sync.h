// How the ranks of data-parallel training (docs/distributed.md) agree on a step, as one
// strategy chosen at construction:
//   - none: one process; the step's loss is the mean of its micro-batches' losses;
//   - all-reduce: every rank trains on its slice of the global batch; gradients (and the
//     loss) are averaged over the ranks weighted by their counted targets, so N ranks x batch
//     B give the numbers of one process x batch N*B; every rank updates every parameter;
//   - sharded: as all-reduce, but each rank's optimizer keeps and updates 1/N of the
//     parameters (and their moments), after which the ranks gather every parameter.
// The trainer's step is the same for all three: zero -> micro-batches -> Synchronize -> clip
// -> update the shard -> ShareParameters.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <utility>
#include <vector>

#include "qkv/runtime/communicator.h"
#include "qkv/train/parameter_list.h"

namespace qkv::train {

// What a rank measured over its micro-batches.
struct LossSums {
  double mean = 0;      // mean of the micro-batch losses
  double weighted = 0;  // sum of loss x counted targets
  double counted = 0;   // targets counted (not ignored)
};

class GradientSync {
 public:
  virtual ~GradientSync() = default;
  virtual int rank() const { return 0; }
  virtual int ranks() const { return 1; }
  // The communicator of the ranks, nullptr for one process.
  virtual const Communicator* communicator() const { return nullptr; }

  // The loss of the step (or evaluation) over all ranks. A collective.
  virtual double ReduceLoss(const LossSums& local) const { return local.mean; }
  // Gives every rank the gradients of the global batch; returns ReduceLoss. A collective.
  virtual double Synchronize(const LossSums& local, const ParameterList& /*grads*/) {
    return ReduceLoss(local);
  }
  // The elements [begin, end) of the concatenated parameters this rank's optimizer updates.
  virtual std::pair<int64_t, int64_t> Shard(int64_t num_params) const { return {0, num_params}; }
  // After each rank updated its shard: every rank gets every parameter. A collective.
  virtual void ShareParameters(const ParameterList& /*params*/) {}
  // The whole of a per-element optimizer state (num_params values) from each rank's shard of
  // it, on rank 0; other ranks get an empty vector. A collective.
  virtual std::vector<float> GatherToRoot(std::span<const float> shard,
                                          int64_t /*num_params*/) const {
    return {shard.begin(), shard.end()};
  }
};

// none for a null communicator or one of a single rank, else all-reduce, or sharded when
// shard_optimizer. comm must outlive the strategy.
std::unique_ptr<GradientSync> MakeGradientSync(const Communicator* comm, bool shard_optimizer,
                                               int64_t num_params);

}  // namespace qkv::train
