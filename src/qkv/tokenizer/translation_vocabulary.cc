#include "qkv/tokenizer/translation_vocabulary.h"

#include <sentencepiece_processor.h>

#include <charconv>
#include <cstdio>
#include <filesystem>
#include <utility>

#include "qkv/core/check.h"
#include "qkv/io/safetensors.h"
#include "qkv/io/text_file.h"
#include "qkv/tokenizer/sentencepiece_trainer.h"
#include "qkv/tokenizer/utf8.h"

namespace qkv::tokenizer {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kKindKey = "qkv_translation_vocabulary";
constexpr std::string_view kSourceSpm = "source.spm";
constexpr std::string_view kTargetSpm = "target.spm";
constexpr std::string_view kVocabJson = "vocab.json";
constexpr std::string_view kReplacementCharacter = "\xEF\xBF\xBD";  // U+FFFD

std::string Join(const std::string& dir, std::string_view name) {
  return (fs::path(dir) / name).string();
}

void CheckUtf8(std::string_view text) {
  const size_t invalid = utf8::FirstInvalidOffset(text);
  QKV_CHECK(invalid == text.size(), "the text is not valid UTF-8 at byte ", invalid,
            " (translation reads Unicode text)");
}

void CheckId(int32_t id, int64_t vocab_size) {
  QKV_CHECK(id >= 0 && id < vocab_size, "token id ", id, " is outside the vocabulary [0, ",
            vocab_size, ")");
}

// The byte vocabulary: id 2 + b for byte b, "</s>" 0, "<unk>" 1, "<pad>" 258.
class ByteTranslationVocabulary final : public TranslationVocabulary {
 public:
  static constexpr int32_t kFirstByteId = kMarianSpecialPieces;  // 2
  static constexpr int64_t kSize = kFirstByteId + 256 + 1;       // 259, <pad> included

  std::string name() const override { return "byte"; }
  int64_t vocab_size() const override { return kSize; }

  std::vector<int32_t> EncodeSource(std::string_view text) const override {
    std::vector<int32_t> ids = EncodeTarget(text);
    ids.push_back(eos_id());
    return ids;
  }
  std::vector<int32_t> EncodeTarget(std::string_view text) const override {
    CheckUtf8(text);
    std::vector<int32_t> ids;
    ids.reserve(text.size() + 1);
    for (const char c : text) ids.push_back(kFirstByteId + static_cast<unsigned char>(c));
    return ids;
  }
  // A model may generate any byte sequence: the bytes that do not form valid UTF-8 (and
  // "<unk>", which no text encodes to) become U+FFFD, one per byte, so that the output is
  // always text (as Python's bytes.decode(errors="replace") and Hugging Face's byte-level
  // decoders do, up to how many U+FFFD a broken sequence gives).
  std::string Decode(std::span<const int32_t> ids) const override {
    std::string bytes;
    bytes.reserve(ids.size());
    for (const int32_t id : ids) {
      CheckId(id, kSize);
      if (id == eos_id() || id == pad_id()) continue;
      if (id == unk_id()) {
        bytes += kReplacementCharacter;
        continue;
      }
      bytes += static_cast<char>(id - kFirstByteId);
    }
    std::string text;
    text.reserve(bytes.size());
    for (size_t i = 0; i < bytes.size();) {
      char32_t code_point = 0;
      const int length = utf8::DecodeOne(bytes, i, &code_point);
      if (length == 0) {
        text += kReplacementCharacter;
        ++i;
      } else {
        text.append(bytes, i, static_cast<size_t>(length));
        i += static_cast<size_t>(length);
      }
    }
    return text;
  }
  std::string PieceText(int32_t id) const override {
    CheckId(id, kSize);
    if (id == eos_id()) return "</s>";
    if (id == unk_id()) return "<unk>";
    if (id == pad_id()) return "<pad>";
    const unsigned char byte = static_cast<unsigned char>(id - kFirstByteId);
    // Printable ASCII and the whitespace displays make visible stand for themselves; other
    // bytes (controls, the pieces of a multi-byte character) are written as SentencePiece
    // writes its byte pieces.
    if ((byte >= 0x20 && byte < 0x7f) || byte == '\n' || byte == '\t') {
      return std::string(1, static_cast<char>(byte));
    }
    char piece[8];
    std::snprintf(piece, sizeof(piece), "<0x%02X>", byte);
    return piece;
  }
  nlohmann::json Save(const std::string& /*model_dir*/) const override {
    return {{std::string(kKindKey), "byte"}};
  }
};

// A SentencePiece model in OPUS-MT's id layout (sentencepiece_trainer.h): its own ids are the
// vocabulary's, with "<pad>" one past its last piece.
class SpmTranslationVocabulary final : public TranslationVocabulary {
 public:
  // model: the bytes of a SentencePiece model; source names them in errors.
  SpmTranslationVocabulary(std::string model, std::string_view source)
      : model_(std::move(model)),
        processor_(LoadSentencePieceModel(model_, source)),
        ids_(ReadMarianVocabIds(model_, source)) {}

