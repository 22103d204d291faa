#include "qkv/tokenizer/pretokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <string>

#include "qkv/core/check.h"
#include "qkv/tokenizer/utf8.h"

namespace qkv::tokenizer {
namespace {

std::string Gpt2Pattern() {
  // Unicode's White_Space property, spelt out (see the header for why not PCRE2's \s).
  const std::string space =
      "\\t\\n\\x0B\\f\\r\\x20\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}"
      "\\x{202F}\\x{205F}\\x{3000}";
  return "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^" + space + "\\p{L}\\p{N}]+|[" + space +
         "]+(?![^" + space + "])|[" + space + "]+";
}

std::string Pcre2Message(int error_code) {
  PCRE2_UCHAR buffer[256];
  pcre2_get_error_message(error_code, buffer, sizeof(buffer));
  return reinterpret_cast<const char*>(buffer);
}

pcre2_code* Code(const std::unique_ptr<void, Pretokenizer::CodeDeleter>& code) {
  return static_cast<pcre2_code*>(code.get());
}

}  // namespace

void Pretokenizer::CodeDeleter::operator()(void* code) const {
  pcre2_code_free(static_cast<pcre2_code*>(code));
}

Pretokenizer::Pretokenizer() : Pretokenizer(Gpt2Pattern(), "the GPT-2 pattern") {}

Pretokenizer::Pretokenizer(const std::string& pattern, const std::string& source) {
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   PCRE2_UTF | PCRE2_UCP, &error_code, &error_offset, nullptr);
  QKV_CHECK(code != nullptr, "pre-tokenizer: PCRE2 rejected ", source, " at offset ", error_offset,
            ": ", Pcre2Message(error_code));
  code_.reset(code);
  // Without a JIT for this machine PCRE2 interprets the pattern: slower, same pieces.
  uses_jit_ = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
}

Pretokenizer::~Pretokenizer() = default;

void Pretokenizer::Split(std::string_view text,
                         const std::function<void(std::string_view)>& emit) const {
  std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> match_data(
      pcre2_match_data_create_from_pattern(Code(code_), nullptr), &pcre2_match_data_free);
  QKV_CHECK(match_data != nullptr, "pre-tokenizer: out of memory for PCRE2 match data");
  size_t offset = 0;
  while (offset < text.size()) {
    const size_t valid_end = offset + utf8::FirstInvalidOffset(text.substr(offset));
    if (valid_end > offset) {
      SplitValid(text.substr(offset, valid_end - offset), match_data.get(), emit);
      offset = valid_end;
    }
    // Bytes that start no valid sequence, up to the next byte that does.
    size_t invalid_end = offset;
    char32_t code_point;
    while (invalid_end < text.size() && utf8::DecodeOne(text, invalid_end, &code_point) == 0) {
      ++invalid_end;
    }
    if (invalid_end > offset) {
      emit(text.substr(offset, invalid_end - offset));
      offset = invalid_end;
    }
  }
}

void Pretokenizer::SplitValid(std::string_view run, void* match_data_ptr,
                              const std::function<void(std::string_view)>& emit) const {
  auto* match_data = static_cast<pcre2_match_data*>(match_data_ptr);
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(run.data());
  const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(match_data);
  size_t offset = 0;   // where the next search starts
  size_t emitted = 0;  // the end of the last piece
  while (offset < run.size()) {
    // The run is valid UTF-8 (checked by the caller), so PCRE2 need not check it again.
    const int result = uses_jit_ ? pcre2_jit_match(Code(code_), subject, run.size(), offset,
                                                   PCRE2_NO_UTF_CHECK, match_data, nullptr)
                                 : pcre2_match(Code(code_), subject, run.size(), offset,
                                               PCRE2_NO_UTF_CHECK, match_data, nullptr);
    if (result == PCRE2_ERROR_NOMATCH) break;
    QKV_CHECK(result > 0, "pre-tokenizer: PCRE2 match failed at byte ", offset, ": ",
              Pcre2Message(result));
    const size_t start = ovector[0], end = ovector[1];
    if (end == start) {
      // An empty match: skipped, and the search goes on from the next character. (GPT-2's
      // pattern never matches empty text, and every character is a letter, a number,
      // whitespace or something else, so its matches follow each other without gaps.)
      if (start >= run.size()) break;
      char32_t code_point;
      offset = start + std::max(1, utf8::DecodeOne(run, start, &code_point));
      continue;
    }
    if (start > emitted) emit(run.substr(emitted, start - emitted));
    emit(run.substr(start, end - start));
    emitted = offset = end;
  }
  if (emitted < run.size()) emit(run.substr(emitted));
}

}  // namespace qkv::tokenizer
