#include "qkv/tokenizer/sentencepiece_tokenizer.h"

#include <sentencepiece_processor.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "qkv/core/check.h"
#include "qkv/io/safetensors.h"
#include "qkv/tokenizer/special_tokens.h"
#include "qkv/tokenizer/utf8.h"

namespace qkv::tokenizer {
namespace {

constexpr std::string_view kSpaceSymbol = "\xE2\x96\x81";  // U+2581, SentencePiece's space

// "<0x41>" -> 0x41; -1 when the piece is not written so.
int BytePieceValue(const std::string& piece) {
  if (piece.size() != 6 || !piece.starts_with("<0x") || piece.back() != '>') return -1;
  int value = 0;
  for (char c : std::string_view(piece).substr(3, 2)) {
    value *= 16;
    if (c >= '0' && c <= '9') {
      value += c - '0';
    } else if (c >= 'A' && c <= 'F') {
      value += c - 'A' + 10;
    } else if (c >= 'a' && c <= 'f') {
      value += c - 'a' + 10;
    } else {
      return -1;
    }
  }
  return value;
}

std::string Replace(std::string text, std::string_view from, std::string_view to) {
  for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
  }
  return text;
}

}  // namespace

SentencePieceTokenizer::SentencePieceTokenizer()
    : processor_(std::make_unique<sentencepiece::SentencePieceProcessor>()) {}
SentencePieceTokenizer::~SentencePieceTokenizer() = default;

std::unique_ptr<SentencePieceTokenizer> SentencePieceTokenizer::FromFile(
    const std::string& path, const SentencePieceOptions& options) {
  std::ifstream file(path, std::ios::binary);
  QKV_CHECK(file.good(), "cannot open the tokenizer file '", path, "'");
  std::ostringstream contents;
  contents << file.rdbuf();
  QKV_CHECK(!file.bad(), "cannot read the tokenizer file '", path, "'");
  return FromString(contents.str(), "'" + path + "'", options);
}

std::unique_ptr<SentencePieceTokenizer> SentencePieceTokenizer::FromString(
    std::string model, const std::string& source, const SentencePieceOptions& options) {
  std::unique_ptr<SentencePieceTokenizer> tokenizer(new SentencePieceTokenizer());
  QKV_CHECK(!model.empty(), source, " is empty; expected a SentencePiece model (tokenizer.model)");
  const sentencepiece::util::Status status = tokenizer->processor_->LoadFromSerializedProto(model);
  QKV_CHECK(status.ok(), source,
            " is not a valid SentencePiece model (tokenizer.model): ", status.ToString());
  sentencepiece::SentencePieceProcessor& processor = *tokenizer->processor_;
  const int size = processor.GetPieceSize();
  QKV_CHECK(size > 0, source, ": the SentencePiece model has no pieces");
  tokenizer->model_ = std::move(model);
  tokenizer->source_ = source;
  tokenizer->options_ = options;
  tokenizer->bos_id_ = processor.bos_id();
  tokenizer->eos_id_ = processor.eos_id();
  QKV_CHECK(!options.add_bos || (tokenizer->bos_id_ >= 0 && tokenizer->bos_id_ < size), source,
            ": add_bos is set but the SentencePiece model has no BOS token");
  QKV_CHECK(!options.add_eos || (tokenizer->eos_id_ >= 0 && tokenizer->eos_id_ < size), source,
            ": add_eos is set but the SentencePiece model has no EOS token");
  tokenizer->token_bytes_.resize(size);
  for (int id = 0; id < size; ++id) {
    const std::string& piece = processor.IdToPiece(id);
    std::string& bytes = tokenizer->token_bytes_[id];
    if (processor.IsControl(id)) {
      tokenizer->specials_.emplace_back(piece, id);
    } else if (processor.IsUnknown(id)) {
      tokenizer->specials_.emplace_back(piece, id);
      bytes = processor.DecodeIds({id});  // the unknown token's surface, " \u2047 " by default
    } else if (processor.IsByte(id)) {
      const int value = BytePieceValue(piece);
      QKV_CHECK(value >= 0, source, ": byte piece ", id, " is written '", piece, "', not <0xXX>");
      bytes = std::string(1, static_cast<char>(value));
    } else {
      bytes = Replace(piece, kSpaceSymbol, " ");
    }
  }
  auto& specials = tokenizer->specials_;
  std::erase_if(specials, [](const auto& special) { return special.first.empty(); });
  std::stable_sort(specials.begin(), specials.end(),
                   [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
  return tokenizer;
}

void SentencePieceTokenizer::EncodeText(std::string_view text, std::vector<int32_t>* ids) const {
  std::vector<int> pieces;
  const sentencepiece::util::Status status = processor_->Encode(text, &pieces);
  QKV_CHECK(status.ok(), "sentencepiece tokenizer ", source_, ": ", status.ToString());
  ids->insert(ids->end(), pieces.begin(), pieces.end());
}

std::vector<int32_t> SentencePieceTokenizer::DoEncode(std::string_view text,
                                                      const EncodeOptions& options) const {
  const size_t invalid = utf8::FirstInvalidOffset(text);
  QKV_CHECK(invalid == text.size(), "sentencepiece tokenizer: the text is not valid UTF-8 at byte ",
            invalid, " (SentencePiece encodes Unicode text)");
  std::vector<int32_t> ids;
  if (options_.add_bos) ids.push_back(bos_id_);
  if (options.allow_special && !specials_.empty()) {
    std::vector<SpecialToken> tokens;
    tokens.reserve(specials_.size());
    for (const auto& [piece, id] : specials_) tokens.push_back({piece, id});
    SplitAtSpecialTokens(
        text, tokens, [&](std::string_view part) { EncodeText(part, &ids); },
        [&](int32_t id) { ids.push_back(id); });
  } else {
    EncodeText(text, &ids);
  }
  if (options_.add_eos) ids.push_back(eos_id_);
  return ids;
}

std::string SentencePieceTokenizer::DoDecode(std::span<const int32_t> ids) const {
  for (size_t i = 0; i < ids.size(); ++i) {
    QKV_CHECK(ids[i] >= 0 && ids[i] < vocab_size(), "sentencepiece tokenizer: id ", ids[i],
              " at position ", i, " is outside [0, ", vocab_size(), ")");
  }
  std::string text;
  const sentencepiece::util::Status status =
      processor_->Decode(std::vector<int>(ids.begin(), ids.end()), &text);
  QKV_CHECK(status.ok(), "sentencepiece tokenizer ", source_, ": ", status.ToString());
  return text;
}

std::string SentencePieceTokenizer::TokenBytes(int32_t id) const {
  QKV_CHECK(id >= 0 && id < vocab_size(), "sentencepiece tokenizer: id ", id, " is outside [0, ",
            vocab_size(), ")");
  return token_bytes_[id];
}

nlohmann::json SentencePieceTokenizer::Save(const std::string& model_dir) const {
  io::WriteFileAtomically(model_dir + "/tokenizer.model", model_);
  return {{"type", "sentencepiece"},
          {"file", "tokenizer.model"},
          {"add_bos", options_.add_bos},
          {"add_eos", options_.add_eos}};
}

}  // namespace qkv::tokenizer
