#include "qkv/tokenizer/tokenizer.h"

#include <charconv>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>

#include "qkv/core/check.h"
#include "qkv/io/checkpoint_directory.h"
#include "qkv/tokenizer/bpe_tokenizer.h"
#include "qkv/tokenizer/byte_tokenizer.h"
#include "qkv/tokenizer/char_tokenizer.h"
#include "qkv/tokenizer/hf_bpe_tokenizer.h"
#include "qkv/tokenizer/sentencepiece_tokenizer.h"

namespace qkv::tokenizer {
namespace {

constexpr char kAllowedSpecs[] = "\"char\", \"byte\" or \"bpe:N\" with N >= 257";

std::string FileEntry(const nlohmann::json& entry, const char* key) {
  QKV_CHECK(entry.contains(key) && entry[key].is_string() && !entry[key].get<std::string>().empty(),
            "config.json: the ", entry["type"].get<std::string>(),
            " tokenizer entry needs a file name under \"", key, "\", got ", entry.dump());
  return entry[key].get<std::string>();
}

bool BoolEntry(const nlohmann::json& entry, const char* key, bool fallback,
               const std::string& where) {
  if (!entry.contains(key) || entry[key].is_null()) return fallback;
  QKV_CHECK(entry[key].is_boolean(), where, ": \"", key, "\" must be true or false, got ",
            entry[key].dump());
  return entry[key].get<bool>();
}

std::optional<nlohmann::json> ReadJsonFile(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file.good()) return std::nullopt;
  try {
    return nlohmann::json::parse(file);
  } catch (const nlohmann::json::exception& error) {
    QKV_CHECK(false, "'", path, "' is not valid JSON: ", error.what());
  }
  return std::nullopt;
}

// A Hugging Face directory: tokenizer.json (a byte-level BPE) or tokenizer.model.
std::unique_ptr<Tokenizer> LoadHuggingFaceTokenizer(const std::string& model_dir) {
  namespace fs = std::filesystem;
  const std::string json_path = model_dir + "/tokenizer.json";
  const std::string model_path = model_dir + "/tokenizer.model";
  std::error_code ignored;
  const bool have_json = fs::is_regular_file(json_path, ignored);
  const bool have_model = fs::is_regular_file(model_path, ignored);
  QKV_CHECK(have_json || have_model, "config.json in '", model_dir,
            "' has no \"tokenizer\" entry, and the directory holds neither tokenizer.json nor "
            "tokenizer.model (Hugging Face's tokenizer files)");
  if (have_json) {
    std::ifstream file(json_path, std::ios::binary);
    std::ostringstream contents;
    contents << file.rdbuf();
    QKV_CHECK(file.good() || file.eof(), "cannot read the tokenizer file '", json_path, "'");
    nlohmann::json json;
    try {
      json = nlohmann::json::parse(contents.view());
    } catch (const nlohmann::json::exception& error) {
      QKV_CHECK(false, "'", json_path, "' is not valid JSON: ", error.what());
    }
    // Llama 2's directories hold a SentencePiece model twice: converted to a BPE with byte
    // fallback in tokenizer.json, which qkv does not read, and as tokenizer.model.
    if (!have_model || HfBpeTokenizer::IsByteLevelBpe(json)) {
      return HfBpeTokenizer::FromParsed(json, contents.str(), "'" + json_path + "'");
    }
  }
  SentencePieceOptions options;
  const std::string config_path = model_dir + "/tokenizer_config.json";
  if (const std::optional<nlohmann::json> config = ReadJsonFile(config_path)) {
    QKV_CHECK(config->is_object(), "'", config_path, "' must hold a JSON object");
    options.add_bos = BoolEntry(*config, "add_bos_token", true, "'" + config_path + "'");
    options.add_eos = BoolEntry(*config, "add_eos_token", false, "'" + config_path + "'");
  }
  return SentencePieceTokenizer::FromFile(model_path, options);
}

}  // namespace

nlohmann::json SaveTokenizer(const Tokenizer& tokenizer, const std::string& model_dir) {
  return tokenizer.Save(model_dir);
}

bool HasTokenizer(const nlohmann::json& config, const std::string& model_dir) {
  std::error_code ignored;
  return (config.is_object() && config.contains("tokenizer")) ||
         std::filesystem::is_regular_file(model_dir + "/tokenizer.json", ignored) ||
         std::filesystem::is_regular_file(model_dir + "/tokenizer.model", ignored);
}

