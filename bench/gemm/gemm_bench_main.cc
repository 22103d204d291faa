// GEMM benchmark harness: times the matrix products of one training step of the models qkv
// targets, through one library (the linked GemmBackend), and checks that library against a
// naive loop first. Output is CSV on stdout ('#' lines are metadata); run_gemm_bench.sh runs
// every library in alternation and summarize_gemm_bench.py turns the CSVs into docs/gemm.md
// tables.
//
// Usage: gemm_bench_<lib> [--threads N] [--samples S] [--min_sample_ms MS] [--round R]
//                         [--filter SUBSTRING] [--check_only]

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "gemm_backend.h"

namespace qkv::bench {
namespace {

// One GEMM call site of a training step. `count` is how many times the step makes this call
// (per layer for layer groups); the aggregate GFLOP/s weights each case by it.
struct Case {
  std::string group;
  std::string name;
  GemmArgs args;  // Pointers are filled in when buffers are allocated.
  int64_t count = 1;
};

GemmArgs Args(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, int64_t lda,
              int64_t ldb, float beta, int64_t ldc) {
  GemmArgs args;
  args.trans_a = trans_a;
  args.trans_b = trans_b;
  args.m = m;
  args.n = n;
  args.k = k;
  args.alpha = alpha;
  args.lda = lda;
  args.ldb = ldb;
  args.beta = beta;
  args.ldc = ldc;
  return args;
}

// The three GEMMs of a torch.nn.Linear-style layer with weight (out, in), exactly as
// src/qkv/ops/linear.cc issues them.
void AddLinear(const std::string& group, const std::string& name, int64_t rows, int64_t in,
               int64_t out, int64_t count, std::vector<Case>& cases) {
  // forward: y (rows, out) = x (rows, in) · Wᵀ
  cases.push_back(
      {group, name + " fwd", Args(false, true, rows, out, in, 1, in, in, 0, out), count});
  // backward data: dx (rows, in) = dy (rows, out) · W (out, in)
  cases.push_back(
      {group, name + " dX", Args(false, false, rows, in, out, 1, out, in, 0, in), count});
  // backward weight: dW (out, in) += dyᵀ (out, rows) · x (rows, in)
  cases.push_back(
      {group, name + " dW", Args(true, false, out, in, rows, 1, out, in, 1, in), count});
}

// Per-head attention GEMMs as src/qkv/ops/attention.cc issues them: q, k, v, dO are columns of
// a (T, width) activation (leading dimension = width), probabilities are packed (T, T).
// Each shape occurs twice per head per step (forward + backward).
void AddAttention(const std::string& group, int64_t t, int64_t head_dim, int64_t width,
                  int64_t heads, std::vector<Case>& cases) {
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  const std::string tag = " T=" + std::to_string(t);
  // scores = q·kᵀ (fwd), d_probs = dO·vᵀ (bwd)
  cases.push_back({group, "attn QK^T" + tag,
                   Args(false, true, t, t, head_dim, scale, width, width, 0, t), 2 * heads});
  // out = P·v (fwd), d_q = dS·k (bwd)
  cases.push_back({group, "attn PV" + tag,
                   Args(false, false, t, head_dim, t, 1, t, width, 0, width), 2 * heads});
  // d_v = Pᵀ·dO, d_k = dSᵀ·q (bwd)
  cases.push_back({group, "attn P^T dO" + tag,
                   Args(true, false, t, head_dim, t, 1, t, width, 0, width), 2 * heads});
}

std::vector<Case> TrainingStepCases() {
  std::vector<Case> cases;
  // GPT-2 small, batch 4 x context 64: rows = 256, C = 768, 12 heads of 64.
  const int64_t gpt2_rows = 4 * 64;
  AddLinear("gpt2_layer", "gpt2 qkv 768->2304", gpt2_rows, 768, 2304, 1, cases);
  AddLinear("gpt2_layer", "gpt2 attn-out 768->768", gpt2_rows, 768, 768, 1, cases);
  AddLinear("gpt2_layer", "gpt2 fc 768->3072", gpt2_rows, 768, 3072, 1, cases);
  AddLinear("gpt2_layer", "gpt2 proj 3072->768", gpt2_rows, 3072, 768, 1, cases);
  AddAttention("gpt2_layer", 64, 64, 768, 4 * 12, cases);
  AddLinear("gpt2_head", "gpt2 lm-head 768->50257", gpt2_rows, 768, 50257, 1, cases);
  // nanoGPT character model: batch 12 x context 64 = 768 rows, C = 128, vocabulary 65.
  const int64_t char_rows = 12 * 64;
  AddLinear("char", "char qkv 128->384", char_rows, 128, 384, 1, cases);
  AddLinear("char", "char attn-out 128->128", char_rows, 128, 128, 1, cases);
  AddLinear("char", "char fc 128->512", char_rows, 128, 512, 1, cases);
  AddLinear("char", "char proj 512->128", char_rows, 512, 128, 1, cases);
  AddLinear("char", "char head 128->65", char_rows, 128, 65, 1, cases);
  // Longer context: one sequence of 256, 12 heads of 64.
  AddAttention("attn256", 256, 64, 768, 12, cases);
  return cases;
}

struct FreeDeleter {
  void operator()(float* p) const { std::free(p); }
};
using Buffer = std::unique_ptr<float[], FreeDeleter>;

Buffer Allocate(int64_t elements) {
  // 64-byte aligned like qkv's own buffers; aligned_alloc needs a multiple of the alignment.
  const size_t bytes = ((static_cast<size_t>(elements) * sizeof(float) + 63) / 64) * 64;
  return Buffer(static_cast<float*>(std::aligned_alloc(64, std::max<size_t>(bytes, 64))));
}

void FillRandom(float* data, int64_t elements, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  for (int64_t i = 0; i < elements; ++i) data[i] = dist(rng);
}

// Owns the operands of one case; rows x leading dimension for each stored matrix.
struct Operands {
  Buffer a, b, c;
  int64_t c_elements = 0;

