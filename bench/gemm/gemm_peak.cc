// FP32 peak of this machine: a loop of independent FMAs with no loads, per core and for all
// requested threads. The GEMM tables quote their GFLOP/s as a percentage of this number.
// Both 512-bit and 256-bit FMAs are timed: on cores that split AVX-512 into two 256-bit halves
// (AMD Zen 4) the two peaks are equal, on full-width cores (Zen 5 server, Intel) 512 doubles it.
//
// Usage: gemm_peak [--threads N]
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

namespace qkv::bench {
namespace {

// Enough independent accumulators to cover FMA latency (4 cycles) x 2 pipes with room to spare.
constexpr int kAccumulators = 12;
constexpr long kIterations = 50'000'000;

__attribute__((target("avx512f"))) float FmaLoop512(long iterations) {
  __m512 acc[kAccumulators];
  for (int i = 0; i < kAccumulators; ++i) acc[i] = _mm512_set1_ps(static_cast<float>(i));
  const __m512 x = _mm512_set1_ps(0.999999f), y = _mm512_set1_ps(1e-7f);
  for (long it = 0; it < iterations; ++it) {
    for (int i = 0; i < kAccumulators; ++i) acc[i] = _mm512_fmadd_ps(acc[i], x, y);
  }
  __m512 sum = acc[0];
  for (int i = 1; i < kAccumulators; ++i) sum = _mm512_add_ps(sum, acc[i]);
  // Summed through memory: GCC 12's _mm512_reduce_add_ps trips -Wuninitialized in its header.
  float lanes[16];
  _mm512_storeu_ps(lanes, sum);
  float total = 0;
  for (float lane : lanes) total += lane;
  return total;  // Keeps the loop live.
}

__attribute__((target("avx2,fma"))) float FmaLoop256(long iterations) {
  __m256 acc[kAccumulators];
  for (int i = 0; i < kAccumulators; ++i) acc[i] = _mm256_set1_ps(static_cast<float>(i));
  const __m256 x = _mm256_set1_ps(0.999999f), y = _mm256_set1_ps(1e-7f);
  for (long it = 0; it < iterations; ++it) {
    for (int i = 0; i < kAccumulators; ++i) acc[i] = _mm256_fmadd_ps(acc[i], x, y);
  }
  __m256 sum = acc[0];
  for (int i = 1; i < kAccumulators; ++i) sum = _mm256_add_ps(sum, acc[i]);
  float lanes[8];
  _mm256_storeu_ps(lanes, sum);
  float total = 0;
  for (float lane : lanes) total += lane;
  return total;
}

// Best of several runs: peak is a capability, so the least-disturbed run is the right one.
double PeakGflops(float (*loop)(long), int lanes, int threads) {
  volatile float sink = 0;
  double best = 0;
  for (int rep = 0; rep < 5; ++rep) {
    std::vector<std::thread> workers;
    std::vector<float> results(threads);
    const auto start = std::chrono::steady_clock::now();
    for (int t = 0; t < threads; ++t) {
      workers.emplace_back([&, t] { results[t] = loop(kIterations); });
    }
    for (std::thread& w : workers) w.join();
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    for (float r : results) sink = sink + r;
    const double flops = 2.0 * lanes * kAccumulators * static_cast<double>(kIterations) * threads;
    best = std::max(best, flops / seconds * 1e-9);
  }
  return best;
}

}  // namespace
}  // namespace qkv::bench

int main(int argc, char** argv) {
  int max_threads = 2;
  if (argc == 3 && std::string(argv[1]) == "--threads") max_threads = std::atoi(argv[2]);
  std::printf("threads,isa,gflops\n");
  for (int threads = 1; threads <= max_threads; ++threads) {
    std::printf("%d,avx512,%.1f\n", threads,
                qkv::bench::PeakGflops(qkv::bench::FmaLoop512, 16, threads));
    std::printf("%d,avx2,%.1f\n", threads,
                qkv::bench::PeakGflops(qkv::bench::FmaLoop256, 8, threads));
  }
  return 0;
}
