#include "qkv/tokenizer/utf8.h"

#include <cstdio>

namespace qkv::tokenizer::utf8 {

int DecodeOne(std::string_view text, size_t offset, char32_t* code_point) {
  const auto byte = [&](size_t i) { return static_cast<uint8_t>(text[i]); };
  const size_t left = text.size() - offset;
  const uint8_t lead = byte(offset);
  if (lead < 0x80) {
    *code_point = lead;
    return 1;
  }
  int length;
  char32_t value;
  // The smallest code point that needs this length: anything below is an overlong form.
  char32_t minimum;
  if ((lead & 0xE0) == 0xC0) {
    length = 2, value = lead & 0x1F, minimum = 0x80;
  } else if ((lead & 0xF0) == 0xE0) {
    length = 3, value = lead & 0x0F, minimum = 0x800;
  } else if ((lead & 0xF8) == 0xF0) {
    length = 4, value = lead & 0x07, minimum = 0x10000;
  } else {
    return 0;  // a continuation byte or 0xF8..0xFF
  }
  if (left < static_cast<size_t>(length)) return 0;
  for (int i = 1; i < length; ++i) {
    const uint8_t next = byte(offset + i);
    if ((next & 0xC0) != 0x80) return 0;
    value = (value << 6) | (next & 0x3F);
  }
  if (value < minimum || value > 0x10FFFF || (value >= 0xD800 && value <= 0xDFFF)) return 0;
  *code_point = value;
  return length;
}

size_t FirstInvalidOffset(std::string_view text) {
  size_t offset = 0;
  char32_t code_point;
  while (offset < text.size()) {
    if (static_cast<uint8_t>(text[offset]) < 0x80) {  // ASCII fast path
      ++offset;
      continue;
    }
    const int length = DecodeOne(text, offset, &code_point);
    if (length == 0) return offset;
    offset += length;
  }
  return offset;
}

void Append(char32_t code_point, std::string& out) {
  if (code_point < 0x80) {
    out.push_back(static_cast<char>(code_point));
  } else if (code_point < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (code_point >> 6)));
    out.push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  } else if (code_point < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (code_point >> 12)));
    out.push_back(static_cast<char>(0x80 | ((code_point >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (code_point >> 18)));
    out.push_back(static_cast<char>(0x80 | ((code_point >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((code_point >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  }
}

std::string Describe(char32_t code_point) {
  char hex[16];
  std::snprintf(hex, sizeof(hex), "U+%04X", static_cast<unsigned>(code_point));
  // C0/C1 controls, DEL, and the space characters would be invisible or break the message.
  const bool invisible = code_point <= 0x20 || (code_point >= 0x7F && code_point <= 0xA0) ||
                         code_point == 0xAD || (code_point >= 0x2000 && code_point <= 0x200F) ||
                         (code_point >= 0x2028 && code_point <= 0x202F) || code_point == 0xFEFF;
  if (invisible) return hex;
  std::string shown = "'";
  Append(code_point, shown);
  return shown + "' (" + hex + ")";
}

}  // namespace qkv::tokenizer::utf8
