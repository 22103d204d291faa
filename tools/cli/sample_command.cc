// `qkv sample`: model directory -> tokenizer + model -> Generator, printing each token as soon
// as it is chosen. Byte-level tokens can end in the middle of a UTF-8 character, so the text
// goes through infer::Utf8Stream, which holds such bytes back until the character is complete.
#include "tools/cli/sample_command.h"

#include <cmath>
#include <cstdio>
#include <memory>
#include <string_view>
#include <vector>

#include "qkv/core/check.h"
#include "qkv/infer/generator.h"
#include "qkv/infer/utf8_stream.h"
#include "qkv/model/checkpoint.h"
#include "qkv/tokenizer/tokenizer.h"
#include "tools/cli/commands.h"
#include "tools/cli/common_flags.h"
#include "tools/cli/flag_checks.h"
#include "tools/cli/translation_model.h"

namespace qkv::cli {

namespace {

void Write(std::string_view text) {
  if (text.empty()) return;
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
}

}  // namespace

CLI::App* AddSampleCommand(CLI::App& app, SampleCommandOptions& o) {
  CLI::App* c = app.add_subcommand(
      "sample",
      "Generate text from a trained model: prints the prompt, then streams the continuation");
  c->add_option("--model", o.model, "Model directory (config.json, model.safetensors, tokenizer)")
      ->required()
      ->check(CLI::ExistingDirectory);
  c->add_option("--prompt", o.prompt,
                "Text to continue (empty: start from the tokenizer's BOS token when it puts one "
                "before every text, else from the token of \"\\n\" when the vocabulary has one, "
                "else token 0)")
      ->capture_default_str();
  c->add_option("--tokens", o.tokens, "Tokens to generate")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 30));
  c->add_option("--temperature", o.temperature,
                "Divide the logits by this; 0 = greedy (the most likely token, the same on "
                "every run)")
      ->capture_default_str()
      ->check([](const std::string& text) {
        try {
          const double value = std::stod(text);
          if (std::isfinite(value) && value >= 0) return std::string();
        } catch (const std::exception&) {
        }
        return "must be a finite number >= 0, got " + text;
      });
  c->add_option("--top-k", o.top_k, "Sample among the K most likely tokens (0: off)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 30));
  c->add_option("--top-p", o.top_p,
                "Sample among the fewest most likely tokens whose probability reaches P "
                "(nucleus sampling; 1: off)")
      ->capture_default_str()
      ->check([](const std::string& text) {
        try {
          const double value = std::stod(text);
          if (value > 0 && value <= 1) return std::string();
        } catch (const std::exception&) {
        }
        return "must be in (0, 1], got " + text;
      });
  AddSeedFlag(c, o.seed, "Seed of the sampler (same seed, same text)");
  AddThreadsFlag(c, o.threads);
  c->add_option("--precision", o.precision,
                "fp32, or bf16: decode with bfloat16 copies of the weight matrices (rounded to "
                "nearest even; each token reads half the bytes). Where the CPU has AVX512-BF16 "
                "or AMX the activations are rounded too and the products run on its bf16 "
                "instructions (the prefill too); elsewhere the arithmetic stays float32")
      ->capture_default_str()
      ->check(CLI::IsMember({"fp32", "bf16"}));
  AddRopeScalingFlags(c, o.rope_scaling);
  return c;
}

int RunSample(const SampleCommandOptions& o) {
  if (IsEncoderDecoderConfig(model::ReadConfigJson(o.model))) {
    throw UsageError("--model " + o.model +
                     " is an encoder-decoder (a translation model): it continues no text; "
                     "translate with `qkv translate --model " +
                     o.model + "`");
  }
  model::Model model = model::LoadModel(o.model);
  ApplyRopeScaling(o.rope_scaling, model.config);
  const std::unique_ptr<tokenizer::Tokenizer> tokenizer =
      tokenizer::LoadTokenizerFromModelDir(o.model);
  // More embedding rows than tokens is padding (Qwen2, nanoGPT's GPT-2): never sampled.
  QKV_CHECK(tokenizer->vocab_size() <= model.config.vocab_size, o.model, ": the ",
            tokenizer->name(), " tokenizer has ", tokenizer->vocab_size(),
            " tokens but the model's vocabulary has only ", model.config.vocab_size);

  std::vector<int32_t> prompt;
  try {
    prompt = tokenizer->Encode(o.prompt);
  } catch (const Error& error) {
    // The prompt is a flag value the model cannot read (e.g. a character outside a char
    // vocabulary): a usage error that names it.
    throw UsageError("--prompt: " + std::string(error.what()));
  }
  const bool empty_prompt = prompt.empty();
  if (empty_prompt) prompt.push_back(infer::Generator::StartToken(*tokenizer));

  const ThreadPool threads(o.threads > 0 ? o.threads : ThreadPool::HardwareThreads());
  infer::Generator generator(model, threads);
  generator.set_sampled_vocab(tokenizer->vocab_size());
  if (o.precision == "bf16") generator.UseBf16Weights();
  // Notices wait until the text has ended: printed as they come, they would cut a streamed
  // line (and a word) in two on a terminal that shows stdout and stderr together.
  std::vector<std::string> notices;
  generator.set_notice_callback([&](const std::string& notice) { notices.push_back(notice); });
  const infer::SamplerOptions sampler{o.temperature, o.top_k, o.top_p, o.seed};

  infer::Utf8Stream stream;
  bool ends_with_newline = empty_prompt || o.prompt.back() == '\n';
  auto print = [&](std::string_view bytes) {
    const std::string text = stream.Append(bytes);
    if (!text.empty()) ends_with_newline = text.back() == '\n';
    Write(text);
  };
  if (!empty_prompt) print(o.prompt);
  generator.Stream(prompt, o.tokens, sampler,
                   [&](int32_t id) { print(tokenizer->TokenBytes(id)); });
  const std::string rest = stream.Finish();
  if (!rest.empty()) ends_with_newline = false;
  Write(rest);
  if (!ends_with_newline) Write("\n");
  for (const std::string& notice : notices) std::fprintf(stderr, "%s\n", notice.c_str());
  if (generator.window_slides() > 1) {
    std::fprintf(stderr, "qkv: the window slid %lld times in all\n",
                 static_cast<long long>(generator.window_slides()));
  }
  return 0;
}

}  // namespace qkv::cli