  std::string name() const override { return "spm:" + std::to_string(ids_.pad_id); }
  int64_t vocab_size() const override { return ids_.vocab_size; }

  std::vector<int32_t> EncodeSource(std::string_view text) const override {
    CheckUtf8(text);
    return EncodeWithEos(*processor_, text);
  }
  std::vector<int32_t> EncodeTarget(std::string_view text) const override {
    std::vector<int32_t> ids = EncodeSource(text);
    ids.pop_back();  // the "</s>" EncodeWithEos appends
    return ids;
  }
  std::string Decode(std::span<const int32_t> ids) const override {
    std::vector<int> pieces;
    pieces.reserve(ids.size());
    for (const int32_t id : ids) {
      CheckId(id, ids_.vocab_size);
      if (id != eos_id() && id != pad_id()) pieces.push_back(id);
    }
    std::string text;
    const sentencepiece::util::Status status = processor_->Decode(pieces, &text);
    QKV_CHECK(status.ok(), "SentencePiece: ", status.ToString());
    return text;
  }
  std::string PieceText(int32_t id) const override {
    CheckId(id, ids_.vocab_size);
    if (id == pad_id()) return "<pad>";
    return processor_->IdToPiece(id);
  }
  nlohmann::json Save(const std::string& model_dir) const override {
    // Hugging Face's MarianTokenizer reads both models and vocab.json; qkv's one shared model is
    // both sides. The config.json that names the kind is written last by the caller, so a
    // directory is never described before its files exist.
    io::WriteFileAtomically(Join(model_dir, kSourceSpm), model_);
    io::WriteFileAtomically(Join(model_dir, kTargetSpm), model_);
    io::WriteFileAtomically(Join(model_dir, kVocabJson),
                            SentencePieceVocabJson(model_).dump(2) + "\n");
    return {{std::string(kKindKey), "spm"}};
  }

 private:
  std::string model_;  // the serialized ModelProto: source.spm's bytes
  SentencePieceModel processor_;
  MarianVocabIds ids_;
};

// "spm:N" -> N; 0 when spec is not written so (N must be a plain decimal number).
int64_t SpmPieces(std::string_view spec) {
  constexpr std::string_view kPrefix = "spm:";
  if (!spec.starts_with(kPrefix) || spec.size() == kPrefix.size()) return 0;
  const std::string_view digits = spec.substr(kPrefix.size());
  if (digits.find_first_not_of("0123456789") != std::string_view::npos) return 0;
  int64_t n = 0;
  const auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), n);
  if (error != std::errc() || end != digits.data() + digits.size()) return 0;
  return n;
}

// config[key] as an integer, or `missing` when config lacks it (or holds null).
int64_t ConfigInteger(const nlohmann::json& config, const std::string& key, int64_t missing,
                      const std::string& config_path) {
  if (!config.contains(key) || config.at(key).is_null()) return missing;
  QKV_CHECK(config.at(key).is_number_integer(), config_path, ": \"", key,
            "\" must be an integer, not ", config.at(key).dump());
  return config.at(key).get<int64_t>();
}

// The config's vocab_size and special ids against the vocabulary's: a model trained with one
// vocabulary and read with another would translate into nonsense without a word of warning.
void CheckConfigAgrees(const TranslationVocabulary& vocabulary, const nlohmann::json& config,
                       const std::string& config_path, const std::string& vocabulary_file) {
  const int64_t vocab_size = ConfigInteger(config, "vocab_size", -1, config_path);
  QKV_CHECK(vocab_size == vocabulary.vocab_size(), config_path, ": \"vocab_size\" is ",
            vocab_size < 0 ? std::string("missing") : std::to_string(vocab_size), " but ",
            vocabulary_file, " (the ", vocabulary.name(), " vocabulary) has ",
            vocabulary.vocab_size(), " ids");
  const std::pair<const char*, int64_t> ids[] = {{"pad_token_id", vocabulary.pad_id()},
                                                 {"eos_token_id", vocabulary.eos_id()},
                                                 {"decoder_start_token_id", vocabulary.pad_id()}};
  for (const auto& [key, want] : ids) {
    const int64_t got = ConfigInteger(config, key, want, config_path);
    QKV_CHECK(got == want, config_path, ": \"", key, "\" is ", got, " but the ", vocabulary.name(),
              " vocabulary of ", vocabulary_file, " has it at ", want);
  }
}

