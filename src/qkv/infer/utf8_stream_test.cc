// Utf8Stream: characters split across tokens come out whole, invalid bytes as U+FFFD.
#include "qkv/infer/utf8_stream.h"

#include <gtest/gtest.h>

#include <string>

namespace qkv::infer {
namespace {

const std::string kReplacement = "\xEF\xBF\xBD";

TEST(Utf8StreamTest, HoldsBackSplitCharactersUntilComplete) {
  Utf8Stream stream;
  const std::string text =
      "a\xC3\xA9"
      "b\xE6\x97\xA5\xF0\x9F\x98\x80";  // a é b 日 😀
  std::string out;
  for (char byte : text) {
    const std::string piece = stream.Append(std::string(1, byte));
    // Every piece is whole characters: it never ends inside one.
    if (!piece.empty()) {
      EXPECT_FALSE((static_cast<unsigned char>(piece.back()) & 0xC0) == 0xC0) << piece;
    }
    out += piece;
  }
  EXPECT_EQ(out + stream.Finish(), text);
  EXPECT_EQ(stream.Append("\xE6\x97"), "");
  EXPECT_EQ(stream.Append("\xA5!"), "\xE6\x97\xA5!");
}

TEST(Utf8StreamTest, InvalidBytesBecomeReplacementCharacters) {
  Utf8Stream stream;
  EXPECT_EQ(stream.Append("\xFF"
                          "a"),
            kReplacement + "a");
  EXPECT_EQ(stream.Append("\x80"), kReplacement);  // a lone continuation byte
  EXPECT_EQ(stream.Append("\xC3"
                          "b"),
            kReplacement + "b");  // a lead byte cut short
  EXPECT_EQ(stream.Append("\xED\xA0\x80"),
            kReplacement + kReplacement + kReplacement);  // surrogate
  EXPECT_EQ(stream.Append("\xE6\x97"), "");
  EXPECT_EQ(stream.Finish(), kReplacement);  // the stream ended inside a character
  EXPECT_EQ(stream.Finish(), "");
}

}  // namespace
}  // namespace qkv::infer
