#include "qkv/tokenizer/byte_tokenizer.h"

#include "qkv/core/check.h"

namespace qkv::tokenizer {

std::vector<int32_t> ByteTokenizer::DoEncode(std::string_view text, const EncodeOptions&) const {
  std::vector<int32_t> ids(text.size());
  for (size_t i = 0; i < text.size(); ++i) ids[i] = static_cast<uint8_t>(text[i]);
  return ids;
}

std::string ByteTokenizer::DoDecode(std::span<const int32_t> ids) const {
  std::string text(ids.size(), '\0');
  for (size_t i = 0; i < ids.size(); ++i) {
    QKV_CHECK(ids[i] >= 0 && ids[i] < 256, "byte tokenizer: id ", ids[i], " at position ", i,
              " is outside [0, 256)");
    text[i] = static_cast<char>(static_cast<uint8_t>(ids[i]));
  }
  return text;
}

nlohmann::json ByteTokenizer::Save(const std::string&) const { return {{"type", "byte"}}; }

}  // namespace qkv::tokenizer
