// Sentence pairs for translation training (`qkv train --arch encoder-decoder --pairs FILE.tsv`):
// one `source<TAB>target` pair per line, UTF-8.
//
// The format, exactly:
//   - Lines end with '\n'; a '\r' just before it (a CRLF file) is removed. The last line may lack
//     its '\n'. The empty text after a final '\n' is the end of the file, not a line.
//   - A UTF-8 byte order mark (EF BB BF) at the very start of the file is skipped.
//   - Every line holds exactly one tab; the text before it is the source, the text after it the
//     target. Neither may be empty. Nothing else is trimmed: spaces are part of the text.
//   - Every other line is an error, an empty one included (a blank line in the middle or at the
//     end), as is a file with no lines at all.
//   - Every line must be valid UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing above
//     U+10FFFF).
// Errors are qkv::Error, "NAME:LINE: ..." with LINE counted from 1 (and "NAME:LINE:COLUMN: ..."
// for invalid UTF-8, COLUMN the 1-based byte offset in the line as stored in the file, a byte
// order mark on line 1 included), so that an editor can jump to the place.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace qkv::io {

struct SentencePair {
  std::string source;
  std::string target;

  bool operator==(const SentencePair&) const = default;
};

// The pairs of the file at path, in file order. Throws qkv::Error naming the path for a missing,
// unreadable or empty file and for every format error above.
std::vector<SentencePair> ReadSentencePairs(const std::string& path);

// The pairs in text, in order; name_for_errors (usually the path) starts every error message.
std::vector<SentencePair> ParseSentencePairs(std::string_view text,
                                             std::string_view name_for_errors);

}  // namespace qkv::io
