// UTF-8 helpers shared by the tokenizers: strict decoding (RFC 3629: no overlong forms, no
// surrogates, nothing above U+10FFFF, the same rules PCRE2 applies with PCRE2_UTF), encoding
// and a readable description of a code point for error messages.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace qkv::tokenizer::utf8 {

// Length in bytes (1-4) of the valid UTF-8 sequence starting at text[offset], or 0 when the
// bytes there do not start one. Writes the code point to *code_point when the result is
// non-zero. REQUIRES: offset < text.size().
int DecodeOne(std::string_view text, size_t offset, char32_t* code_point);

// Offset of the first byte that does not start a valid UTF-8 sequence, or text.size().
size_t FirstInvalidOffset(std::string_view text);

// Appends the UTF-8 encoding of code_point. REQUIRES: a Unicode scalar value.
void Append(char32_t code_point, std::string& out);

// "'é' (U+00E9)"; control and invisible characters are shown as their code point only,
// e.g. "U+000A", so an error message never contains a raw newline or NUL.
std::string Describe(char32_t code_point);

}  // namespace qkv::tokenizer::utf8
