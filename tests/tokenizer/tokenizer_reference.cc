// Runs qkv's tokenizer of a model directory over a JSON array of texts, for the Python drivers
// that compare it with independent references (check_sentencepiece.py: the sentencepiece
// Python module; check_hf_tokenizer.py: Hugging Face's JavaScript tokenizers).
//
// Usage: qkv_tokenizer_reference --model DIR --input TEXTS.json --output RESULT.json
//                                [--allow-special] [--save-dir DIR2]
// The tokenizer comes from LoadTokenizerFromModelDir(DIR). RESULT.json:
//   {"name", "vocab_size", "ids": [[...], ...], "decoded": [...],
//    "token_bytes": ["hex of the TokenBytes of each id, concatenated", ...],
//    "saved": {"entry": ..., "same_ids": bool}}   (with --save-dir: Save into DIR2, load back)
// Exit status 0, or 1 with the qkv::Error on stderr.
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "qkv/core/check.h"
#include "qkv/tokenizer/tokenizer.h"

namespace {

std::string Hex(const std::string& bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex;
  for (char c : bytes) {
    hex += kDigits[static_cast<unsigned char>(c) >> 4];
    hex += kDigits[static_cast<unsigned char>(c) & 15];
  }
  return hex;
}

int Run(std::map<std::string, std::string> args, bool allow_special) {
  using qkv::tokenizer::Tokenizer;
  const std::unique_ptr<Tokenizer> tokenizer =
      qkv::tokenizer::LoadTokenizerFromModelDir(args["--model"]);
  std::ifstream input(args["--input"], std::ios::binary);
  QKV_CHECK(input.good(), "cannot open '", args["--input"], "'");
  const nlohmann::json texts = nlohmann::json::parse(input);
  const qkv::tokenizer::EncodeOptions options{.allow_special = allow_special, .progress = {}};

  nlohmann::json result = {{"name", tokenizer->name()}, {"vocab_size", tokenizer->vocab_size()}};
  nlohmann::json ids_out = nlohmann::json::array(), decoded = nlohmann::json::array(),
                 token_bytes = nlohmann::json::array();
  std::vector<std::vector<int32_t>> all_ids;
  for (const nlohmann::json& text : texts) {
    const std::vector<int32_t> ids = tokenizer->Encode(text.get<std::string>(), options);
    all_ids.push_back(ids);
    ids_out.push_back(ids);
    decoded.push_back(tokenizer->Decode(ids));
    std::string bytes;
    for (int32_t id : ids) bytes += tokenizer->TokenBytes(id);
    token_bytes.push_back(Hex(bytes));
  }
  result["ids"] = std::move(ids_out);
  result["decoded"] = std::move(decoded);
  result["token_bytes"] = std::move(token_bytes);

  if (!args["--save-dir"].empty()) {
    const std::string dir = args["--save-dir"];
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    const nlohmann::json entry = qkv::tokenizer::SaveTokenizer(*tokenizer, dir);
    std::ofstream(dir + "/config.json") << nlohmann::json{{"tokenizer", entry}}.dump();
    const std::unique_ptr<Tokenizer> loaded = qkv::tokenizer::LoadTokenizerFromModelDir(dir);
    bool same =
        loaded->name() == tokenizer->name() && loaded->vocab_size() == tokenizer->vocab_size();
    for (size_t i = 0; i < texts.size() && same; ++i) {
      same = loaded->Encode(texts[i].get<std::string>(), options) == all_ids[i];
    }
    result["saved"] = {{"entry", entry}, {"same_ids", same}};
  }
  std::ofstream output(args["--output"], std::ios::binary);
  output << result.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  QKV_CHECK(output.good(), "cannot write '", args["--output"], "'");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::map<std::string, std::string> args;
  bool allow_special = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--allow-special") {
      allow_special = true;
    } else if (i + 1 < argc) {
      args[arg] = argv[++i];
    } else {
      std::cerr << "usage: qkv_tokenizer_reference --model DIR --input TEXTS.json --output "
                   "RESULT.json [--allow-special] [--save-dir DIR2]\n";
      return 2;
    }
  }
  try {
    return Run(args, allow_special);
  } catch (const std::exception& error) {
    std::cerr << "qkv_tokenizer_reference: " << error.what() << "\n";
    return 1;
  }
}
