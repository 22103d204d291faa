#include "qkv/io/sentence_pairs.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>

#include "qkv/core/check.h"
#include "qkv/io/text_file.h"

namespace qkv::io {
namespace {

constexpr std::string_view kByteOrderMark = "\xEF\xBB\xBF";

// Offset of the first byte of text that does not start a valid UTF-8 sequence (RFC 3629), or
// text.size(). io depends on core only, so this does not share tokenizer/utf8.h; the rules are
// the same.
size_t FirstInvalidUtf8(std::string_view text) {
  const auto byte = [&](size_t i) { return static_cast<uint8_t>(text[i]); };
  size_t offset = 0;
  while (offset < text.size()) {
    const uint8_t lead = byte(offset);
    if (lead < 0x80) {
      ++offset;
      continue;
    }
    size_t length;
    uint32_t value, minimum;  // minimum: the smallest code point that needs this length
    if ((lead & 0xE0) == 0xC0) {
      length = 2, value = lead & 0x1Fu, minimum = 0x80;
    } else if ((lead & 0xF0) == 0xE0) {
      length = 3, value = lead & 0x0Fu, minimum = 0x800;
    } else if ((lead & 0xF8) == 0xF0) {
      length = 4, value = lead & 0x07u, minimum = 0x10000;
    } else {
      return offset;  // a continuation byte, or 0xF8..0xFF
    }
    if (text.size() - offset < length) return offset;
    for (size_t i = 1; i < length; ++i) {
      const uint8_t next = byte(offset + i);
      if ((next & 0xC0) != 0x80) return offset;
      value = (value << 6) | (next & 0x3Fu);
    }
    if (value < minimum || value > 0x10FFFF || (value >= 0xD800 && value <= 0xDFFF)) {
      return offset;
    }
    offset += length;
  }
  return offset;
}

std::string HexByte(char c) {
  char hex[8];
  std::snprintf(hex, sizeof(hex), "0x%02X", static_cast<unsigned>(static_cast<uint8_t>(c)));
  return hex;
}

}  // namespace

std::vector<SentencePair> ParseSentencePairs(std::string_view text,
                                             std::string_view name_for_errors) {
  const std::string_view name = name_for_errors;
  const bool has_byte_order_mark = text.starts_with(kByteOrderMark);
  if (has_byte_order_mark) text.remove_prefix(kByteOrderMark.size());
  QKV_CHECK(!text.empty(), name,
            ": the file is empty; expected one source<TAB>target pair per line");

  std::vector<SentencePair> pairs;
  pairs.reserve(static_cast<size_t>(std::count(text.begin(), text.end(), '\n')) + 1);
  int64_t line_number = 0;
  size_t start = 0;
  while (start < text.size()) {  // the empty rest after a final '\n' is no line
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(start, end - start);
    start = end + 1;
    ++line_number;
    if (line.ends_with('\r')) line.remove_suffix(1);

    // The column counts bytes of the line as stored, so a byte order mark on line 1 counts.
    const size_t invalid = FirstInvalidUtf8(line);
    const size_t skipped = line_number == 1 && has_byte_order_mark ? kByteOrderMark.size() : 0;
    QKV_CHECK(invalid == line.size(), name, ":", line_number, ":", skipped + invalid + 1,
              ": invalid UTF-8 (byte ", HexByte(line[invalid]),
              "); the pairs file must be UTF-8 encoded");
    QKV_CHECK(!line.empty(), name, ":", line_number,
              ": the line is empty; every line must be source<TAB>target (remove blank lines)");
    const size_t tabs = static_cast<size_t>(std::count(line.begin(), line.end(), '\t'));
    QKV_CHECK(tabs == 1, name, ":", line_number,
              ": expected one tab between source and target, found ", tabs);
    const size_t tab = line.find('\t');
    QKV_CHECK(tab > 0, name, ":", line_number, ": the source (before the tab) is empty");
    QKV_CHECK(tab + 1 < line.size(), name, ":", line_number,
              ": the target (after the tab) is empty");
    pairs.push_back({std::string(line.substr(0, tab)), std::string(line.substr(tab + 1))});
  }
  return pairs;
}

std::vector<SentencePair> ReadSentencePairs(const std::string& path) {
  return ParseSentencePairs(ReadTextFile(path), path);
}

}  // namespace qkv::io
