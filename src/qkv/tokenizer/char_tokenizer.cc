#include "qkv/tokenizer/char_tokenizer.h"

#include <algorithm>
#include <set>

#include "qkv/core/check.h"
#include "qkv/tokenizer/utf8.h"

namespace qkv::tokenizer {
namespace {

// Calls visit(offset, code_point) for each character; throws at the first invalid byte.
template <typename Visit>
void ForEachCharacter(std::string_view text, const char* what, Visit&& visit) {
  size_t offset = 0;
  while (offset < text.size()) {
    char32_t code_point;
    const int length = utf8::DecodeOne(text, offset, &code_point);
    QKV_CHECK(length > 0, "char tokenizer: ", what, " is not valid UTF-8 at byte offset ", offset,
              " (byte 0x", std::hex, static_cast<int>(static_cast<uint8_t>(text[offset])), ")");
    visit(offset, code_point);
    offset += length;
  }
}

std::string ExpectString(const nlohmann::json& value, size_t index) {
  QKV_CHECK(value.is_string(), "char tokenizer: \"characters\"[", index, "] is not a string but ",
            value.dump());
  return value.get<std::string>();
}

}  // namespace

CharTokenizer CharTokenizer::Train(std::string_view text) {
  QKV_CHECK(!text.empty(), "char tokenizer: the training text is empty");
  std::vector<bool> seen_ascii(128, false);
  std::set<char32_t> others;
  ForEachCharacter(text, "the training text", [&](size_t, char32_t code_point) {
    if (code_point < 128) {
      seen_ascii[code_point] = true;
    } else {
      others.insert(code_point);
    }
  });
  std::vector<char32_t> characters;
  for (char32_t c = 0; c < 128; ++c) {
    if (seen_ascii[c]) characters.push_back(c);
  }
  characters.insert(characters.end(), others.begin(), others.end());
  return CharTokenizer(std::move(characters));
}

CharTokenizer::CharTokenizer(std::vector<char32_t> characters)
    : characters_(std::move(characters)), ascii_ids_(128, -1) {
  QKV_CHECK(!characters_.empty(), "char tokenizer: the vocabulary is empty");
  for (size_t id = 0; id < characters_.size(); ++id) {
    const char32_t c = characters_[id];
    QKV_CHECK(c <= 0x10FFFF && !(c >= 0xD800 && c <= 0xDFFF), "char tokenizer: id ", id,
              " is not a Unicode character (U+", std::hex, static_cast<uint32_t>(c), ")");
    const bool inserted = ids_.emplace(c, static_cast<int32_t>(id)).second;
    QKV_CHECK(inserted, "char tokenizer: character ", utf8::Describe(c), " appears twice (id ",
              ids_.at(c), " and id ", id, ")");
    if (c < 128) ascii_ids_[c] = static_cast<int32_t>(id);
  }
}

std::vector<int32_t> CharTokenizer::DoEncode(std::string_view text, const EncodeOptions&) const {
  std::vector<int32_t> ids;
  ids.reserve(text.size());
  std::set<char32_t> unknown;
  ForEachCharacter(text, "the text", [&](size_t, char32_t code_point) {
    int32_t id = -1;
    if (code_point < 128) {
      id = ascii_ids_[code_point];
    } else if (auto it = ids_.find(code_point); it != ids_.end()) {
      id = it->second;
    }
    if (id < 0) unknown.insert(code_point);
    ids.push_back(id);
  });
  if (!unknown.empty()) {
    std::string names;
    for (char32_t c : unknown) names += (names.empty() ? "" : ", ") + utf8::Describe(c);
    QKV_CHECK(false, "char tokenizer: the text has ", unknown.size(),
              " character(s) that are not in the vocabulary of ", characters_.size(), ": ", names);
  }
  return ids;
}

std::string CharTokenizer::DoDecode(std::span<const int32_t> ids) const {
  std::string text;
  text.reserve(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    QKV_CHECK(ids[i] >= 0 && ids[i] < vocab_size(), "char tokenizer: id ", ids[i], " at position ",
              i, " is outside [0, ", vocab_size(), ")");
    utf8::Append(characters_[ids[i]], text);
  }
  return text;
}

nlohmann::json CharTokenizer::Save(const std::string&) const {
  nlohmann::json characters = nlohmann::json::array();
  for (char32_t c : characters_) {
    std::string text;
    utf8::Append(c, text);
    characters.push_back(text);
  }
  return {{"type", "char"}, {"characters", characters}};
}

CharTokenizer CharTokenizer::FromJson(const nlohmann::json& entry) {
  QKV_CHECK(entry.contains("characters") && entry["characters"].is_array(),
            "char tokenizer: config.json's \"tokenizer\" entry needs a \"characters\" array, got ",
            entry.dump());
  std::vector<char32_t> characters;
  const nlohmann::json& list = entry["characters"];
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string text = ExpectString(list[i], i);
    char32_t code_point = 0;
    const int length = text.empty() ? 0 : utf8::DecodeOne(text, 0, &code_point);
    QKV_CHECK(length > 0 && static_cast<size_t>(length) == text.size(),
              "char tokenizer: \"characters\"[", i, "] must be exactly one character, got ",
              list[i].dump());
    characters.push_back(code_point);
  }
  return CharTokenizer(std::move(characters));
}

}  // namespace qkv::tokenizer
