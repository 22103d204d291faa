#include "qkv/tokenizer/byte_level.h"

#include "qkv/tokenizer/utf8.h"

namespace qkv::tokenizer::byte_level {
namespace {

bool StandsForItself(int byte) {
  return (byte >= '!' && byte <= '~') || (byte >= 0xA1 && byte <= 0xAC) ||
         (byte >= 0xAE && byte <= 0xFF);
}

struct Tables {
  std::array<char32_t, 256> byte_to_char;
  std::array<uint8_t, 256> order;
  // Inverse of byte_to_char over U+0000..U+0143 (-1: stands for no byte).
  std::array<int16_t, 256 + 68> char_to_byte;
  Tables() {
    char_to_byte.fill(-1);
    int next_remapped = 0, next_id = 0;
    for (int byte = 0; byte < 256; ++byte) {
      if (StandsForItself(byte)) order[next_id++] = static_cast<uint8_t>(byte);
    }
    for (int byte = 0; byte < 256; ++byte) {
      if (StandsForItself(byte)) {
        byte_to_char[byte] = static_cast<char32_t>(byte);
      } else {
        byte_to_char[byte] = static_cast<char32_t>(256 + next_remapped++);
        order[next_id++] = static_cast<uint8_t>(byte);
      }
      char_to_byte[byte_to_char[byte]] = static_cast<int16_t>(byte);
    }
  }
};

const Tables& GetTables() {
  static const Tables tables;
  return tables;
}

}  // namespace

const std::array<char32_t, 256>& ByteToChar() { return GetTables().byte_to_char; }
const std::array<uint8_t, 256>& ByteOrder() { return GetTables().order; }

std::string Encode(std::string_view bytes) {
  const auto& table = ByteToChar();
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char byte : bytes) utf8::Append(table[static_cast<uint8_t>(byte)], out);
  return out;
}

bool Decode(std::string_view text, std::string* bytes) {
  bytes->clear();
  const auto& char_to_byte = GetTables().char_to_byte;
  size_t offset = 0;
  while (offset < text.size()) {
    char32_t code_point;
    const int length = utf8::DecodeOne(text, offset, &code_point);
    if (length == 0) return false;
    offset += length;
    const int byte = code_point < char_to_byte.size() ? char_to_byte[code_point] : -1;
    if (byte < 0) return false;
    bytes->push_back(static_cast<char>(byte));
  }
  return true;
}

}  // namespace qkv::tokenizer::byte_level
