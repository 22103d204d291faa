#include "qkv/infer/utf8_stream.h"

#include "qkv/tokenizer/utf8.h"

namespace qkv::infer {

namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

// Length of the UTF-8 sequence a lead byte announces, or 0 for a byte that cannot lead one.
int SequenceLength(unsigned char lead) {
  if (lead < 0x80) return 1;
  if (lead >= 0xC2 && lead <= 0xDF) return 2;
  if (lead >= 0xE0 && lead <= 0xEF) return 3;
  if (lead >= 0xF0 && lead <= 0xF4) return 4;
  return 0;
}

bool IsContinuation(char byte) { return (static_cast<unsigned char>(byte) & 0xC0) == 0x80; }

}  // namespace

std::string Utf8Stream::Append(std::string_view bytes) {
  pending_.append(bytes);
  std::string out;
  size_t i = 0;
  while (i < pending_.size()) {
    const size_t length =
        static_cast<size_t>(SequenceLength(static_cast<unsigned char>(pending_[i])));
    if (length == 0) {
      out.append(kReplacement);
      ++i;
      continue;
    }
    if (i + length > pending_.size()) {
      // Incomplete: wait for more bytes, unless those already here cannot continue it.
      bool can_continue = true;
      for (size_t j = i + 1; j < pending_.size(); ++j) can_continue &= IsContinuation(pending_[j]);
      if (can_continue) break;
      out.append(kReplacement);
      ++i;
      continue;
    }
    char32_t code_point = 0;
    const int valid = tokenizer::utf8::DecodeOne(pending_, i, &code_point);
    if (valid == 0) {  // e.g. an overlong form or a surrogate
      out.append(kReplacement);
      ++i;
    } else {
      out.append(pending_, i, static_cast<size_t>(valid));
      i += static_cast<size_t>(valid);
    }
  }
  pending_.erase(0, i);
  return out;
}

std::string Utf8Stream::Finish() {
  std::string out = pending_.empty() ? std::string() : std::string(kReplacement);
  pending_.clear();
  return out;
}

}  // namespace qkv::infer
