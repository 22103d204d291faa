#include "qkv/tokenizer/pretokenizer.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "qkv/core/check.h"
#include "qkv/core/random.h"
#include "qkv/tokenizer/byte_level.h"
#include "qkv/tokenizer/utf8.h"

namespace qkv::tokenizer {
namespace {

std::vector<std::string> Split(std::string_view text) {
  static const Pretokenizer pretokenizer;
  std::vector<std::string> pieces;
  pretokenizer.Split(text, [&](std::string_view piece) { pieces.emplace_back(piece); });
  return pieces;
}

using Pieces = std::vector<std::string>;

TEST(Utf8Test, DecodesAndRejectsLikePcre2) {
  char32_t c;
  EXPECT_EQ(utf8::DecodeOne("\xC3\xA9", 0, &c), 2);
  EXPECT_EQ(c, 0xE9u);
  EXPECT_EQ(utf8::DecodeOne("\xF0\x9F\x98\x80", 0, &c), 4);
  EXPECT_EQ(c, 0x1F600u);
  EXPECT_EQ(utf8::DecodeOne("\xC0\x80", 0, &c), 0);          // overlong NUL
  EXPECT_EQ(utf8::DecodeOne("\xE0\x80\xAF", 0, &c), 0);      // overlong '/'
  EXPECT_EQ(utf8::DecodeOne("\xED\xA0\x80", 0, &c), 0);      // surrogate U+D800
  EXPECT_EQ(utf8::DecodeOne("\xF4\x90\x80\x80", 0, &c), 0);  // above U+10FFFF
  EXPECT_EQ(utf8::DecodeOne("\xE2\x82", 0, &c), 0);          // truncated
  EXPECT_EQ(utf8::DecodeOne("\x80", 0, &c), 0);              // lone continuation
  EXPECT_EQ(utf8::FirstInvalidOffset("ab\xC3\xA9"
                                     "c\xFF"),
            5u);
  EXPECT_EQ(utf8::FirstInvalidOffset("ok"), 2u);
  EXPECT_EQ(utf8::Describe(0xE9), "'\xC3\xA9' (U+00E9)");
  EXPECT_EQ(utf8::Describe('\n'), "U+000A");
}

TEST(ByteLevelTest, MatchesGpt2Table) {
  const auto& table = byte_level::ByteToChar();
  EXPECT_EQ(table[' '], 0x120u);   // 'Ġ'
  EXPECT_EQ(table['\n'], 0x10Au);  // 'Ċ'
  EXPECT_EQ(table['A'], static_cast<char32_t>('A'));
  EXPECT_EQ(table[0], 0x100u);
  EXPECT_EQ(table[0xAD], 0x143u);  // the last remapped byte
  EXPECT_EQ(byte_level::ByteOrder()[0], '!');
  EXPECT_EQ(byte_level::ByteOrder()[188], 0);  // GPT-2's id 188 is 'Ā', byte 0
  std::string all;
  for (int b = 0; b < 256; ++b) all.push_back(static_cast<char>(b));
  std::string back;
  ASSERT_TRUE(byte_level::Decode(byte_level::Encode(all), &back));
  EXPECT_EQ(back, all);
  EXPECT_FALSE(byte_level::Decode(" ", &back));         // a raw space stands for no byte
  EXPECT_FALSE(byte_level::Decode("\xC5\x84", &back));  // U+0144, just past the table
}

TEST(PretokenizerTest, CutsLikeGpt2) {
  EXPECT_EQ(Split("Hello world's  test\n\n x"),
            (Pieces{"Hello", " world", "'s", " ", " test", "\n\n", " x"}));
  EXPECT_EQ(Split("I'm 123abc!!  ?"), (Pieces{"I", "'m", " 123", "abc", "!!", " ", " ?"}));
  EXPECT_EQ(Split("trailing   "), (Pieces{"trailing", "   "}));
  EXPECT_EQ(Split("\n\nFirst"), (Pieces{"\n", "\n", "First"}));
  EXPECT_EQ(Split("caf\xC3\xA9 \xE6\x97\xA5\xE6\x9C\xAC"),
            (Pieces{"caf\xC3\xA9", " \xE6\x97\xA5\xE6\x9C\xAC"}));
  EXPECT_EQ(Split(std::string("a\0b", 3)), (Pieces{"a", std::string("\0", 1), "b"}));
  EXPECT_EQ(Split(""), Pieces{});
}

// \s is Unicode's White_Space, as in GPT-2's Python regex: U+0085 is whitespace, U+FEFF and
// U+180E are not (the JavaScript reference differs on U+0085 and U+FEFF; PCRE2's own \s on
// U+180E).
TEST(PretokenizerTest, WhitespaceIsUnicodeWhiteSpace) {
  EXPECT_EQ(Split("a\xC2\x85\xC2\x85"
                  "b"),
            (Pieces{"a", "\xC2\x85", "\xC2\x85", "b"}));
  EXPECT_EQ(Split("a\xEF\xBB\xBF\xEF\xBB\xBF"
                  "b"),
            (Pieces{"a", "\xEF\xBB\xBF\xEF\xBB\xBF", "b"}));
  EXPECT_EQ(Split("a\xE1\xA0\x8E"
                  "b"),
            (Pieces{"a", "\xE1\xA0\x8E", "b"}));
  EXPECT_EQ(Split("a\xC2\xA0"
                  "b"),
            (Pieces{"a", "\xC2\xA0", "b"}));
}

TEST(PretokenizerTest, InvalidUtf8RunsAreTheirOwnPieces) {
  EXPECT_EQ(Split("ab\xFF\xFE"
                  "cd"),
            (Pieces{"ab", "\xFF\xFE", "cd"}));
  // The run before the invalid bytes ends there, so its trailing whitespace stays together.
  EXPECT_EQ(Split("a  \x80 b"), (Pieces{"a", "  ", "\x80", " b"}));
  EXPECT_EQ(Split("\xED\xA0\x80x"), (Pieces{"\xED\xA0\x80", "x"}));
}

TEST(PretokenizerTest, PiecesConcatenateToAnyBytes) {
  Random random(7);
  for (int trial = 0; trial < 300; ++trial) {
    std::string text(random.NextU64() % 64, '\0');
    for (char& c : text) {
      // Mostly ASCII letters and spaces, some high bytes so valid and invalid UTF-8 both occur.
      const uint64_t r = random.NextU64();
      c = static_cast<char>(r % 4 == 0 ? (r >> 8) % 256 : " aZ'\n9\t"[(r >> 8) % 7]);
    }
    std::string joined;
    for (const std::string& piece : Split(text)) {
      ASSERT_FALSE(piece.empty());
      joined += piece;
    }
    EXPECT_EQ(joined, text);
  }
}

// A pattern of one's own (Hugging Face's Split, behavior "Isolated"): matches and the text
// between them are pieces; empty matches are skipped, also at the end of the text.
TEST(PretokenizerTest, OwnPatternsKeepTheTextBetweenMatches) {
  const auto split = [](const Pretokenizer& pretokenizer, std::string_view text) {
    Pieces pieces;
    pretokenizer.Split(text, [&](std::string_view piece) { pieces.emplace_back(piece); });
    return pieces;
  };
  const Pretokenizer stars("b*", "test pattern");
  EXPECT_EQ(split(stars, "abba"), (Pieces{"a", "bb", "a"}));
  EXPECT_EQ(split(stars,
                  "\xC3\xA9"
                  "b\xFF"
                  "b"),
            (Pieces{"\xC3\xA9", "b", "\xFF", "b"}));
  EXPECT_EQ(split(Pretokenizer("x", "x"), "axbxx"), (Pieces{"a", "x", "b", "x", "x"}));
  EXPECT_EQ(split(Pretokenizer("q", "q"), "none"), (Pieces{"none"}));
  EXPECT_EQ(split(Pretokenizer("\\p{N}{1,3}", "digits"), "12345a"), (Pieces{"123", "45", "a"}));
  try {
    const Pretokenizer bad("(open", "my pattern");
    ADD_FAILURE() << "no error";
  } catch (const qkv::Error& error) {
    EXPECT_NE(std::string(error.what()).find("PCRE2 rejected my pattern at offset 5"),
              std::string::npos)
        << error.what();
  }
}

}  // namespace
}  // namespace qkv::tokenizer
