// The character tokenizer of nanoGPT's shakespeare_char: one token per Unicode character that
// occurs in the training text, ids in code point order (sorted(set(text))).
#pragma once

#include <string_view>
#include <unordered_map>
#include <vector>

#include "qkv/tokenizer/tokenizer.h"

namespace qkv::tokenizer {

class CharTokenizer final : public Tokenizer {
 public:
  // The sorted set of characters of text. Throws qkv::Error naming the byte offset of the
  // first invalid UTF-8 sequence, or if text is empty.
  static CharTokenizer Train(std::string_view text);

  // Id i is characters[i]. Throws qkv::Error if a character repeats or the list is empty.
  explicit CharTokenizer(std::vector<char32_t> characters);

  std::string name() const override { return "char"; }
  int64_t vocab_size() const override { return static_cast<int64_t>(characters_.size()); }
  const std::vector<char32_t>& characters() const { return characters_; }
  nlohmann::json Save(const std::string& model_dir) const override;

  // Parses {"type": "char", "characters": [...]}; each string must be one character.
  static CharTokenizer FromJson(const nlohmann::json& entry);

 private:
  std::vector<int32_t> DoEncode(std::string_view text, const EncodeOptions& options) const override;
  std::string DoDecode(std::span<const int32_t> ids) const override;

  std::vector<char32_t> characters_;
  std::unordered_map<char32_t, int32_t> ids_;
  std::vector<int32_t> ascii_ids_;  // ids of code points 0..127 (-1: absent), the common case
};

}  // namespace qkv::tokenizer