std::unique_ptr<TranslationVocabulary> LoadSpm(const std::string& model_dir) {
  const std::string source_path = Join(model_dir, kSourceSpm);
  QKV_CHECK(fs::is_regular_file(source_path), source_path,
            ": missing; an encoder-decoder with a SentencePiece vocabulary keeps its model there");
  std::string model = io::ReadTextFile(source_path);
  const std::string target_path = Join(model_dir, kTargetSpm);
  if (fs::exists(target_path)) {
    QKV_CHECK(io::ReadTextFile(target_path, /*allow_empty=*/true) == model, target_path,
              " differs from ", source_path,
              ": qkv's encoder-decoders share one SentencePiece model between source and target "
              "(separate source and target vocabularies, as some OPUS-MT models have, are not "
              "supported)");
  }
  const nlohmann::json expected_vocab = SentencePieceVocabJson(model, source_path);
  auto vocabulary = std::make_unique<SpmTranslationVocabulary>(std::move(model), source_path);
  const std::string vocab_path = Join(model_dir, kVocabJson);
  if (fs::exists(vocab_path)) {
    // MarianTokenizer maps pieces to ids through vocab.json: it must say what the model says.
    nlohmann::json vocab;
    try {
      vocab = nlohmann::json::parse(io::ReadTextFile(vocab_path));
    } catch (const nlohmann::json::exception& error) {
      QKV_CHECK(false, vocab_path, ": not valid JSON: ", error.what());
    }
    QKV_CHECK(vocab == expected_vocab, vocab_path, ": does not list the pieces of ", source_path,
              " at their ids (with \"<pad>\" after them)");
  }
  return vocabulary;
}

}  // namespace

std::unique_ptr<TranslationVocabulary> TrainTranslationVocabulary(
    std::string_view spec, std::span<const io::SentencePair> pairs) {
  if (spec == "byte") return std::make_unique<ByteTranslationVocabulary>();
  if (spec == "char" || spec.starts_with("bpe")) {
    QKV_CHECK(false, "tokenizer \"", spec,
              "\" serves decoder-only models; an encoder-decoder takes spm:N (a SentencePiece "
              "model of N pieces trained on both sides of the pairs) or byte");
  }
  const int64_t pieces = SpmPieces(spec);
  QKV_CHECK(pieces > 0, "unknown translation tokenizer \"", spec,
            "\"; expected spm:N (N >= 3: a SentencePiece model of N pieces trained on both "
            "sides of the pairs) or byte");
  QKV_CHECK(pieces >= kMarianSpecialPieces + 1 && pieces <= (int64_t{1} << 24), "tokenizer \"",
            spec, "\": N must be in [", kMarianSpecialPieces + 1,
            ", 16777216] (it counts \"</s>\" and \"<unk>\")");
  SentencePieceTrainOptions options;
  options.vocab_size = static_cast<int>(pieces);
  return std::make_unique<SpmTranslationVocabulary>(TrainSentencePieceOnPairs(pairs, options),
                                                    "the trained SentencePiece model");
}

std::unique_ptr<TranslationVocabulary> LoadTranslationVocabulary(const std::string& model_dir,
                                                                 const nlohmann::json& config) {
  const std::string config_path = Join(model_dir, "config.json");
  QKV_CHECK(config.is_object(), config_path, ": expected a JSON object");
  const std::string key(kKindKey);
  std::string kind;
  if (config.contains(key) && !config.at(key).is_null()) {
    QKV_CHECK(config.at(key).is_string(), config_path, ": \"", key,
              "\" must be \"spm\" or \"byte\", not ", config.at(key).dump());
    kind = config.at(key).get<std::string>();
    QKV_CHECK(kind == "spm" || kind == "byte", config_path, ": \"", key, "\" is \"", kind,
              "\"; expected \"spm\" or \"byte\"");
  } else {
    QKV_CHECK(fs::exists(Join(model_dir, kSourceSpm)), config_path, ": no \"", key, "\" entry and ",
              model_dir, " holds no source.spm: the directory has no translation vocabulary");
    kind = "spm";  // an OPUS-MT-style directory
  }
  std::unique_ptr<TranslationVocabulary> vocabulary;
  std::string vocabulary_file;
  if (kind == "byte") {
    vocabulary = std::make_unique<ByteTranslationVocabulary>();
    vocabulary_file = config_path;
  } else {
    vocabulary = LoadSpm(model_dir);
    vocabulary_file = Join(model_dir, kSourceSpm);
  }
  CheckConfigAgrees(*vocabulary, config, config_path, vocabulary_file);
  return vocabulary;
}

}  // namespace qkv::tokenizer
