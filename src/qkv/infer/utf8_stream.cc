#include "qkv/infer/utf8_stream.h"

namespace qkv::infer {

namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

// The well-formed UTF-8 sequences (Unicode, Table 3-7): the length a lead byte announces
// (0: the byte cannot start a sequence) and the range its second byte must fall in; every
// later byte is 80..BF. The narrower second ranges exclude overlong forms, surrogates and
// code points past U+10FFFF.
struct LeadByte {
  size_t length;
  unsigned char second_min, second_max;
};

LeadByte Classify(unsigned char lead) {
  if (lead < 0x80) return {1, 0, 0};
  if (lead >= 0xC2 && lead <= 0xDF) return {2, 0x80, 0xBF};
  if (lead == 0xE0) return {3, 0xA0, 0xBF};
  if (lead == 0xED) return {3, 0x80, 0x9F};
  if (lead >= 0xE1 && lead <= 0xEF) return {3, 0x80, 0xBF};
  if (lead == 0xF0) return {4, 0x90, 0xBF};
  if (lead == 0xF4) return {4, 0x80, 0x8F};
  if (lead >= 0xF1 && lead <= 0xF3) return {4, 0x80, 0xBF};
  return {0, 0, 0};
}

}  // namespace

// Unicode's recommended practice (followed by Python, ICU and WHATWG): each maximal subpart
// of an ill-formed sequence (the longest prefix of a well-formed sequence that is there)
// becomes one U+FFFD, and decoding goes on at the byte that broke it.
std::string Utf8Stream::Append(std::string_view bytes) {
  pending_.append(bytes);
  std::string out;
  size_t i = 0;
  while (i < pending_.size()) {
    const LeadByte lead = Classify(static_cast<unsigned char>(pending_[i]));
    if (lead.length == 0) {
      out.append(kReplacement);
      ++i;
      continue;
    }
    size_t fitting = 1;  // bytes of the sequence that are well-formed so far
    while (fitting < lead.length && i + fitting < pending_.size()) {
      const unsigned char byte = static_cast<unsigned char>(pending_[i + fitting]);
      const unsigned char min = fitting == 1 ? lead.second_min : 0x80;
      const unsigned char max = fitting == 1 ? lead.second_max : 0xBF;
      if (byte < min || byte > max) break;
      ++fitting;
    }
    if (fitting == lead.length) {
      out.append(pending_, i, lead.length);
    } else if (i + fitting == pending_.size()) {
      break;  // a character cut short by the end of what has arrived: wait for the rest
    } else {
      out.append(kReplacement);
    }
    i += fitting;
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