  explicit Operands(GemmArgs& args, uint32_t seed) {
    const int64_t a_elements = (args.trans_a ? args.k : args.m) * args.lda;
    const int64_t b_elements = (args.trans_b ? args.n : args.k) * args.ldb;
    c_elements = args.m * args.ldc;
    a = Allocate(a_elements);
    b = Allocate(b_elements);
    c = Allocate(c_elements);
    FillRandom(a.get(), a_elements, seed);
    FillRandom(b.get(), b_elements, seed + 1);
    FillRandom(c.get(), c_elements, seed + 2);
    args.a = a.get();
    args.b = b.get();
    args.c = c.get();
  }
};

double Flops(const GemmArgs& args) { return 2.0 * args.m * args.n * args.k; }

// Reference in double: C = alpha op(A) op(B) + beta C, with beta == 0 ignoring C entirely.
// Also returns, per element, the magnitude alpha·Σ|a||b| + |beta·c| that bounds rounding error.
void NaiveGemm(const GemmArgs& args, const std::vector<float>& c_in, std::vector<double>& out,
               std::vector<double>& magnitude) {
  out.assign(args.m * args.n, 0);
  magnitude.assign(args.m * args.n, 0);
  for (int64_t i = 0; i < args.m; ++i) {
    for (int64_t j = 0; j < args.n; ++j) {
      double sum = 0, abs_sum = 0;
      for (int64_t p = 0; p < args.k; ++p) {
        const double a = args.trans_a ? args.a[p * args.lda + i] : args.a[i * args.lda + p];
        const double b = args.trans_b ? args.b[j * args.ldb + p] : args.b[p * args.ldb + j];
        sum += a * b;
        abs_sum += std::fabs(a * b);
      }
      double value = args.alpha * sum;
      double mag = std::fabs(args.alpha) * abs_sum;
      if (args.beta != 0) {
        value += args.beta * static_cast<double>(c_in[i * args.ldc + j]);
        mag += std::fabs(args.beta * c_in[i * args.ldc + j]);
      }
      out[i * args.n + j] = value;
      magnitude[i * args.n + j] = mag;
    }
  }
}

// Runs one case through the backend and compares with NaiveGemm. For beta == 0, C starts as
// NaN: qkv's contract (and BLAS's) is that C is then not read. Returns the worst error relative
// to the rounding bound's magnitude, or infinity if anything is non-finite.
double CheckCase(GemmBackend& backend, GemmArgs args, uint32_t seed) {
  Operands operands(args, seed);
  if (args.beta == 0) {
    std::fill(args.c, args.c + operands.c_elements, std::numeric_limits<float>::quiet_NaN());
  }
  const std::vector<float> c_in(args.c, args.c + operands.c_elements);
  std::vector<double> expected, magnitude;
  NaiveGemm(args, c_in, expected, magnitude);
  backend.Prepare(args);
  backend.Gemm(args);
  double worst = 0;
  for (int64_t i = 0; i < args.m; ++i) {
    for (int64_t j = 0; j < args.n; ++j) {
      const double got = args.c[i * args.ldc + j];
      if (!std::isfinite(got)) return std::numeric_limits<double>::infinity();
      const double err =
          std::fabs(got - expected[i * args.n + j]) / std::max(magnitude[i * args.n + j], 1e-30);
      worst = std::max(worst, err);
    }
    // Padding between rows of C (ldc > n) must be left alone.
    for (int64_t j = args.n; j < args.ldc; ++j) {
      const float before = c_in[i * args.ldc + j], after = args.c[i * args.ldc + j];
      if (std::memcmp(&before, &after, sizeof(float)) != 0) {
        return std::numeric_limits<double>::infinity();
      }
    }
  }
  return worst;
}

// All four transpose combinations on an odd shape with padded leading dimensions, both beta
// modes, then two real shapes of the GPT-2 layer. A float GEMM's error is bounded by about
// k·eps relative to Σ|a||b|; 1e-5 leaves room above typical sqrt(k)·eps but catches any
// wrong index, transpose, alpha/beta or stride handling (those give errors of order 1).
bool CheckCorrectness(GemmBackend& backend) {
  std::vector<GemmArgs> checks;
  for (const bool ta : {false, true}) {
    for (const bool tb : {false, true}) {
      for (const float beta : {0.0f, 0.25f}) {
        const int64_t m = 37, n = 53, k = 29;
        checks.push_back(
            Args(ta, tb, m, n, k, 0.5f, (ta ? m : k) + 3, (tb ? k : n) + 5, beta, n + 7));
      }
    }
  }
  checks.push_back(Args(false, true, 256, 2304, 768, 1, 768, 768, 0, 2304));   // qkv fwd
  checks.push_back(Args(true, false, 768, 3072, 256, 1, 768, 3072, 1, 3072));  // fc dW
  bool ok = true;
  uint32_t seed = 100;
  for (const GemmArgs& args : checks) {
    const double err = CheckCase(backend, args, seed += 10);
    const bool pass = err < 1e-5;
    ok = ok && pass;
    std::printf(
        "# check %s ta=%d tb=%d m=%ld n=%ld k=%ld lda=%ld ldb=%ld ldc=%ld alpha=%g "
        "beta=%g: max_rel_err=%.3g\n",
        pass ? "PASS" : "FAIL", args.trans_a, args.trans_b, args.m, args.n, args.k, args.lda,
        args.ldb, args.ldc, args.alpha, args.beta, err);
  }
  return ok;
}

double Seconds(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

struct Options {
  int threads = 1;
  int samples = 7;
  double min_sample_ms = 10;
  int round = 0;
  std::string filter;
  bool check_only = false;
};

Options ParseOptions(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    const bool has_value = i + 1 < argc;
    if (flag == "--threads" && has_value) {
      options.threads = std::atoi(argv[++i]);
    } else if (flag == "--samples" && has_value) {
      options.samples = std::atoi(argv[++i]);
    } else if (flag == "--min_sample_ms" && has_value) {
      options.min_sample_ms = std::atof(argv[++i]);
    } else if (flag == "--round" && has_value) {
      options.round = std::atoi(argv[++i]);
    } else if (flag == "--filter" && has_value) {
      options.filter = argv[++i];
    } else if (flag == "--check_only") {
      options.check_only = true;
    } else {
      std::fprintf(stderr, "unknown or incomplete flag: %s\n", flag.c_str());
      std::exit(2);
    }
  }
  return options;
}

int Main(int argc, char** argv) {
  const Options options = ParseOptions(argc, argv);
  std::unique_ptr<GemmBackend> backend(CreateBackend());
  backend->SetNumThreads(options.threads);
  std::printf("# backend: %s\n# threads: %d\n", backend->Describe().c_str(), options.threads);
  if (!CheckCorrectness(*backend)) {
    std::printf("# correctness check FAILED\n");
    return 1;
  }
  if (options.check_only) return 0;

  std::printf("round,threads,group,case,ta,tb,m,n,k,count,prepare_s,median_s,gflops,impl\n");
  uint32_t seed = 1;
  for (Case& c : TrainingStepCases()) {
    if (!options.filter.empty() && c.name.find(options.filter) == std::string::npos) continue;
    Operands operands(c.args, seed += 3);
    const double prepare_s = backend->Prepare(c.args);
    // Warm-up: first-touch page faults, library buffers, thread-pool start, then enough calls
    // to calibrate how many make up one sample of at least min_sample_ms.
    backend->Gemm(c.args);
    auto start = std::chrono::steady_clock::now();
    backend->Gemm(c.args);
    const double one_call = std::max(Seconds(start), 1e-7);
    const int64_t iters =
        std::max<int64_t>(1, static_cast<int64_t>(options.min_sample_ms * 1e-3 / one_call));
    std::vector<double> per_call;
    for (int s = 0; s < options.samples; ++s) {
      start = std::chrono::steady_clock::now();
      for (int64_t i = 0; i < iters; ++i) backend->Gemm(c.args);
      per_call.push_back(Seconds(start) / static_cast<double>(iters));
    }
    std::sort(per_call.begin(), per_call.end());
    const double median = per_call[per_call.size() / 2];
    std::printf("%d,%d,%s,%s,%d,%d,%ld,%ld,%ld,%ld,%.6g,%.6g,%.2f,%s\n", options.round,
                options.threads, c.group.c_str(), c.name.c_str(), c.args.trans_a, c.args.trans_b,
                c.args.m, c.args.n, c.args.k, c.count, prepare_s, median,
                Flops(c.args) / median * 1e-9, backend->ImplName(c.args).c_str());
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace
}  // namespace qkv::bench

int main(int argc, char** argv) { return qkv::bench::Main(argc, argv); }
