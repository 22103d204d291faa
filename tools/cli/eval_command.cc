// `qkv eval`. The windows are cut exactly as SPEC.md says: N tokens each from token 0, the
// last partial window dropped; in a window, token t predicts token t + 1, so a window of N
// tokens makes N - 1 predictions, and the loss is their mean over all windows.
#include "tools/cli/eval_command.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "qkv/core/check.h"
#include "qkv/io/checkpoint_directory.h"
#include "qkv/io/safetensors.h"
#include "qkv/io/text_file.h"
#include "qkv/model/checkpoint.h"
#include "qkv/model/evaluate.h"
#include "qkv/model/transformer.h"
#include "qkv/ops/cross_entropy.h"
#include "qkv/tokenizer/bpe_tokenizer.h"
#include "qkv/tokenizer/byte_tokenizer.h"
#include "qkv/tokenizer/tokenizer.h"
#include "tools/cli/commands.h"
#include "tools/cli/common_flags.h"
#include "tools/cli/eval_pairs.h"
#include "tools/cli/flag_checks.h"
#include "tools/cli/progress.h"
#include "tools/cli/translation_model.h"

namespace qkv::cli {

namespace {

namespace fs = std::filesystem;

// The model's own tokenizer, or for a directory without one (e.g. a GPT-2 directory saved by
// transformers) the one named by --tokenizer.
std::unique_ptr<tokenizer::Tokenizer> ChooseTokenizer(const EvalCommandOptions& options) {
  const nlohmann::json config = model::ReadConfigJson(options.model);
  if (tokenizer::HasTokenizer(config, options.model)) {
    std::unique_ptr<tokenizer::Tokenizer> own = tokenizer::LoadTokenizer(config, options.model);
    if (!options.tokenizer.empty() && options.tokenizer != own->name()) {
      throw UsageError("--tokenizer " + options.tokenizer + " disagrees with the model's own " +
                       own->name() + " tokenizer; leave --tokenizer out");
    }
    return own;
  }
  if (options.tokenizer == "byte") return std::make_unique<tokenizer::ByteTokenizer>();
  if (options.tokenizer == "bpe") {
    const fs::path dir(options.model);
    return tokenizer::BpeTokenizer::FromFiles((dir / "vocab.json").string(),
                                              (dir / "merges.txt").string());
  }
  if (options.tokenizer == "char") {
    throw UsageError("--tokenizer char needs the model's character list, and " + options.model +
                     "/config.json has no tokenizer entry");
  }
  throw UsageError(options.model +
                   "/config.json has no tokenizer entry and the directory no tokenizer.json or "
                   "tokenizer.model; name one with --tokenizer byte|bpe");
}

// A float32 .npy file (format version 1.0) of shape (rows, cols), written atomically.
void WriteNpy(const std::string& path, const float* data, int64_t rows, int64_t cols) {
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" +
                       std::to_string(rows) + ", " + std::to_string(cols) + "), }";
  // Magic (6) + version (2) + length (2) + header + '\n' must be a multiple of 64.
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::string bytes = "\x93NUMPY";
  bytes += '\x01';
  bytes += '\x00';
  bytes += static_cast<char>(header.size() & 0xff);
  bytes += static_cast<char>((header.size() >> 8) & 0xff);
  bytes += header;
  bytes.append(reinterpret_cast<const char*>(data),
               static_cast<size_t>(rows * cols) * sizeof(float));
  io::WriteFileAtomically(path, bytes);
}

}  // namespace

CLI::App* AddEvalCommand(CLI::App& app, EvalCommandOptions& o) {
  CLI::App* c = app.add_subcommand(
      "eval",
      "Mean cross-entropy and perplexity of a model on a text file, over non-overlapping "
      "windows of --context tokens; of an encoder-decoder on sentence pairs (--pairs)");
  c->add_option("--model", o.model, "Model directory")->required()->check(CLI::ExistingDirectory);
  CLI::Option* data = c->add_option("--data", o.data, "Text file to evaluate on (decoder-only)")
                          ->check(CLI::ExistingFile);
  CLI::Option* pairs =
      c->add_option("--pairs", o.pairs,
                    "Encoder-decoder: source<TAB>target lines; the loss is the mean "
                    "cross-entropy per target token (</s> included)")
          ->check(CLI::ExistingFile)
          ->excludes(data);
  c->add_flag("--bleu", o.bleu,
              "With --pairs: also translate the sources and print corpus BLEU-4 and chrF "
              "(sacreBLEU's defaults) against the targets")
      ->needs(pairs);
  c->add_option("--beam", o.beam, "With --bleu: beam size (1: greedy)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1024}))
      ->needs(pairs);
  c->add_option("--batch-tokens", o.batch_tokens,
                "With --pairs: padded tokens per forward pass of the loss (speed only)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 30))
      ->needs(pairs);
  c->add_option("--tokenizer", o.tokenizer,
                "For a model directory without a tokenizer entry: byte or bpe (vocab.json + "
                "merges.txt in the directory)")
      ->check(CLI::IsMember({"byte", "char", "bpe"}));
  c->add_option("--context", o.context, "Window length N (default: the model's context)")
      ->check(CLI::Range(int64_t{2}, int64_t{1} << 24));
  c->add_option("--batch", o.batch,
                "Windows per forward pass; with --bleu, sentences per translation batch (speed "
                "only)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{4096}));
  c->add_flag("--quiet", o.quiet, "No progress line on stderr");
  c->add_flag("--json", o.json,
              "Print {\"loss\", \"perplexity\", \"tokens\", \"windows\"} as one JSON object "
              "(--pairs: \"pairs\" for \"windows\", and \"bleu\", \"chrf\", \"beam\" with --bleu)");
  c->add_option("--dump-logits", o.dump_logits,
                "Write the first window's logits as a float32 .npy of shape [N, vocab]")
      ->check(OutputFile());
  AddThreadsFlag(c, o.threads);
  AddPrecisionFlag(c, o.precision,
                   "fp32, or bf16: matrix products read bfloat16 and accumulate float32 (as "
                   "PyTorch's CPU autocast; needs AVX512-BF16 or AMX)");
  AddRopeScalingFlags(c, o.rope_scaling);
  AddAttentionFlag(c, o.attention);
  return c;
}

int RunEval(const EvalCommandOptions& options) {
  PrecisionOrRefuse(options.precision);  // before the model loads
  if (IsEncoderDecoderConfig(model::ReadConfigJson(options.model))) {
    if (options.pairs.empty()) {
      throw UsageError("--model " + options.model +
                       " is an encoder-decoder (model_type \"marian\"): evaluate it on "
                       "sentence pairs with --pairs FILE.tsv" +
                       (options.data.empty() ? "" : ", not on --data"));
    }
    return RunEvalPairs(options);
  }
  if (!options.pairs.empty()) {
    throw UsageError("--pairs needs an encoder-decoder model, and " + options.model +
                     " is decoder-only: evaluate it on text with --data FILE");
  }
  if (options.data.empty()) throw UsageError("--data is required (the text to evaluate on)");
  // One checkpoint's files, even while a training run switches to the next.
  EvalCommandOptions o = options;
  o.model = io::ResolveModelDirectory(options.model);
  model::Model model = model::LoadModel(o.model);
  ApplyRopeScaling(o.rope_scaling, model.config);
  model.config.attention = model::ParseAttentionImpl(o.attention);
  const model::ModelConfig& config = model.config;
  const int64_t window = o.context > 0 ? o.context : config.context;
  if (window > config.context && config.position == model::PositionEncoding::kLearned) {
    throw UsageError("--context " + std::to_string(window) +
                     " is longer than the model's "
                     "learned position table of " +
                     std::to_string(config.context));
  }
  std::unique_ptr<tokenizer::Tokenizer> tokenizer = ChooseTokenizer(o);
  QKV_CHECK(tokenizer->vocab_size() <= config.vocab_size, o.model, ": the ", tokenizer->name(),
            " tokenizer has ", tokenizer->vocab_size(),
            " tokens but the model's vocabulary has only ", config.vocab_size);
  std::vector<int32_t> tokens;
  try {
    tokens =
        EncodeWithProgress(*tokenizer, io::ReadTextFile(o.data), "tokenizing " + o.data, !o.quiet);
  } catch (const Error& error) {
    // The tokenizer does not know which file its text came from (e.g. a character outside a
    // char vocabulary).
    const std::string message = error.what();
    throw message.starts_with(o.data) ? error : Error(o.data + ": " + message);
  }
  QKV_CHECK(static_cast<int64_t>(tokens.size()) >= window, o.data, ": ", tokens.size(),
            " tokens, fewer than one window of ", window);
  const Precision precision = PrecisionOrRefuse(o.precision);
  ThreadPool threads(o.threads > 0 ? o.threads : ThreadPool::HardwareThreads());
  const int64_t whole_windows = static_cast<int64_t>(tokens.size()) / window;
  TaskProgress progress("evaluating " + std::to_string(window) + "-token windows", "windows",
                        static_cast<double>(whole_windows), !o.quiet);
  const model::WindowLoss measured = model::EvaluateWindows(
      model, tokens, window, o.batch, 0, threads,
      [&](ConstTensorView<float> logits) {
        if (!o.dump_logits.empty()) {
          WriteNpy(o.dump_logits, logits.data(), logits.dim(0), logits.dim(1));
        }
      },
      [&](int64_t done, int64_t) { progress.Update(static_cast<double>(done)); }, precision);
  progress.Finish();
  const double loss = measured.loss;
  const int64_t predictions = measured.predictions, windows = measured.windows;
  if (o.json) {
    const nlohmann::json result = {{"loss", loss},
                                   {"perplexity", std::exp(loss)},
                                   {"tokens", predictions},
                                   {"windows", windows}};
    std::printf("%s\n", result.dump().c_str());
  } else {
    std::printf("loss %.6f  perplexity %.4f  (%lld predictions in %lld windows of %lld tokens)\n",
                loss, std::exp(loss), static_cast<long long>(predictions),
                static_cast<long long>(windows), static_cast<long long>(window));
  }
  return 0;
}

}  // namespace qkv::cli
