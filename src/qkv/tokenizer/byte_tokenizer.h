// The byte tokenizer: 256 tokens, id = byte value. Any byte string encodes.
#pragma once

#include "qkv/tokenizer/tokenizer.h"

namespace qkv::tokenizer {

class ByteTokenizer final : public Tokenizer {
 public:
  std::string name() const override { return "byte"; }
  int64_t vocab_size() const override { return 256; }
  nlohmann::json Save(const std::string& model_dir) const override;

 private:
  std::vector<int32_t> DoEncode(std::string_view text, const EncodeOptions& options) const override;
  std::string DoDecode(std::span<const int32_t> ids) const override;
};

}  // namespace qkv::tokenizer
