// The pairs file format: what is accepted (CRLF, a byte order mark, no final newline, any
// UTF-8) and the exact message of every error, with its line (and column) number.
#include "qkv/io/sentence_pairs.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "qkv/testing/temp_dir.h"

namespace qkv::io {
namespace {

using testing::ErrorOf;

std::vector<SentencePair> Parse(std::string_view text) {
  return ParseSentencePairs(text, "pairs.tsv");
}
std::string ParseError(std::string_view text) {
  return ErrorOf([&] { Parse(text); });
}

const std::vector<SentencePair> kTwoPairs = {{"hello", "bonjour"}, {"the cat", "le chat"}};
const std::string kEmptyFile =
    "pairs.tsv: the file is empty; expected one source<TAB>target pair per line";
const std::string kUtf8Advice = "); the pairs file must be UTF-8 encoded";

std::string EmptyLine(int line) {
  return "pairs.tsv:" + std::to_string(line) +
         ": the line is empty; every line must be source<TAB>target (remove blank lines)";
}
std::string TabCount(int line, int found) {
  return "pairs.tsv:" + std::to_string(line) +
         ": expected one tab between source and target, found " + std::to_string(found);
}

TEST(SentencePairsTest, ReadsOnePairPerLineInOrder) {
  EXPECT_EQ(Parse("hello\tbonjour\nthe cat\tle chat\n"), kTwoPairs);
}

TEST(SentencePairsTest, AcceptsALastLineWithoutNewline) {
  EXPECT_EQ(Parse("hello\tbonjour\nthe cat\tle chat"), kTwoPairs);
  EXPECT_EQ(Parse("a\tb"), (std::vector<SentencePair>{{"a", "b"}}));
}

TEST(SentencePairsTest, StripsTheCarriageReturnOfCrlfLines) {
  EXPECT_EQ(Parse("hello\tbonjour\r\nthe cat\tle chat\r\n"), kTwoPairs);
  EXPECT_EQ(Parse("hello\tbonjour\r\nthe cat\tle chat\r"), kTwoPairs);  // no final '\n'
  EXPECT_EQ(Parse("hello\tbonjour\r\nthe cat\tle chat"), kTwoPairs);
}

TEST(SentencePairsTest, KeepsACarriageReturnThatDoesNotEndTheLine) {
  EXPECT_EQ(Parse("a\rb\tc\r\r\n"), (std::vector<SentencePair>{{"a\rb", "c\r"}}));
}

TEST(SentencePairsTest, SkipsAByteOrderMarkAtTheStartOnly) {
  EXPECT_EQ(Parse("\xEF\xBB\xBFhello\tbonjour\nthe cat\tle chat\n"), kTwoPairs);
  // U+FEFF anywhere else is text (a zero-width no-break space).
  EXPECT_EQ(Parse("a\tb\n\xEF\xBB\xBF"
                  "c\td\n"),
            (std::vector<SentencePair>{{"a", "b"},
                                       {"\xEF\xBB\xBF"
                                        "c",
                                        "d"}}));
}

TEST(SentencePairsTest, KeepsSpacesAndAnyUtf8) {
  EXPECT_EQ(Parse("  Grüße, Welt!\t你好 😀 \n"),
            (std::vector<SentencePair>{{"  Grüße, Welt!", "你好 😀 "}}));
  // The largest code point and the last before the surrogates.
  EXPECT_EQ(Parse("\xF4\x8F\xBF\xBF\t\xED\x9F\xBF"),
            (std::vector<SentencePair>{{"\xF4\x8F\xBF\xBF", "\xED\x9F\xBF"}}));
}

TEST(SentencePairsTest, AnEmptyFileIsAnError) {
  EXPECT_EQ(ParseError(""), kEmptyFile);
  EXPECT_EQ(ParseError("\xEF\xBB\xBF"), kEmptyFile);
}

TEST(SentencePairsTest, AnEmptyLineIsAnErrorNamingIt) {
  EXPECT_EQ(ParseError("\n"), EmptyLine(1));
  EXPECT_EQ(ParseError("\r\n"), EmptyLine(1));
  EXPECT_EQ(ParseError("a\tb\n\nc\td\n"), EmptyLine(2));
  // Blank lines at the end too: only the nothing after the final '\n' is not a line.
  EXPECT_EQ(ParseError("a\tb\nc\td\n\n"), EmptyLine(3));
  EXPECT_EQ(ParseError("a\tb\r\nc\td\r\n\r\n"), EmptyLine(3));
  EXPECT_EQ(ParseError("a\tb\nc\td\n\r"), EmptyLine(3));
}

TEST(SentencePairsTest, ALineWithoutATabIsAnErrorNamingIt) {
  EXPECT_EQ(ParseError("no tab here\n"), TabCount(1, 0));
  EXPECT_EQ(ParseError("a\tb\nno tab here\nc\td\n"), TabCount(2, 0));
  EXPECT_EQ(ParseError("a\tb\r\nc\td\r\nno tab here"), TabCount(3, 0));  // no final newline
  EXPECT_EQ(ParseError("a\tb\n "), TabCount(2, 0));
}

TEST(SentencePairsTest, ALineWithTwoTabsIsAnErrorNamingIt) {
  EXPECT_EQ(ParseError("a\tb\tc\n"), TabCount(1, 2));
  EXPECT_EQ(ParseError("a\tb\r\nc\td\r\ne\tf\tg\r\n"), TabCount(3, 2));
  EXPECT_EQ(ParseError("a\tb\n\t\t\t\n"), TabCount(2, 3));
}

TEST(SentencePairsTest, AnEmptySideIsAnErrorNamingLineAndSide) {
  EXPECT_EQ(ParseError("\tbonjour\n"), "pairs.tsv:1: the source (before the tab) is empty");
  EXPECT_EQ(ParseError("a\tb\nhello\t\n"), "pairs.tsv:2: the target (after the tab) is empty");
  EXPECT_EQ(ParseError("a\tb\r\nhello\t\r\n"), "pairs.tsv:2: the target (after the tab) is empty");
  EXPECT_EQ(ParseError("a\tb\nhello\t"), "pairs.tsv:2: the target (after the tab) is empty");
  EXPECT_EQ(ParseError("\t\n"), "pairs.tsv:1: the source (before the tab) is empty");
}

TEST(SentencePairsTest, InvalidUtf8IsAnErrorNamingLineAndByteColumn) {
  const auto error = [](int line, int column, const std::string& byte) {
    return "pairs.tsv:" + std::to_string(line) + ":" + std::to_string(column) +
           ": invalid UTF-8 (byte " + byte + kUtf8Advice;
  };
  EXPECT_EQ(ParseError("a\tb\nab\xFF\tc\n"), error(2, 3, "0xFF"));        // never in UTF-8
  EXPECT_EQ(ParseError("caf\xE9\tcafe\n"), error(1, 4, "0xE9"));          // Latin-1 'é'
  EXPECT_EQ(ParseError("a\tb\nc\t\x80\n"), error(2, 3, "0x80"));          // a lone continuation
  EXPECT_EQ(ParseError("\xC3\tb\n"), error(1, 1, "0xC3"));                // a lead before a tab
  EXPECT_EQ(ParseError("x\t\xC0\xAF\n"), error(1, 3, "0xC0"));            // overlong '/'
  EXPECT_EQ(ParseError("x\t\xE0\x80\xAF\n"), error(1, 3, "0xE0"));        // overlong, 3 bytes
  EXPECT_EQ(ParseError("x\t\xED\xA0\x80\n"), error(1, 3, "0xED"));        // surrogate U+D800
  EXPECT_EQ(ParseError("x\t\xF4\x90\x80\x80\n"), error(1, 3, "0xF4"));    // U+110000
  EXPECT_EQ(ParseError("x\t\xF8\x88\x80\x80\x80"), error(1, 3, "0xF8"));  // 5-byte form
  // Cut short by the end of the line, the end of the file, or a CRLF.
  EXPECT_EQ(ParseError("x\ty\xE2\x82\nz\tw\n"), error(1, 4, "0xE2"));
  EXPECT_EQ(ParseError("a\tb\nx\ty\xE2\x82"), error(2, 4, "0xE2"));
  EXPECT_EQ(ParseError("a\tb\r\nx\ty\xE2\x82\r\n"), error(2, 4, "0xE2"));
  // The byte after a valid multi-byte character: columns count bytes, not characters.
  EXPECT_EQ(ParseError("é\t\xFF\n"), error(1, 4, "0xFF"));
  // On line 1 a byte order mark counts, as a byte-counting editor or `cut -b` sees the line.
  EXPECT_EQ(ParseError("\xEF\xBB\xBF"
                       "a\xC3\tb\n"),
            error(1, 5, "0xC3"));
  EXPECT_EQ(ParseError("\xEF\xBB\xBF"
                       "a\tb\n\xFF\tc\n"),
            error(2, 1, "0xFF"));
  // Invalid UTF-8 is reported before the tab count of the same line.
  EXPECT_EQ(ParseError("\xFF\n"), error(1, 1, "0xFF"));
}

TEST(SentencePairsTest, LineNumbersCountEveryLine) {
  std::string text;
  for (int i = 0; i < 1000; ++i) text += "source " + std::to_string(i) + "\ttarget\r\n";
  EXPECT_EQ(Parse(text).size(), 1000u);
  EXPECT_EQ(Parse(text)[999], (SentencePair{"source 999", "target"}));
  EXPECT_EQ(ParseError(text + "a\tb\tc\r\n"), TabCount(1001, 2));
}

TEST(SentencePairsTest, ErrorsNameTheGivenName) {
  EXPECT_EQ(ErrorOf([] { ParseSentencePairs("a\n", "data/train.tsv"); }),
            "data/train.tsv:1: expected one tab between source and target, found 0");
}

TEST(SentencePairsTest, ReadsAFileAndNamesItsPathInErrors) {
  testing::TempDir dir;
  dir.Write("good.tsv", "\xEF\xBB\xBFhello\tbonjour\r\nthe cat\tle chat");
  EXPECT_EQ(ReadSentencePairs(dir.path() + "/good.tsv"), kTwoPairs);

  dir.Write("bad.tsv", "a\tb\nc\n");
  EXPECT_EQ(ErrorOf([&] { ReadSentencePairs(dir.path() + "/bad.tsv"); }),
            dir.path() + "/bad.tsv:2: expected one tab between source and target, found 0");

  dir.Write("empty.tsv", "");
  EXPECT_EQ(ErrorOf([&] { ReadSentencePairs(dir.path() + "/empty.tsv"); }),
            dir.path() + "/empty.tsv: the file is empty");

  const std::string missing = ErrorOf([&] { ReadSentencePairs(dir.path() + "/missing.tsv"); });
  EXPECT_EQ(missing.rfind(dir.path() + "/missing.tsv: cannot open", 0), 0u) << missing;
}

}  // namespace
}  // namespace qkv::io
