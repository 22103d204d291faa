// Communicator: the few collectives data-parallel training needs (docs/distributed.md), over
// MPI when qkv is built with it (QKV_WITH_MPI) and launched by mpirun, otherwise a world of one
// process where every collective is the identity. Every collective is nonblocking underneath
// and waited on with a deadline: when it does not complete within the timeout (a rank died or
// hangs), it throws CollectiveTimeout naming the collective; the program then ends the job
// with Abort (the command line does), so it stops instead of hanging.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "qkv/core/check.h"

namespace qkv {

// A collective that did not complete within the communicator's timeout.
class CollectiveTimeout : public Error {
 public:
  using Error::Error;
};

class Communicator {
 public:
  // A world of one process (no MPI).
  Communicator() = default;
  virtual ~Communicator() = default;
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  // Initialises MPI (MPI_Init_thread, funneled) when this process was started by mpirun (Open
  // MPI's or a PMI launcher's environment variables are set) and qkv was built with MPI;
  // otherwise returns a world of one. MPI is finalised when the communicator is destroyed.
  // timeout_seconds (> 0): the deadline of every collective.
  static std::unique_ptr<Communicator> FromEnvironment(double timeout_seconds);

  // Whether MPI support was compiled in.
  static bool MpiAvailable();

  int rank() const { return rank_; }
  int size() const { return size_; }
  bool distributed() const { return size_ > 1; }
  bool is_root() const { return rank_ == 0; }

  // In-place sums over all ranks (every rank gets the result). Float data travels in buckets of
  // at most kBucketFloats values, several in flight at once.
  static constexpr int64_t kBucketFloats = int64_t{1} << 20;  // 4 MiB
  virtual void AllreduceSum(std::span<float> /*values*/, const char* /*what*/) const {}
  virtual void AllreduceSum(std::span<double> /*values*/, const char* /*what*/) const {}
  // In-place elementwise maximum over all ranks.
  virtual void AllreduceMax(std::span<uint64_t> /*values*/, const char* /*what*/) const {}
  // all: the whole array on every rank; rank r's part is all[displacements[r], + counts[r]) and
  // is already in place. counts, displacements: size() entries each.
  virtual void AllgatherInPlace(std::span<float> /*all*/, std::span<const int> /*counts*/,
                                std::span<const int> /*displacements*/,
                                const char* /*what*/) const {}
  // Rank r's `mine` lands in root_all[displacements[r], + counts[r]) on rank 0 (root_all is
  // used only on rank 0).
  virtual void GatherToRoot(std::span<const float> mine, std::span<float> root_all,
                            std::span<const int> /*counts*/, std::span<const int> /*displacements*/,
                            const char* /*what*/) const;
  // Prints "qkv: error (rank r of n): message" and ends every process of the job with `code`.
  // For programs only (the command line): library code throws instead.
  [[noreturn]] virtual void Abort(const std::string& message, int code) const;

 protected:
  int rank_ = 0;
  int size_ = 1;
};

}  // namespace qkv
