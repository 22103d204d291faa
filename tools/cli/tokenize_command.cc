// `qkv tokenize (--model DIR | --vocab encoder.json --merges vocab.bpe) [--decode]`: reads
// stdin whole; prints the ids separated by spaces and a newline, or with --decode reads
// whitespace-separated ids and writes the text's exact bytes.
#include "tools/cli/tokenize_command.h"

#include <charconv>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "qkv/core/check.h"
#include "qkv/tokenizer/bpe_tokenizer.h"
#include "qkv/tokenizer/tokenizer.h"
#include "tools/cli/commands.h"
#include "tools/cli/progress.h"

namespace qkv::cli {
namespace {

std::string ReadStdin() {
  std::string input;
  char buffer[1 << 16];
  for (size_t n; (n = std::fread(buffer, 1, sizeof(buffer), stdin)) > 0;) input.append(buffer, n);
  QKV_CHECK(!std::ferror(stdin), "tokenize: cannot read standard input");
  return input;
}

std::vector<int32_t> ParseIds(const std::string& input) {
  std::vector<int32_t> ids;
  size_t offset = 0;
  const auto is_space = [](char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; };
  while (offset < input.size()) {
    if (is_space(input[offset])) {
      ++offset;
      continue;
    }
    size_t end = offset;
    while (end < input.size() && !is_space(input[end])) ++end;
    int32_t id = 0;
    const auto [parsed_end, error] = std::from_chars(input.data() + offset, input.data() + end, id);
    QKV_CHECK(error == std::errc() && parsed_end == input.data() + end, "tokenize --decode: '",
              input.substr(offset, std::min<size_t>(end - offset, 40)), "' (token ", ids.size(),
              " of the input) is not a token id");
    ids.push_back(id);
    offset = end;
  }
  return ids;
}

}  // namespace

CLI::App* AddTokenizeCommand(CLI::App& app, TokenizeOptions& options) {
  CLI::App* tokenize = app.add_subcommand(
      "tokenize",
      "Print the token ids of the text on stdin (or, with --decode, the text of the ids)");
  CLI::Option* model =
      tokenize->add_option("--model", options.model_dir,
                           "Model directory; its config.json's \"tokenizer\" entry is used");
  CLI::Option* vocab = tokenize
                           ->add_option("--vocab", options.vocab_path,
                                        "GPT-2 style vocabulary (encoder.json / vocab.json)")
                           ->check(CLI::ExistingFile);
  CLI::Option* merges =
      tokenize->add_option("--merges", options.merges_path, "BPE merges (vocab.bpe / merges.txt)")
          ->check(CLI::ExistingFile);  // a directory would read as a file without merges
  vocab->needs(merges);
  merges->needs(vocab);
  model->excludes(vocab);
  model->excludes(merges);
  tokenize->add_flag("--decode", options.decode,
                     "Read whitespace-separated ids from stdin and write their text");
  tokenize->add_flag("--allow-special", options.allow_special,
                     "Encode special tokens such as <|endoftext|> as their own ids");
  return tokenize;
}

int RunTokenize(const TokenizeOptions& options) {
  const bool from_files = !options.vocab_path.empty() || !options.merges_path.empty();
  if (options.model_dir.empty() == !from_files) {
    throw UsageError(
        "tokenize needs either --model DIR or --vocab FILE --merges FILE (exactly one of them)");
  }
  std::unique_ptr<tokenizer::Tokenizer> tokenizer =
      from_files ? tokenizer::BpeTokenizer::FromFiles(options.vocab_path, options.merges_path)
                 : tokenizer::LoadTokenizerFromModelDir(options.model_dir);
  const std::string input = ReadStdin();
  if (options.decode) {
    std::string text;
    try {
      text = tokenizer->Decode(ParseIds(input));
    } catch (const Error& error) {
      // Say which input was wrong (e.g. an id past the vocabulary).
      const std::string message = error.what();
      throw message.starts_with("tokenize")
          ? error
          : Error("tokenize --decode: standard input: " + message);
    }
    std::fwrite(text.data(), 1, text.size(), stdout);
  } else {
    // A progress line (stderr) for inputs large enough to take a while.
    TaskProgress progress("tokenizing standard input", "bytes", static_cast<double>(input.size()),
                          input.size() >= (size_t{1} << 20));
    std::vector<int32_t> ids;
    try {
      ids = tokenizer->Encode(
          input, {.allow_special = options.allow_special,
                  .progress = [&](size_t done) { progress.Update(static_cast<double>(done)); }});
    } catch (const Error& error) {
      throw Error("tokenize: standard input: " + std::string(error.what()));
    }
    progress.Finish();
    std::string line;
    line.reserve(ids.size() * 6);
    for (size_t i = 0; i < ids.size(); ++i) {
      if (i > 0) line += ' ';
      line += std::to_string(ids[i]);
    }
    line += '\n';
    std::fwrite(line.data(), 1, line.size(), stdout);
  }
  QKV_CHECK(std::fflush(stdout) == 0, "tokenize: cannot write standard output");
  return 0;
}

}  // namespace qkv::cli
