// Forward + backward time and attention memory of ops::Attention* (the simple version, which
// stores the (B, H, T, T) probabilities) and ops::FlashAttention* (tiled, memory linear in T),
// causal self-attention, batch 1, 12 heads of 64, float. Prints one table row per
// (T, implementation, threads): the median of several timed runs after one warm-up run.
//
// "Memory" is what attention needs beyond its inputs, outputs and gradients: for the simple
// op the probabilities plus the backward scratch (threads × T × T); for flash the saved
// log-sum-exp (B, H, T) plus FlashAttentionScratchBytes.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "qkv/core/random.h"
#include "qkv/core/tensor.h"
#include "qkv/ops/attention.h"
#include "qkv/ops/flash_attention.h"
#include "qkv/runtime/execution_context.h"
#include "qkv/runtime/thread_pool.h"

namespace {

using Clock = std::chrono::steady_clock;

constexpr int64_t kBatch = 1, kHeads = 12, kHeadDim = 64, kWidth = kHeads * kHeadDim;

std::vector<int64_t> ParseList(std::string_view text) {
  std::vector<int64_t> values;
  while (!text.empty()) {
    const size_t comma = text.find(',');
    values.push_back(std::stoll(std::string(text.substr(0, comma))));
    text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
  }
  return values;
}

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

struct Row {
  double milliseconds;
  size_t memory_bytes;
};

// Runs fn once to warm up, then `repeats` times; the median in milliseconds.
template <typename Fn>
double TimeMedian(int repeats, Fn&& fn) {
  fn();
  std::vector<double> times;
  for (int r = 0; r < repeats; ++r) {
    const auto start = Clock::now();
    fn();
    times.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
  }
  return Median(times);
}

struct Inputs {
  explicit Inputs(int64_t seq)
      : q(qkv::Shape{kBatch, seq, kWidth}),
        k(q.shape()),
        v(q.shape()),
        d_output(q.shape()),
        output(q.shape()),
        d_q(q.shape()),
        d_k(q.shape()),
        d_v(q.shape()) {
    qkv::Random random(1);
    for (auto* tensor : {&q, &k, &v, &d_output}) random.FillNormal(tensor->view(), 0.0, 1.0);
  }
  qkv::Tensor<float> q, k, v, d_output, output, d_q, d_k, d_v;
};

Row RunSimple(Inputs& in, int64_t seq, int threads, int repeats) {
  const size_t probs_bytes = static_cast<size_t>(kBatch * kHeads) * seq * seq * sizeof(float);
  const size_t scratch_bytes = static_cast<size_t>(threads) * seq * seq * sizeof(float);
  qkv::ThreadPool pool(threads);
  qkv::Arena scratch(scratch_bytes);
  const qkv::ExecutionContext ctx{&pool, &scratch};
  qkv::Tensor<float> probs(qkv::Shape{kBatch, kHeads, seq, seq});
  const qkv::ops::AttentionMask mask{true};
  const double ms = TimeMedian(repeats, [&] {
    qkv::ops::AttentionForward<float>(in.q.view(), in.k.view(), in.v.view(), kHeads, mask,
                                      in.output.view(), probs.view(), ctx);
    qkv::ops::AttentionBackward<float>(in.d_output.view(), in.q.view(), in.k.view(), in.v.view(),
                                       probs.view(), kHeads, in.d_q.view(), in.d_k.view(),
                                       in.d_v.view(), ctx);
  });
  return {ms, probs_bytes + scratch_bytes};
}

Row RunFlash(Inputs& in, int64_t seq, int threads, int repeats) {
  const size_t scratch_bytes =
      qkv::ops::FlashAttentionScratchBytes<float>(kBatch, kHeads, seq, threads);
  qkv::ThreadPool pool(threads);
  qkv::Arena scratch(scratch_bytes);
  const qkv::ExecutionContext ctx{&pool, &scratch};
  qkv::Tensor<float> lse(qkv::Shape{kBatch, kHeads, seq});
  const qkv::ops::AttentionMask mask{true};
  const double ms = TimeMedian(repeats, [&] {
    qkv::ops::FlashAttentionForward<float>(in.q.view(), in.k.view(), in.v.view(), kHeads, mask,
                                           in.output.view(), lse.view(), ctx);
    qkv::ops::FlashAttentionBackward<float>(in.d_output.view(), in.q.view(), in.k.view(),
                                            in.v.view(), in.output.view(), lse.view(), kHeads, mask,
                                            in.d_q.view(), in.d_k.view(), in.d_v.view(), ctx);
  });
  return {ms, lse.size() * sizeof(float) + scratch_bytes};
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int64_t> lengths = {256, 1024, 4096}, thread_counts = {1, 2};
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string_view flag = argv[i];
    if (flag == "--lengths") {
      lengths = ParseList(argv[i + 1]);
    } else if (flag == "--threads") {
      thread_counts = ParseList(argv[i + 1]);
    } else {
      std::fprintf(stderr, "usage: %s [--lengths 256,1024,4096] [--threads 1,2]\n", argv[0]);
      return 2;
    }
  }
  std::printf("causal attention forward + backward, batch %lld, %lld heads of %lld, float\n",
              static_cast<long long>(kBatch), static_cast<long long>(kHeads),
              static_cast<long long>(kHeadDim));
  std::printf("%6s %8s %7s %12s %14s %9s\n", "T", "impl", "threads", "median ms", "memory MiB",
              "speedup");
  for (const int64_t seq : lengths) {
    Inputs inputs(seq);
    // Fewer repeats where one run takes seconds.
    const int repeats = seq >= 4096 ? 3 : seq >= 1024 ? 5 : 20;
    for (const int64_t threads : thread_counts) {
      const Row simple = RunSimple(inputs, seq, static_cast<int>(threads), repeats);
      const Row flash = RunFlash(inputs, seq, static_cast<int>(threads), repeats);
      for (const auto& [name, row] : {std::pair{"simple", simple}, std::pair{"flash", flash}}) {
        std::printf("%6lld %8s %7lld %12.2f %14.3f %8.2fx\n", static_cast<long long>(seq), name,
                    static_cast<long long>(threads), row.milliseconds,
                    static_cast<double>(row.memory_bytes) / (1 << 20),
                    simple.milliseconds / row.milliseconds);
      }
      std::fflush(stdout);
    }
  }
  return 0;
}
