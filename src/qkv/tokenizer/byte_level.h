// GPT-2's byte-level alphabet (bytes_to_unicode in openai/gpt-2 encoder.py): every byte is
// shown as one printable Unicode character, so that vocabulary files are text without spaces
// or control characters. Printable Latin-1 bytes ('!'..'~', '¡'..'¬', '®'..'ÿ') stand for
// themselves; the other 68 bytes, in increasing order, become U+0100, U+0101, ... (so the
// space 0x20 is 'Ġ' U+0120 and the newline 0x0A is 'Ċ' U+010A).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace qkv::tokenizer::byte_level {

// The character that stands for each byte.
const std::array<char32_t, 256>& ByteToChar();

// The bytes in GPT-2's vocabulary order: byte_order[i] is the byte whose token has id i in
// GPT-2's encoder.json (printable bytes first, then the remapped ones). Trained qkv BPE
// vocabularies use the same first 256 ids.
const std::array<uint8_t, 256>& ByteOrder();

// The byte-level string of raw bytes: each byte replaced by its character, in UTF-8.
std::string Encode(std::string_view bytes);

// The raw bytes of a byte-level string; false if it is not valid UTF-8 or contains a
// character that stands for no byte.
bool Decode(std::string_view text, std::string* bytes);

}  // namespace qkv::tokenizer::byte_level
