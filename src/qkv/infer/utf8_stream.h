// Utf8Stream: turns the bytes of tokens decoded one at a time into text that only ever holds
// whole UTF-8 characters. A byte-level (byte or BPE) token can end in the middle of a
// multi-byte character, and printing half a character shows garbage on a terminal; the
// stream holds such bytes back until the character is complete. Bytes that can never form a
// valid character come out as U+FFFD, as Hugging Face's decode(errors="replace") shows them.
//
//   Utf8Stream stream;
//   for (int32_t id : ids) std::cout << stream.Append(tokenizer.Decode({&id, 1})) << std::flush;
//   std::cout << stream.Finish();
#pragma once

#include <string>
#include <string_view>

namespace qkv::infer {

class Utf8Stream {
 public:
  // Appends bytes; returns the complete characters (and replacements) now available.
  std::string Append(std::string_view bytes);
  // The end of the stream: an incomplete character left over comes out as one U+FFFD.
  std::string Finish();

 private:
  std::string pending_;  // the start of an incomplete character, at most 3 bytes
};

}  // namespace qkv::infer
