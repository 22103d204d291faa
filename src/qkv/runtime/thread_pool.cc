#include "qkv/runtime/thread_pool.h"

#include <omp.h>
#include <sched.h>
#include <unistd.h>

#include <cstdlib>

#include "qkv/core/check.h"

namespace qkv {

ThreadPool::ThreadPool(int num_threads) : num_threads_(num_threads) {
  QKV_CHECK(num_threads >= 1, "the number of threads must be >= 1, got ", num_threads);
  // A fixed team size and no nesting: results are bitwise reproducible for a given thread
  // count, and library calls made inside our parallel regions stay on their thread.
  omp_set_dynamic(0);
  omp_set_max_active_levels(1);
  // Libraries that read the team size themselves (oneDNN) see the same number.
  omp_set_num_threads(num_threads);
}

void ThreadPool::UseBoundedSpinning(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") != nullptr || std::getenv("GOMP_SPINCOUNT") != nullptr) {
    return;
  }
  setenv("GOMP_SPINCOUNT", kSpinCount, 1);
  execv("/proc/self/exe", argv);
}

int ThreadPool::HardwareThreads() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return 1;
  const int count = CPU_COUNT(&set);
  return count > 0 ? count : 1;
}

}  // namespace qkv
