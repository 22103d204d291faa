// The qkv side of bench/compare/run.sh: each subcommand measures one thing and prints one JSON
// object on stdout (progress and errors go to stderr). The PyTorch side, torch_compare.py,
// prints the same keys for the same measurement, so summarize.py can put them side by side.
//
//   qkv_compare_bench info
//   qkv_compare_bench train --layers 4 --heads 4 --dim 128 --vocab 65 --context 64 --batch 12
//                           --steps 30 --warmup 5 --threads 2 [--attention-timing]
//   qkv_compare_bench generate --layers 4 --heads 4 --dim 128 --vocab 65 --context 64
//                              --prompt 8 --tokens 200 --runs 3 --threads 2
//
// Training uses random tokens, uniform over the vocabulary, so no corpus is needed for any
// shape; the step (sampling windows, forward, backward, clipping, AdamW) is the one
// train::Trainer runs for `qkv train`, with nanoGPT's shakespeare_char optimizer settings.
// Exit status: 0 success, 1 runtime failure, 2 bad flag or value.
#include <oneapi/dnnl/dnnl.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <vector>

#include "qkv/core/arena.h"
#include "qkv/core/check.h"
#include "qkv/core/random.h"
#include "qkv/core/tensor.h"
#include "qkv/infer/generator.h"
#include "qkv/infer/sampler.h"
#include "qkv/kernels/cpu/gemm.h"
#include "qkv/kernels/cpu/matmul_bf16.h"
#include "qkv/model/checkpoint.h"
#include "qkv/model/model_config.h"
#include "qkv/model/parameters.h"
#include "qkv/model/transformer.h"
#include "qkv/ops/attention.h"
#include "qkv/ops/flash_attention.h"
#include "qkv/runtime/execution_context.h"
#include "qkv/runtime/thread_pool.h"
#include "qkv/train/language_model_task.h"
#include "qkv/train/trainer.h"

namespace qkv::bench {
namespace {

using Clock = std::chrono::steady_clock;

double MillisecondsSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

double Median(std::vector<double> values) {
  QKV_CHECK(!values.empty(), "median of no values");
  std::sort(values.begin(), values.end());
  const size_t mid = values.size() / 2;
  return values.size() % 2 == 1 ? values[mid] : 0.5 * (values[mid - 1] + values[mid]);
}

// A field of /proc/self/status in KiB (VmRSS, VmHWM), or -1 where it cannot be read.
int64_t ProcStatusKib(const std::string& field) {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(field + ":", 0) == 0) {
      return std::strtoll(line.c_str() + field.size() + 1, nullptr, 10);
    }
  }
  return -1;
}

// Peak memory is reported as growth over the resident size at the start of the measurement,
// the same way on both sides, so that what each runtime maps when it loads (PyTorch's
// hundreds of MiB, the qkv binary's few) is not counted. Writing 5 to clear_refs resets VmHWM.
class PeakMemory {
 public:
  PeakMemory() {
    std::ofstream("/proc/self/clear_refs") << "5";
    start_kib_ = ProcStatusKib("VmRSS");
  }
  double GrowthMib() const {
    const int64_t peak = ProcStatusKib("VmHWM");
    return peak < 0 || start_kib_ < 0 ? -1.0 : static_cast<double>(peak - start_kib_) / 1024.0;
  }

 private:
  int64_t start_kib_ = -1;
};

struct ModelFlags {
  int64_t layers = 4, heads = 4, dim = 128, vocab = 65, context = 64;
  // "gpt2", or "llama": RoPE, RMSNorm, SwiGLU (hidden --ffn-dim), no biases, an untied head,
  // --kv-heads key/value heads (bench/compare/llama_generate.sh).
  std::string arch = "gpt2";
  int64_t kv_heads = 0, ffn_dim = 0;
  uint64_t seed = 1337;
  int threads = 2;
  std::string attention = "auto";  // the model's attention kernel (model::AttentionImpl)
};

