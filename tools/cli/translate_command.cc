// `qkv translate`. Lines are read in windows (32 batches' worth, or one line at a time from a
// terminal, so that an interactive user sees each translation at once); inside a window they
// are sorted by source length and cut into batches of --batch, so that a batch pads little,
// and each output line is written, in input order, as soon as it and every line before it are
// translated, stdout flushed after every batch. The output is the same for every --batch (a
// source's translation does not depend on the other sources of its batch: padding is masked).
#include "tools/cli/translate_command.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "qkv/core/check.h"
#include "qkv/infer/translator.h"
#include "qkv/kernels/bf16_weight_copies.h"
#include "tools/cli/commands.h"
#include "tools/cli/common_flags.h"
#include "tools/cli/flag_checks.h"
#include "tools/cli/translation_model.h"

namespace qkv::cli {

namespace {

// Lines held at once when the input is not a terminal, in batches.
constexpr int64_t kWindowBatches = 32;

// One window of input lines and their translations, written out in order.
class OrderedOutput {
 public:
  explicit OrderedOutput(size_t lines) : texts_(lines) {}
  void Set(size_t index, std::string text) {
    texts_[index] = std::move(text);
    // Lines past the printed prefix wait for the ones before them.
    while (next_ < texts_.size() && texts_[next_].has_value()) {
      std::fwrite(texts_[next_]->data(), 1, texts_[next_]->size(), stdout);
      std::fputc('\n', stdout);
      texts_[next_].reset();
      ++next_;
    }
  }

 private:
  std::vector<std::optional<std::string>> texts_;
  size_t next_ = 0;
};

}  // namespace

CLI::App* AddTranslateCommand(CLI::App& app, TranslateCommandOptions& o) {
  CLI::App* c = app.add_subcommand(
      "translate",
      "Translate source lines (stdin or --input) with an encoder-decoder model: one line of "
      "output per line of input, in order (an empty line gives an empty line)");
  c->add_option("--model", o.model,
                "Encoder-decoder model directory (config.json model_type \"marian\")")
      ->required()
      ->check(CLI::ExistingDirectory);
  c->add_option("--input", o.input, "File of source lines, UTF-8 (default: stdin)")
      ->check(CLI::ExistingFile);
  c->add_option("--beam", o.beam, "Beam size K (1: greedy decoding)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1024}));
  c->add_option("--max-length", o.max_length,
                "Decoder positions per translation, the start token included; </s> is forced at "
                "the last (default: the model's max_position_embeddings)")
      ->check(CLI::Range(int64_t{2}, int64_t{1} << 24));
  c->add_option("--length-penalty", o.length_penalty,
                "Beam search ranks finished hypotheses by summed log-probability / length^A")
      ->capture_default_str()
      ->check(FiniteNumber(-100, 100));
  c->add_option("--batch", o.batch,
                "Sentences translated together, grouped by length (speed only: the output is "
                "the same for every value)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{4096}));
  c->add_flag("--stats", o.stats,
              "After the last line, write one JSON line to stderr: sentences, target_tokens "
              "(generated, each translation's </s> included), seconds (from the model loaded "
              "to the last line written: reading, tokenizing, translating, writing) and "
              "tokens_per_s");
  AddThreadsFlag(c, o.threads);
  AddPrecisionFlag(c, o.precision,
                   "fp32, or bf16: matrix products read bfloat16 weights (copied once) and "
                   "activations and accumulate float32 (needs AVX512-BF16 or AMX; the output "
                   "may then change with --batch)");
  return c;
}

int RunTranslate(const TranslateCommandOptions& o) {
  const Precision precision = PrecisionOrRefuse(o.precision);  // before the model loads
  const TranslationModel model = LoadTranslationModel(o.model, "qkv translate");
  infer::TranslateOptions options;
  options.beam = o.beam;
  options.max_length = o.max_length;
  options.length_penalty = o.length_penalty;
  options.precision = precision;
  try {
    options.Validate(model.model.config);
  } catch (const Error& error) {
    throw UsageError(error.what());  // a flag value the model cannot take (e.g. --max-length)
  }
  const ThreadPool threads(o.threads > 0 ? o.threads : ThreadPool::HardwareThreads());
  std::optional<Bf16WeightCopies> bf16_weights;
  if (precision == Precision::kBfloat16) {
    options.bf16_weights = &bf16_weights.emplace(
        infer::Bf16MatrixCopies(model.model.config, model.model.params, threads));
  }

  // --stats times what a user waits for once the model is in memory (the bf16 copies above
  // are part of loading it).
  const auto start = std::chrono::steady_clock::now();
  int64_t sentences = 0, target_tokens = 0;
  infer::Translator translator(model.model.config, model.model.params, options, threads);

  std::ifstream file;
  if (!o.input.empty()) {
    file.open(o.input, std::ios::binary);
    QKV_CHECK(file.good(), o.input, ": cannot open");
  }
  std::istream& in = o.input.empty() ? std::cin : file;
  const std::string name = o.input.empty() ? "stdin" : o.input;
  const bool interactive = o.input.empty() && ::isatty(STDIN_FILENO) != 0;
  const size_t window = interactive ? 1 : static_cast<size_t>(kWindowBatches * o.batch);

  int64_t line_number = 0;
  std::vector<std::string> lines;
  std::string line;
  bool more = true;
  while (more) {
    lines.clear();
    while (lines.size() < window && (more = static_cast<bool>(std::getline(in, line)))) {
      if (!line.empty() && line.back() == '\r') line.pop_back();  // a CRLF file
      lines.push_back(line);
    }
    QKV_CHECK(!in.bad(), name, ": read failed");
    if (lines.empty()) break;
    // Every line of the window is checked before any is translated, so that a bad line stops
    // the run before the time is spent.
    std::vector<std::vector<int32_t>> sources(lines.size());
    std::vector<int64_t> to_translate;
    OrderedOutput output(lines.size());
    for (size_t i = 0; i < lines.size(); ++i) {
      const int64_t number = line_number + static_cast<int64_t>(i) + 1;
      if (lines[i].empty()) continue;
      sources[i] = EncodeSourceLine(model, lines[i], name, number);
      to_translate.push_back(static_cast<int64_t>(i));
    }
    line_number += static_cast<int64_t>(lines.size());
    // The empty lines before the first translated one go out at once.
    for (size_t i = 0; i < lines.size(); ++i) {
      if (lines[i].empty()) output.Set(i, std::string());
    }
    std::fflush(stdout);
    size_t translated = 0;
    TranslateSorted(
        model, translator, sources, to_translate, o.batch,
        [&](int64_t index, const infer::Translation& translation, std::string text) {
          ++sentences;
          target_tokens += static_cast<int64_t>(translation.tokens.size()) + 1;  // and </s>
          output.Set(static_cast<size_t>(index), std::move(text));
          ++translated;
          if (translated % static_cast<size_t>(o.batch) == 0 || translated == to_translate.size()) {
            std::fflush(stdout);
          }
        });
  }
  std::fflush(stdout);
  QKV_CHECK(!std::ferror(stdout), "writing the translations to stdout failed");
  if (o.stats) {
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const nlohmann::json stats = {
        {"sentences", sentences},
        {"target_tokens", target_tokens},
        {"seconds", seconds},
        {"tokens_per_s", seconds > 0 ? static_cast<double>(target_tokens) / seconds : 0.0}};
    std::fprintf(stderr, "%s\n", stats.dump().c_str());
  }
  return 0;
}

}  // namespace qkv::cli
