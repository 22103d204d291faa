#include "qkv/runtime/communicator.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "qkv/core/check.h"

#ifdef QKV_WITH_MPI
#include <mpi.h>
#include <time.h>

#include <chrono>
#include <vector>
#endif

namespace qkv {

void Communicator::GatherToRoot(std::span<const float> mine, std::span<float> root_all,
                                std::span<const int> /*counts*/, std::span<const int> displacements,
                                const char* /*what*/) const {
  std::copy(mine.begin(), mine.end(), root_all.begin() + displacements[0]);
}

void Communicator::Abort(const std::string& message, int code) const {
  std::fprintf(stderr, "qkv: error (rank %d of %d): %s\n", rank_, size_, message.c_str());
  std::fflush(stderr);
  std::_Exit(code);
}

#ifdef QKV_WITH_MPI

namespace {

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator(int rank, int size, double timeout_seconds) : timeout_(timeout_seconds) {
    rank_ = rank;
    size_ = size;
  }
  ~MpiCommunicator() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Finalize();
  }

  void AllreduceSum(std::span<float> values, const char* what) const override {
    // Buckets: up to kInFlight nonblocking reductions at once, so the network works on one
    // while the next is posted.
    constexpr size_t kInFlight = 4;
    MPI_Request requests[kInFlight];
    size_t posted = 0;
    for (size_t begin = 0; begin < values.size(); begin += kBucketFloats) {
      const size_t count = std::min(values.size() - begin, static_cast<size_t>(kBucketFloats));
      if (posted == kInFlight) {
        Wait(requests[0], what);
        std::move(requests + 1, requests + kInFlight, requests);
        --posted;
      }
      MPI_Iallreduce(MPI_IN_PLACE, values.data() + begin, static_cast<int>(count), MPI_FLOAT,
                     MPI_SUM, MPI_COMM_WORLD, &requests[posted++]);
    }
    for (size_t i = 0; i < posted; ++i) Wait(requests[i], what);
  }

  void AllreduceSum(std::span<double> values, const char* what) const override {
    MPI_Request request;
    MPI_Iallreduce(MPI_IN_PLACE, values.data(), static_cast<int>(values.size()), MPI_DOUBLE,
                   MPI_SUM, MPI_COMM_WORLD, &request);
    Wait(request, what);
  }

  void AllreduceMax(std::span<uint64_t> values, const char* what) const override {
    MPI_Request request;
    MPI_Iallreduce(MPI_IN_PLACE, values.data(), static_cast<int>(values.size()), MPI_UINT64_T,
                   MPI_MAX, MPI_COMM_WORLD, &request);
    Wait(request, what);
  }

  void AllgatherInPlace(std::span<float> all, std::span<const int> counts,
                        std::span<const int> displacements, const char* what) const override {
    MPI_Request request;
    MPI_Iallgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, all.data(), counts.data(),
                    displacements.data(), MPI_FLOAT, MPI_COMM_WORLD, &request);
    Wait(request, what);
  }

  void GatherToRoot(std::span<const float> mine, std::span<float> root_all,
                    std::span<const int> counts, std::span<const int> displacements,
                    const char* what) const override {
    MPI_Request request;
    MPI_Igatherv(mine.data(), static_cast<int>(mine.size()), MPI_FLOAT,
                 rank_ == 0 ? root_all.data() : nullptr, counts.data(), displacements.data(),
                 MPI_FLOAT, 0, MPI_COMM_WORLD, &request);
    Wait(request, what);
  }

  [[noreturn]] void Abort(const std::string& message, int code) const override {
    std::fprintf(stderr, "qkv: error (rank %d of %d): %s\n", rank_, size_, message.c_str());
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, code);
    std::_Exit(code);  // MPI_Abort does not return; this is for the compiler
  }

 private:
  // Polls the request until it completes or the deadline passes. Spins briefly (a collective
  // usually completes within microseconds of the last rank arriving), then sleeps 50 us between
  // tests so a waiting rank leaves its core to the ranks still computing.
  void Wait(MPI_Request& request, const char* what) const {
    const auto deadline = std::chrono::steady_clock::now() +
                          std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                              std::chrono::duration<double>(timeout_));
    for (int polls = 0;; ++polls) {
      int done = 0;
      MPI_Test(&request, &done, MPI_STATUS_IGNORE);
      if (done) return;
      if (polls >= 1000) {
        const timespec pause{0, 50'000};
        nanosleep(&pause, nullptr);
        if ((polls & 63) == 0 && std::chrono::steady_clock::now() > deadline) {
          char message[512];
          std::snprintf(message, sizeof(message),
                        "%s did not complete within %g s (the collective timeout): another rank "
                        "has died or hangs; stopping every rank",
                        what, timeout_);
          throw CollectiveTimeout(message);
        }
      }
    }
  }

  double timeout_;
};

bool LaunchedByMpirun() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE", "PMI_RANK"}) {
    if (std::getenv(name) != nullptr) return true;
  }
  return false;
}

}  // namespace

bool Communicator::MpiAvailable() { return true; }

std::unique_ptr<Communicator> Communicator::FromEnvironment(double timeout_seconds) {
  QKV_CHECK(timeout_seconds > 0, "the collective timeout must be > 0 seconds, got ",
            timeout_seconds);
  if (!LaunchedByMpirun()) return std::make_unique<Communicator>();
  int provided = 0;
  QKV_CHECK(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided) == MPI_SUCCESS,
            "MPI_Init_thread failed");
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  return std::make_unique<MpiCommunicator>(rank, size, timeout_seconds);
}

#else  // QKV_WITH_MPI

bool Communicator::MpiAvailable() { return false; }

std::unique_ptr<Communicator> Communicator::FromEnvironment(double timeout_seconds) {
  QKV_CHECK(timeout_seconds > 0, "the collective timeout must be > 0 seconds, got ",
            timeout_seconds);
  // Ranks that each believed they were alone would all write the same model directory.
  const char* world = std::getenv("OMPI_COMM_WORLD_SIZE");
  QKV_CHECK(world == nullptr || std::strcmp(world, "1") == 0, "started by mpirun with ", world,
            " ranks, but this qkv was built without MPI (configure with -DQKV_WITH_MPI=ON and "
            "Open MPI installed)");
  return std::make_unique<Communicator>();
}

#endif  // QKV_WITH_MPI

}  // namespace qkv
