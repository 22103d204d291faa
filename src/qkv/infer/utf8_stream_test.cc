// Utf8Stream: characters split across tokens come out whole, invalid bytes as U+FFFD.
#include "qkv/infer/utf8_stream.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
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
            kReplacement + kReplacement + kReplacement);  // surrogate: ED takes 80..9F only
  EXPECT_EQ(stream.Append("\xE6\x97"), "");
  EXPECT_EQ(stream.Finish(), kReplacement);  // the stream ended inside a character
  EXPECT_EQ(stream.Finish(), "");
}

// Each maximal ill-formed subpart becomes one U+FFFD (Unicode, §3.9 "U+FFFD Substitution of
// Maximal Subparts"): the standard's own example, and the one of the bug report.
TEST(Utf8StreamTest, OneReplacementPerMaximalSubpart) {
  const auto decode = [](const std::string& bytes) {
    Utf8Stream stream;
    std::string out = stream.Append(bytes);
    return out + stream.Finish();
  };
  const std::string r = kReplacement;
  EXPECT_EQ(decode("\x61\xF1\x80\x80\xE1\x80\xC2\x62\x80\x63\x80\xBF\x64"),
            "a" + r + r + r + "b" + r + "c" + r + r + "d");
  EXPECT_EQ(decode("\xEA\x92\xDF\xB0"), r + "\xDF\xB0");  // then U+07F0
  EXPECT_EQ(decode("\xF0\x9F\x98"), r);                   // cut short at the end
  EXPECT_EQ(decode("\xF0\x9F\x98!"), r + "!");
  EXPECT_EQ(decode("\xE0\x80\x80"), r + r + r);          // overlong: E0 takes A0..BF only
  EXPECT_EQ(decode("\xF4\x90\x80\x80"), r + r + r + r);  // past U+10FFFF
}

// Against Python's decoder (bytes.decode("utf-8", "replace") follows the same practice), on
// random byte strings rich in lead and continuation bytes, fed to the stream in random pieces.
TEST(Utf8StreamTest, AgreesWithPythonOnRandomBytes) {
  if (!std::filesystem::exists("/usr/bin/python3")) GTEST_SKIP() << "no /usr/bin/python3";
  std::mt19937 random(7);
  const unsigned char interesting[] = {0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF,
                                       0xC0, 0xC1, 0xC2, 0xDF, 0xE0, 0xE1, 0xEC, 0xED, 0xEE,
                                       0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xFF};
  const auto dir =
      std::filesystem::temp_directory_path() / ("qkv_utf8_" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  std::vector<std::string> inputs(500);
  for (size_t n = 0; n < inputs.size(); ++n) {
    const size_t length = random() % 12;
    for (size_t k = 0; k < length; ++k) {
      inputs[n] += static_cast<char>(
          random() % 3 == 0 ? random() % 256 : interesting[random() % sizeof(interesting)]);
    }
    std::ofstream(dir / std::to_string(n), std::ios::binary) << inputs[n];
  }
  const std::string script =
      "import sys, pathlib\n"
      "d = pathlib.Path(sys.argv[1])\n"
      "for n in range(int(sys.argv[2])):\n"
      "    (d / (str(n) + '.out')).write_bytes((d / str(n)).read_bytes()"
      ".decode('utf-8', 'replace').encode('utf-8'))\n";
  std::ofstream(dir / "decode.py") << script;
  const std::string command = "/usr/bin/python3 " + (dir / "decode.py").string() + " " +
                              dir.string() + " " + std::to_string(inputs.size());
  ASSERT_EQ(std::system(command.c_str()), 0) << command;
  for (size_t n = 0; n < inputs.size(); ++n) {
    std::ifstream in(dir / (std::to_string(n) + ".out"), std::ios::binary);
    std::stringstream expected;
    expected << in.rdbuf();
    Utf8Stream stream;
    std::string out;
    for (size_t i = 0; i < inputs[n].size();) {
      const size_t piece = 1 + random() % 3;
      out += stream.Append(std::string_view(inputs[n]).substr(i, piece));
      i += piece;
    }
    out += stream.Finish();
    EXPECT_EQ(out, expected.str()) << "input #" << n;
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace qkv::infer
