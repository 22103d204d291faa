#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "qkv/core/check.h"
#include "qkv/core/random.h"
#include "qkv/tokenizer/byte_tokenizer.h"
#include "qkv/tokenizer/char_tokenizer.h"
#include "qkv/tokenizer/utf8.h"

namespace qkv::tokenizer {
namespace {

std::string ErrorOf(const std::function<void()>& action) {
  try {
    action();
  } catch (const qkv::Error& error) {
    return error.what();
  }
  return "(no error)";
}

TEST(CharTokenizerTest, VocabularyIsTheSortedSetOfCharacters) {
  const CharTokenizer tokenizer = CharTokenizer::Train("hello, w\xC3\xB6rld\n");
  // sorted(set("hello, wörld\n")): '\n' ' ' ',' 'd' 'e' 'h' 'l' 'o' 'r' 'w' 'ö'
  EXPECT_EQ(tokenizer.characters(),
            (std::vector<char32_t>{'\n', ' ', ',', 'd', 'e', 'h', 'l', 'o', 'r', 'w', 0xF6}));
  EXPECT_EQ(tokenizer.vocab_size(), 11);
  EXPECT_EQ(tokenizer.Encode("hello"), (std::vector<int32_t>{5, 4, 6, 6, 7}));
  EXPECT_EQ(tokenizer.Encode("w\xC3\xB6"), (std::vector<int32_t>{9, 10}));
  EXPECT_EQ(tokenizer.Decode(std::vector<int32_t>{5, 10, 0}), "h\xC3\xB6\n");
  EXPECT_EQ(tokenizer.name(), "char");
}

TEST(CharTokenizerTest, UnknownCharactersAreNamedOnceEach) {
  const CharTokenizer tokenizer = CharTokenizer::Train("abc ");
  const std::string message =
      ErrorOf([&] { tokenizer.Encode("caf\xC3\xA9 \xC3\xA9t\xC3\xA9!\n"); });
  EXPECT_NE(message.find("'\xC3\xA9' (U+00E9)"), std::string::npos) << message;
  EXPECT_NE(message.find("'t' (U+0074)"), std::string::npos) << message;
  EXPECT_NE(message.find("'!' (U+0021)"), std::string::npos) << message;
  EXPECT_NE(message.find("U+000A"), std::string::npos) << message;
  EXPECT_NE(message.find("5 character(s)"), std::string::npos) << message;
  EXPECT_EQ(message.find("U+00E9", message.find("U+00E9") + 1), std::string::npos) << message;
}

TEST(CharTokenizerTest, InvalidUtf8NamesTheByteOffset) {
  EXPECT_NE(ErrorOf([] {
              CharTokenizer::Train(
                  "abc\xFF"
                  "d");
            }).find("byte offset 3"),
            std::string::npos);
  const CharTokenizer tokenizer = CharTokenizer::Train("ab");
  EXPECT_NE(ErrorOf([&] { tokenizer.Encode("a\xC3"); }).find("byte offset 1"), std::string::npos);
  EXPECT_NE(ErrorOf([] { CharTokenizer::Train(""); }).find("empty"), std::string::npos);
  EXPECT_NE(ErrorOf([&] {
              tokenizer.Decode(std::vector<int32_t>{0, 2});
            }).find("id 2"),
            std::string::npos);
}

TEST(CharTokenizerTest, RoundTripsRandomValidText) {
  Random random(11);
  const std::vector<char32_t> alphabet = {'a', ' ', '\n', 0, 0xE9, 0x4E2D, 0x1F600, 0x10FFFF, '~'};
  std::string training;
  for (char32_t c : alphabet) utf8::Append(c, training);
  const CharTokenizer tokenizer = CharTokenizer::Train(training);
  EXPECT_EQ(tokenizer.vocab_size(), static_cast<int64_t>(alphabet.size()));
  for (int trial = 0; trial < 200; ++trial) {
    std::string text;
    for (uint64_t i = random.NextU64() % 50; i > 0; --i) {
      utf8::Append(alphabet[random.NextU64() % alphabet.size()], text);
    }
    EXPECT_EQ(tokenizer.Decode(tokenizer.Encode(text)), text);
  }
}

TEST(CharTokenizerTest, JsonRoundTripAndErrors) {
  const CharTokenizer tokenizer = CharTokenizer::Train("ba\xC3\xA9\n");
  const nlohmann::json entry = tokenizer.Save("/nonexistent");
  EXPECT_EQ(entry["type"], "char");
  EXPECT_EQ(entry["characters"], (nlohmann::json{"\n", "a", "b", "\xC3\xA9"}));
  EXPECT_EQ(CharTokenizer::FromJson(entry).characters(), tokenizer.characters());
  EXPECT_NE(ErrorOf([] {
              CharTokenizer::FromJson({{"type", "char"}});
            }).find("\"characters\""),
            std::string::npos);
  EXPECT_NE(ErrorOf([] {
              CharTokenizer::FromJson({{"characters", {"a", "bc"}}});
            }).find("exactly one character"),
            std::string::npos);
  EXPECT_NE(ErrorOf([] {
              CharTokenizer::FromJson({{"characters", {"a", "a"}}});
            }).find("twice"),
            std::string::npos);
  EXPECT_NE(ErrorOf([] {
              CharTokenizer::FromJson({{"characters", {"a", 3}}});
            }).find("not a string"),
            std::string::npos);
}

TEST(ByteTokenizerTest, RoundTripsAnyBytes) {
  const ByteTokenizer tokenizer;
  Random random(3);
  for (int trial = 0; trial < 200; ++trial) {
    std::string text(random.NextU64() % 100, '\0');
    for (char& c : text) c = static_cast<char>(random.NextU64() % 256);
    const std::vector<int32_t> ids = tokenizer.Encode(text);
    ASSERT_EQ(ids.size(), text.size());
    for (size_t i = 0; i < ids.size(); ++i) EXPECT_EQ(ids[i], static_cast<uint8_t>(text[i]));
    EXPECT_EQ(tokenizer.Decode(ids), text);
  }
  EXPECT_NE(ErrorOf([&] {
              tokenizer.Decode(std::vector<int32_t>{1, 256});
            }).find("id 256"),
            std::string::npos);
  EXPECT_EQ(tokenizer.Save("/nonexistent"), (nlohmann::json{{"type", "byte"}}));
}

}  // namespace
}  // namespace qkv::tokenizer