void AddModelFlags(CLI::App* command, ModelFlags& flags) {
  command->add_option("--layers", flags.layers, "Transformer blocks")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1024}));
  command->add_option("--heads", flags.heads, "Attention heads (must divide --dim)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1024}));
  command->add_option("--dim", flags.dim, "Model width C")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{65536}));
  command->add_option("--vocab", flags.vocab, "Vocabulary size")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{2}, int64_t{1} << 24));
  command->add_option("--context", flags.context, "Context length (and the training window)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  command->add_option("--seed", flags.seed, "Seed of the weights and the data")
      ->capture_default_str();
  command->add_option("--threads", flags.threads, "Threads")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  command->add_option("--attention", flags.attention, "Attention kernel: auto, simple or flash")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "simple", "flash"}));
  command->add_option("--arch", flags.arch, "gpt2, or llama (RoPE, RMSNorm, SwiGLU, untied head)")
      ->capture_default_str()
      ->check(CLI::IsMember({"gpt2", "llama"}));
  command->add_option("--kv-heads", flags.kv_heads, "Key/value heads (0: --heads)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1024}));
  command->add_option("--ffn-dim", flags.ffn_dim, "Feed-forward hidden size (0: 4 x --dim)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 20));
}

// GPT-2's architecture (learned positions, pre-LayerNorm with biases, tanh-GELU, tied head),
// no dropout: the shakespeare_char recipe and GPT-2 small differ only in these sizes. With
// --arch llama, Llama's (the same as bench/compare/torch_llama.py's).
model::Model CreateGpt2(const ModelFlags& flags) {
  model::ModelConfig config;
  config.vocab_size = flags.vocab;
  config.context = flags.context;
  config.num_layers = flags.layers;
  config.num_heads = flags.heads;
  config.num_kv_heads = flags.kv_heads;
  config.ffn_dim = flags.ffn_dim;
  config.width = flags.dim;
  if (flags.arch == "llama") {
    config.position = model::PositionEncoding::kRope;
    config.norm = model::NormKind::kRmsNorm;
    config.ffn = model::FfnKind::kSwiGlu;
    config.bias = false;
    config.tie_embeddings = false;
    config.norm_eps = 1e-6;
  }
  config.attention = model::ParseAttentionImpl(flags.attention);
  model::Model model = model::CreateModel(config);
  Random init_random(flags.seed);
  model::InitializeParameters(model.config, model.params, init_random);
  return model;
}

// 6N + 12·L·C·T (PaLM appendix B, nanoGPT's estimate_mfu): N every parameter once (the head
// is tied to wte), causal attention counted in full (not halved).
double TrainingFlopsPerToken(const model::ModelConfig& config, int64_t seq_len) {
  return 6.0 * static_cast<double>(model::CountParameters(config)) +
         12.0 * static_cast<double>(config.num_layers * config.width * seq_len);
}

nlohmann::json ModelJson(const model::ModelConfig& config) {
  return {{"layers", config.num_layers},  {"heads", config.num_heads},
          {"dim", config.width},          {"vocab", config.vocab_size},
          {"context", config.context},    {"parameters", model::CountParameters(config)},
          {"kv_heads", config.kv_heads()}};
}

struct TrainFlags {
  ModelFlags model;
  int64_t batch = 12, steps = 30, warmup = 5, data_tokens = 0;
  bool attention_timing = false;
  std::string precision = "fp32";
};

// One layer's attention core (after the QKV projection, before the output projection), forward
// + backward, for the simple op and the flash kernel at the model's shape: the part of a
// training step that grows as T². Medians over `repeats` runs after one warm-up run.
nlohmann::json TimeAttentionCore(const model::ModelConfig& config, int64_t batch, int64_t seq_len,
                                 const ThreadPool& pool, int repeats) {
  const Shape shape{batch, seq_len, config.width};  // (B, T, C) for all eight
  Tensor<float> q(shape), k(shape), v(shape), d_output(shape), output(shape), d_q(shape),
      d_k(shape), d_v(shape);
  Random random(7);
  for (auto* tensor : {&q, &k, &v, &d_output}) random.FillNormal(tensor->view(), 0.0, 1.0);
  const ops::AttentionMask mask{true};
  const int64_t heads = config.num_heads;
  auto time_median = [&](auto&& run) {
    run();
    std::vector<double> times;
    for (int r = 0; r < repeats; ++r) {
      const auto start = Clock::now();
      run();
      times.push_back(MillisecondsSince(start));
    }
    return Median(times);
  };

  double simple_ms = 0, flash_ms = 0;
  {
    // The same scratch as the simple op's backward asks for: one (T, T) tile per thread.
    Arena scratch(static_cast<size_t>(pool.num_threads()) * seq_len * seq_len * sizeof(float));
    const ExecutionContext ctx{&pool, &scratch};
    Tensor<float> probs(Shape{batch, heads, seq_len, seq_len});  // (B, H, T, T)
    simple_ms = time_median([&] {
      ops::AttentionForward<float>(q.view(), k.view(), v.view(), heads, mask, output.view(),
                                   probs.view(), ctx);
      ops::AttentionBackward<float>(d_output.view(), q.view(), k.view(), v.view(), probs.view(),
                                    heads, d_q.view(), d_k.view(), d_v.view(), ctx);
    });
  }
  {
    Arena scratch(
        ops::FlashAttentionScratchBytes<float>(batch, heads, seq_len, pool.num_threads()));
    const ExecutionContext ctx{&pool, &scratch};
    Tensor<float> log_sum_exp(Shape{batch, heads, seq_len});  // (B, H, T)
    flash_ms = time_median([&] {
      ops::FlashAttentionForward<float>(q.view(), k.view(), v.view(), heads, mask, output.view(),
                                        log_sum_exp.view(), ctx);
      ops::FlashAttentionBackward<float>(d_output.view(), q.view(), k.view(), v.view(),
                                         output.view(), log_sum_exp.view(), heads, mask, d_q.view(),
                                         d_k.view(), d_v.view(), ctx);
    });
  }
  return {{"per_layer_simple_ms", simple_ms},
          {"per_layer_flash_ms", flash_ms},
          {"all_layers_simple_ms", simple_ms * static_cast<double>(config.num_layers)},
          {"all_layers_flash_ms", flash_ms * static_cast<double>(config.num_layers)},
          {"repeats", repeats}};
}

nlohmann::json RunTrainBench(const TrainFlags& flags) {
  const ThreadPool pool(flags.model.threads);
  nlohmann::json result;
  model::ModelConfig config;
  {
    PeakMemory memory;
    model::Model model = CreateGpt2(flags.model);
    config = model.config;
    const int64_t window = config.context + 1;
    // Enough windows that consecutive batches rarely overlap, as in a real corpus.
    const int64_t data_tokens = flags.data_tokens > 0
                                    ? flags.data_tokens
                                    : std::max<int64_t>(200'000, 8 * flags.batch * window);
    QKV_CHECK(data_tokens >= window, "--data-tokens ", data_tokens, " is less than one window of ",
              window);
    std::vector<int32_t> tokens(static_cast<size_t>(data_tokens));  // (data_tokens)
    Random data_random(flags.model.seed + 1);
    for (int32_t& token : tokens) {
      token = static_cast<int32_t>(data_random.Below(static_cast<uint64_t>(config.vocab_size)));
    }

    train::TrainOptions options;
    options.steps = flags.warmup + flags.steps;
    options.schedule = {1e-3, 1e-4, 100, 2000};
    options.adamw = {0.9, 0.99, 1e-8, 0.1};
    options.grad_clip = 1.0;
    options.seed = flags.model.seed;
    options.precision = ParsePrecision(flags.precision);
    QKV_CHECK(options.precision == Precision::kFloat32 || Bf16Unavailable().empty(),
              Bf16Unavailable());
    train::LanguageModelTask task(model, flags.batch, config.context, tokens, tokens);
    train::Trainer trainer(task, options, pool);

    std::vector<double> step_ms;  // timed steps only
    int64_t tokens_per_step = 0;
    double first_loss = 0, last_loss = 0;
    for (int64_t step = 0; step < flags.warmup + flags.steps; ++step) {
      const auto start = Clock::now();
      const train::StepResult step_result = trainer.Step();
      tokens_per_step = step_result.tokens;
      const double ms = MillisecondsSince(start);
      if (step == 0) first_loss = step_result.loss;
      last_loss = step_result.loss;
      if (step >= flags.warmup) step_ms.push_back(ms);
      std::fprintf(stderr, "qkv train: step %lld/%lld %.1f ms loss %.4f\n",
                   static_cast<long long>(step + 1),
                   static_cast<long long>(flags.warmup + flags.steps), ms, step_result.loss);
    }
    const double median_ms = Median(step_ms);
    result = {{"implementation", "qkv"},
              {"what", "train"},
              {"threads", pool.num_threads()},
              {"model", ModelJson(config)},
              {"batch", flags.batch},
              {"seq_len", config.context},
              {"warmup_steps", flags.warmup},
              {"precision", flags.precision},
              {"bf16_matrix_isa", std::string(Bf16MatrixIsa())},
              {"step_ms", step_ms},
              {"step_ms_median", median_ms},
              {"tokens_per_step", tokens_per_step},
              {"tokens_per_s", static_cast<double>(tokens_per_step) / (median_ms / 1000.0)},
              {"flops_per_token", TrainingFlopsPerToken(config, config.context)},
              {"attention_kernel", model::SelfAttentionConfigFor(config, config.context).kernel ==
                                           layers::AttentionKernel::kFlash
                                       ? "flash"
                                       : "simple"},
              {"first_loss", first_loss},
              {"last_loss", last_loss},
              {"peak_memory_mib", memory.GrowthMib()}};
  }
  // After the trainer is gone, so that its activations do not share the memory with these.
  if (flags.attention_timing) {
    result["attention"] = TimeAttentionCore(config, flags.batch, config.context, pool,
                                            static_cast<int>(std::max<int64_t>(1, flags.steps)));
  }
  return result;
}

struct GenerateFlags {
  ModelFlags model;
  int64_t prompt = 8, tokens = 200, runs = 3, warmup_runs = 1;
  // Prompt processing (the prefill of a random prompt of this many tokens and the choice of the
  // token after it), timed after the generation runs; 0: not measured.
  int64_t prompt_processing = 0;
  // Where to save the benchmark's model (its checkpoint layout: Hugging Face Llama's for
  // --arch llama), so that another engine runs the same weights (bench/compare/llamacpp.sh).
  std::string save_dir;
  // "fp32", or "bf16": decode with bfloat16 copies of the weights (Generator::UseBf16Weights).
  std::string precision = "fp32";
};

std::vector<int32_t> RandomTokens(int64_t count, int64_t vocab, uint64_t seed) {
  std::vector<int32_t> tokens(static_cast<size_t>(count));  // (count)
  Random random(seed);
  for (int32_t& token : tokens) {
    token = static_cast<int32_t>(random.Below(static_cast<uint64_t>(vocab)));
  }
  return tokens;
}

nlohmann::json RunGenerateBench(const GenerateFlags& flags) {
  const ThreadPool pool(flags.model.threads);
  PeakMemory memory;
  const model::Model model = CreateGpt2(flags.model);
  if (!flags.save_dir.empty()) model::SaveModel(flags.save_dir, model);
  const std::vector<int32_t> prompt =
      RandomTokens(flags.prompt, flags.model.vocab, flags.model.seed + 2);  // (prompt)
  infer::Generator generator(model, pool);
  if (flags.precision == "bf16") generator.UseBf16Weights();
  infer::SamplerOptions greedy;
  greedy.temperature = 0.0;
  std::vector<double> run_ms;
  std::vector<int32_t> generated;  // (tokens) of the last run: every run is the same
  for (int64_t run = 0; run < flags.warmup_runs + flags.runs; ++run) {
    const auto start = Clock::now();
    generated = generator.Generate(prompt, flags.tokens, greedy);
    const double ms = MillisecondsSince(start);
    QKV_CHECK(static_cast<int64_t>(generated.size()) == flags.tokens, "generated ",
              generated.size(), " tokens instead of ", flags.tokens);
    if (run >= flags.warmup_runs) run_ms.push_back(ms);
    std::fprintf(stderr, "qkv generate: run %lld: %lld tokens in %.1f ms\n",
                 static_cast<long long>(run + 1), static_cast<long long>(flags.tokens), ms);
  }
  const double median_ms = Median(run_ms);
  nlohmann::json prompt_processing = nullptr;
  if (flags.prompt_processing > 0) {
    const std::vector<int32_t> long_prompt = RandomTokens(
        flags.prompt_processing, flags.model.vocab, flags.model.seed + 3);  // (prompt_processing)
    std::vector<double> prefill_ms;
    for (int64_t run = 0; run < flags.warmup_runs + flags.runs; ++run) {
      const auto start = Clock::now();
      generator.Generate(long_prompt, 1, greedy);  // the prefill, then one token sampled
      const double ms = MillisecondsSince(start);
      if (run >= flags.warmup_runs) prefill_ms.push_back(ms);
      std::fprintf(stderr, "qkv prompt processing: run %lld: %lld tokens in %.1f ms\n",
                   static_cast<long long>(run + 1), static_cast<long long>(flags.prompt_processing),
                   ms);
    }
    prompt_processing = {{"tokens", flags.prompt_processing},
                         {"run_ms", prefill_ms},
                         {"tokens_per_s", static_cast<double>(flags.prompt_processing) /
                                              (Median(prefill_ms) / 1000.0)}};
  }
  return {{"implementation", "qkv"},
          {"what", "generate"},
          {"threads", pool.num_threads()},
          {"model", ModelJson(model.config)},
          {"prompt_tokens", flags.prompt},
          {"new_tokens", flags.tokens},
          {"window_slides", generator.window_slides()},
          {"precision", flags.precision},
          {"prompt", prompt},
          {"generated", generated},
          {"prompt_processing", prompt_processing},
          {"run_ms", run_ms},
          {"run_ms_median", median_ms},
          {"tokens_per_s", static_cast<double>(flags.tokens) / (median_ms / 1000.0)},
          {"flops_per_token", 2.0 * static_cast<double>(model::CountParameters(model.config))},
          {"kv_cache_bytes_per_token", static_cast<double>(generator.cache_bytes()) /
                                           static_cast<double>(model.config.context)},
          {"peak_memory_mib", memory.GrowthMib()}};
}

// The measured rate of one large product, float32 (oneDNN's sgemm) and, where the CPU has bf16
// matrix instructions, bfloat16 with float32 accumulation (oneDNN's matmul primitive, the
// kernels `--precision bf16` runs): the denominators of MFU in each precision.
nlohmann::json MatmulPeak(int threads) {
  const ThreadPool pool(threads);
  const ExecutionContext ctx{&pool};
  constexpr int64_t kSize = 2048;
  constexpr int kRuns = 10;
  std::vector<float> a(kSize * kSize, 0.5f), b(kSize * kSize, 0.25f), c(kSize * kSize);
  std::vector<uint16_t> a16(a.size(), 0x3F00), b16(b.size(), 0x3E80);  // 0.5, 0.25
  const auto gflops = [&](const auto& product) {
    product();  // warm-up: JIT code, page faults
    std::vector<double> ms;
    for (int run = 0; run < kRuns; ++run) {
      const auto start = Clock::now();
      product();
      ms.push_back(MillisecondsSince(start));
    }
    return 2.0 * kSize * kSize * kSize / (Median(ms) / 1000.0) / 1e9;
  };
  nlohmann::json result = {
      {"implementation", "qkv"}, {"what", "matmul_peak"}, {"threads", threads}, {"m_n_k", kSize}};
  result["fp32_gflops"] = gflops([&] {
    kernels::Gemm<float>(kernels::Transpose::kNo, kernels::Transpose::kNo, kSize, kSize, kSize,
                         1.0f, a.data(), kSize, b.data(), kSize, 0.0f, c.data(), kSize, ctx);
  });
  result["bf16_matrix_isa"] = std::string(Bf16MatrixIsa());
  if (Bf16Unavailable().empty()) {
    result["bf16_gflops"] = gflops([&] {
      kernels::Matmul(kSize, kSize, kSize, 1.0, {a16.data(), DataType::kBFloat16, kSize},
                      {b16.data(), DataType::kBFloat16, kSize}, 0.0,
                      {c.data(), DataType::kFloat32, kSize}, ctx);
    });
    result["bf16_implementation"] = kernels::MatmulBf16Implementation(
        kSize, kSize, kSize, kernels::Transpose::kNo, kernels::Transpose::kNo);
  }
  return result;
}

nlohmann::json Info() {
  const dnnl_version_t* version = dnnl_version();
  const char* wait_policy = std::getenv("OMP_WAIT_POLICY");
  const char* spin_count = std::getenv("GOMP_SPINCOUNT");
  return {{"implementation", "qkv"},
          {"gemm", "oneDNN dnnl_sgemm"},
          {"dnnl_version", std::to_string(version->major) + "." + std::to_string(version->minor) +
                               "." + std::to_string(version->patch)},
          {"dnnl_hash", version->hash},
          {"dnnl_cpu_runtime", version->cpu_runtime == DNNL_RUNTIME_OMP ? "OpenMP" : "other"},
          {"omp_wait_policy", wait_policy != nullptr ? wait_policy : "(unset)"},
          {"gomp_spincount", spin_count != nullptr ? spin_count : "(unset)"},
          {"hardware_threads", ThreadPool::HardwareThreads()}};
}

}  // namespace
}  // namespace qkv::bench