std::unique_ptr<Tokenizer> LoadTokenizer(const nlohmann::json& config,
                                         const std::string& model_dir) {
  QKV_CHECK(config.is_object(), "config.json in '", model_dir, "' must hold a JSON object");
  if (!config.contains("tokenizer")) return LoadHuggingFaceTokenizer(model_dir);
  const nlohmann::json& entry = config["tokenizer"];
  QKV_CHECK(entry.is_object() && entry.contains("type") && entry["type"].is_string(),
            "config.json in '", model_dir,
            "': \"tokenizer\" must be an object with a \"type\" string, got ", entry.dump());
  const std::string type = entry["type"].get<std::string>();
  if (type == "char") return std::make_unique<CharTokenizer>(CharTokenizer::FromJson(entry));
  if (type == "byte") return std::make_unique<ByteTokenizer>();
  if (type == "bpe") {
    const std::string vocab_file = FileEntry(entry, "vocab_file");
    const std::string merges_file = FileEntry(entry, "merges_file");
    return BpeTokenizer::FromFiles(model_dir + "/" + vocab_file, model_dir + "/" + merges_file);
  }
  if (type == "hf-bpe") return HfBpeTokenizer::FromFile(model_dir + "/" + FileEntry(entry, "file"));
  if (type == "sentencepiece") {
    const std::string where = "config.json in '" + model_dir + "': the sentencepiece entry";
    SentencePieceOptions options;
    options.add_bos = BoolEntry(entry, "add_bos", true, where);
    options.add_eos = BoolEntry(entry, "add_eos", false, where);
    return SentencePieceTokenizer::FromFile(model_dir + "/" + FileEntry(entry, "file"), options);
  }
  QKV_CHECK(false, "config.json in '", model_dir, "': unknown tokenizer type \"", type,
            "\" (allowed: \"char\", \"byte\", \"bpe\", \"hf-bpe\", \"sentencepiece\")");
  return nullptr;
}

std::unique_ptr<Tokenizer> LoadTokenizerFromModelDir(const std::string& dir) {
  const std::string model_dir = io::ResolveModelDirectory(dir);
  const std::string path = model_dir + "/config.json";
  std::ifstream file(path, std::ios::binary);
  QKV_CHECK(file.good(), "cannot open '", path, "'");
  nlohmann::json config;
  try {
    config = nlohmann::json::parse(file);
  } catch (const nlohmann::json::exception& error) {
    QKV_CHECK(false, "'", path, "' is not valid JSON: ", error.what());
  }
  return LoadTokenizer(config, model_dir);
}

std::unique_ptr<Tokenizer> TrainTokenizer(const std::string& spec, std::string_view text,
                                          std::ostream* progress) {
  if (spec == "char") return std::make_unique<CharTokenizer>(CharTokenizer::Train(text));
  if (spec == "byte") return std::make_unique<ByteTokenizer>();
  if (spec.starts_with("bpe:")) {
    const std::string_view digits = std::string_view(spec).substr(4);
    int64_t num_tokens = 0;
    const auto [end, error] =
        std::from_chars(digits.data(), digits.data() + digits.size(), num_tokens);
    QKV_CHECK(error == std::errc() && end == digits.data() + digits.size() && !digits.empty(),
              "tokenizer spec \"", spec,
              "\": N in bpe:N must be an integer; allowed: ", kAllowedSpecs);
    QKV_CHECK(num_tokens >= 257 && num_tokens <= (int64_t{1} << 30), "tokenizer spec \"", spec,
              "\": N is the vocabulary size, the 256 bytes plus N - 256 merges, so it must be "
              "at least 257 (and at most 2^30); allowed: ",
              kAllowedSpecs);
    BpeTrainOptions options;
    options.num_tokens = num_tokens;
    options.progress = progress;
    return BpeTokenizer::Train(text, options);
  }
  QKV_CHECK(false, "unknown tokenizer spec \"", spec, "\"; allowed: ", kAllowedSpecs);
  return nullptr;
}

std::unique_ptr<Tokenizer> TrainTokenizer(const std::string& spec, std::string_view text) {
  return TrainTokenizer(spec, text, &std::cerr);
}

}  // namespace qkv::tokenizer