int main(int argc, char** argv) {
  qkv::ThreadPool::UseBoundedSpinning(argv);  // as the qkv binary: the same waiting
  using qkv::bench::GenerateFlags;
  using qkv::bench::TrainFlags;
  CLI::App app{"qkv side of bench/compare/run.sh: one JSON object per measurement on stdout"};
  app.require_subcommand(1, 1);
  app.add_subcommand("info", "oneDNN version and threading settings");
  int peak_threads = 2;
  CLI::App* matmul_peak = app.add_subcommand(
      "matmul-peak", "GFLOP/s of a 2048^3 product in float32 and (where the CPU can) bfloat16");
  matmul_peak->add_option("--threads", peak_threads, "Threads")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));

  TrainFlags train_flags;
  CLI::App* train = app.add_subcommand("train", "Median training step time on random tokens");
  qkv::bench::AddModelFlags(train, train_flags.model);
  train->add_option("--batch", train_flags.batch, "Windows per step")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  train->add_option("--steps", train_flags.steps, "Timed steps")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  train->add_option("--warmup", train_flags.warmup, "Untimed steps first")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 20));
  train
      ->add_option("--data-tokens", train_flags.data_tokens,
                   "Random tokens to sample windows from (0: max(200000, 8 batches))")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 32));
  train->add_option("--precision", train_flags.precision, "fp32, or bf16 (matrix products)")
      ->check(CLI::IsMember({"fp32", "bf16"}));
  train->add_flag("--attention-timing", train_flags.attention_timing,
                  "Also time every layer's attention core alone (simple op and flash kernel)");

  GenerateFlags generate_flags;
  CLI::App* generate =
      app.add_subcommand("generate", "Greedy generation with the KV cache (infer::Generator)");
  qkv::bench::AddModelFlags(generate, generate_flags.model);
  generate->add_option("--prompt", generate_flags.prompt, "Random prompt tokens")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  generate->add_option("--tokens", generate_flags.tokens, "New tokens per run")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 24));
  generate->add_option("--runs", generate_flags.runs, "Timed runs")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1000}));
  generate->add_option("--warmup-runs", generate_flags.warmup_runs, "Untimed runs first")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1000}));
  generate
      ->add_option("--prompt-processing", generate_flags.prompt_processing,
                   "Also time the prefill of a random prompt of this many tokens (0: no)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 20));
  generate
      ->add_option("--precision", generate_flags.precision,
                   "fp32, or bf16: decode with bfloat16 copies of the weights")
      ->capture_default_str()
      ->check(CLI::IsMember({"fp32", "bf16"}));
  generate->add_option("--save", generate_flags.save_dir,
                       "Save the model into this directory first (its checkpoint layout)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& success) {
    return app.exit(success);
  } catch (const CLI::ParseError& error) {
    app.exit(error);
    return 2;
  }
  for (const qkv::bench::ModelFlags* flags : {&train_flags.model, &generate_flags.model}) {
    if (flags->dim % flags->heads != 0) {
      std::fprintf(stderr, "qkv_compare_bench: --dim %lld is not divisible by --heads %lld\n",
                   static_cast<long long>(flags->dim), static_cast<long long>(flags->heads));
      return 2;
    }
  }
  try {
    nlohmann::json result;
    if (train->parsed()) {
      result = qkv::bench::RunTrainBench(train_flags);
    } else if (generate->parsed()) {
      result = qkv::bench::RunGenerateBench(generate_flags);
    } else if (matmul_peak->parsed()) {
      result = qkv::bench::MatmulPeak(peak_threads);
    } else {
      result = qkv::bench::Info();
    }
    std::printf("%s\n", result.dump().c_str());
    return 0;
  } catch (const qkv::Error& error) {
    std::fprintf(stderr, "qkv_compare_bench: error: %s\n", error.what());
    return 1;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "qkv_compare_bench: unexpected error: %s\n", error.what());
    return 1;
  }
}
