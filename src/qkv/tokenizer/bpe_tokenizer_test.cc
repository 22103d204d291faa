#include "qkv/tokenizer/bpe_tokenizer.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <climits>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "qkv/core/check.h"
#include "qkv/core/random.h"
#include "qkv/testing/temp_dir.h"
#include "qkv/tokenizer/byte_level.h"
#include "qkv/tokenizer/tokenizer.h"

namespace qkv::tokenizer {
namespace {

using qkv::testing::ErrorOf;
using qkv::testing::TempDir;

::testing::AssertionResult ErrorHas(const std::function<void()>& action, const std::string& text) {
  const std::string message = ErrorOf(action);
  if (message.find(text) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "error \"" << message << "\" lacks \"" << text << "\"";
}

// Pseudo-English with some Unicode, digits, NUL and invalid UTF-8 mixed in.
std::string TrainingText(uint64_t seed, int words) {
  const std::vector<std::string> vocabulary = {"the",
                                               "cat",
                                               "sat",
                                               "on",
                                               "mat",
                                               "and",
                                               "then",
                                               "they",
                                               "went",
                                               "home",
                                               "caf\xC3\xA9",
                                               "\xE6\x97\xA5\xE6\x9C\xAC",
                                               "1234",
                                               "don't",
                                               "it's",
                                               "\xF0\x9F\x98\x80",
                                               "aaaa",
                                               "!!",
                                               std::string("\0\0", 2),
                                               "\xFF\xFE",
                                               "  ",
                                               "\n"};
  Random random(seed);
  std::string text;
  for (int i = 0; i < words; ++i) {
    text += vocabulary[random.NextU64() % vocabulary.size()];
    text += random.NextU64() % 5 == 0 ? "\n" : " ";
  }
  return text;
}

std::string RandomBytes(Random& random, size_t max_length) {
  std::string text(random.NextU64() % (max_length + 1), '\0');
  for (char& c : text) {
    const uint64_t r = random.NextU64();
    c = static_cast<char>(r % 3 == 0 ? (r >> 8) % 256 : "the cat\n\0'a"[(r >> 8) % 12]);
  }
  return text;
}

std::unique_ptr<BpeTokenizer> Train(std::string_view text, int64_t num_tokens) {
  BpeTrainOptions options;
  options.num_tokens = num_tokens;
  return BpeTokenizer::Train(text, options);
}

const BpeTokenizer& SmallBpe() {
  static const std::unique_ptr<BpeTokenizer> tokenizer = Train(TrainingText(1, 20000), 320);
  return *tokenizer;
}

// A fresh directory per test, removed at the end.
TEST(BpeTokenizerTest, TrainsTheRequestedVocabulary) {
  const BpeTokenizer& tokenizer = SmallBpe();
  EXPECT_EQ(tokenizer.vocab_size(), 320);
  EXPECT_EQ(tokenizer.name(), "bpe");
  // The first 256 ids are the bytes in GPT-2's order.
  EXPECT_EQ(tokenizer.tokens()[0], "!");
  EXPECT_EQ(tokenizer.tokens()[188], "\xC4\x80");  // 'Ā', byte 0
  // Frequent words become single tokens.
  EXPECT_EQ(tokenizer.Encode(" the").size(), 1u);
  EXPECT_LT(tokenizer.Encode(TrainingText(2, 200)).size(), TrainingText(2, 200).size() / 3);
}

TEST(BpeTokenizerTest, TrainingIsDeterministic) {
  const std::string text = TrainingText(5, 3000);
  const auto first = Train(text, 300), second = Train(text, 300);
  EXPECT_EQ(first->VocabJson(), second->VocabJson());
  EXPECT_EQ(first->MergesText(), second->MergesText());
}

// Equal counts go to the pair with the smaller left token bytes, then right token bytes.
TEST(BpeTokenizerTest, TiesBreakOnTokenBytes) {
  // Pieces "ab" and " cd": every pair occurs once.
  const auto tokenizer = Train("ab cd", 259);
  EXPECT_EQ(tokenizer->MergesText(),
            "#version: 0.2\n\xC4\xA0 c\n\xC4\xA0"
            "c d\na b\n");
}

TEST(BpeTokenizerTest, StopsWhenNoPairIsLeft) {
  const auto tokenizer = Train("ab ab ab", 1000);
  // Pieces "ab" (once) and " ab" (twice): "ab" (3), then " ab" (2), then nothing is left.
  EXPECT_EQ(tokenizer->vocab_size(), 258);
  EXPECT_EQ(tokenizer->Encode("ab ab"), (std::vector<int32_t>{256, 257}));
}

TEST(BpeTokenizerTest, RoundTripsAnyBytes) {
  const BpeTokenizer& tokenizer = SmallBpe();
  Random random(17);
  for (int trial = 0; trial < 500; ++trial) {
    const std::string text = RandomBytes(random, 200);
    const std::vector<int32_t> ids = tokenizer.Encode(text);
    ASSERT_EQ(tokenizer.Decode(ids), text) << "trial " << trial;
    EXPECT_EQ(tokenizer.Encode(text), ids);  // the cached result is the same
  }
  // Trained on raw binary too.
  std::string binary = RandomBytes(random, 5000) + RandomBytes(random, 5000);
  const auto binary_tokenizer = Train(binary, 300);
  for (int trial = 0; trial < 100; ++trial) {
    const std::string text = RandomBytes(random, 300);
    EXPECT_EQ(binary_tokenizer->Decode(binary_tokenizer->Encode(text)), text);
  }
}

// GPT-2's bpe() from encoder.py, written plainly: find the lowest-ranked pair, merge all its
// occurrences left to right, repeat.
std::vector<int32_t> ReferenceBpe(const BpeTokenizer& tokenizer, std::string_view piece) {
  std::map<std::pair<std::string, std::string>, int> ranks;
  std::map<std::string, int32_t> ids;
  for (size_t i = 0; i < tokenizer.tokens().size(); ++i) ids[tokenizer.tokens()[i]] = i;
  std::istringstream merges(tokenizer.MergesText());
  std::string line;
  std::getline(merges, line);
  for (int rank = 0; std::getline(merges, line); ++rank) {
    ranks.emplace(std::make_pair(line.substr(0, line.find(' ')), line.substr(line.find(' ') + 1)),
                  rank);
  }
  std::vector<std::string> word;
  for (char byte : piece) word.push_back(byte_level::Encode(std::string(1, byte)));
  while (word.size() > 1) {
    int best = INT_MAX;
    std::pair<std::string, std::string> bigram;
    for (size_t i = 0; i + 1 < word.size(); ++i) {
      const auto it = ranks.find({word[i], word[i + 1]});
      if (it != ranks.end() && it->second < best) best = it->second, bigram = it->first;
    }
    if (best == INT_MAX) break;
    std::vector<std::string> merged;
    for (size_t i = 0; i < word.size(); ++i) {
      if (i + 1 < word.size() && word[i] == bigram.first && word[i + 1] == bigram.second) {
        merged.push_back(word[i] + word[i + 1]);
        ++i;
      } else {
        merged.push_back(word[i]);
      }
    }
    word = merged;
  }
  std::vector<int32_t> result;
  result.reserve(word.size());
  for (const std::string& token : word) result.push_back(ids.at(token));
  return result;
}

TEST(BpeTokenizerTest, PieceMergingMatchesGpt2sAlgorithm) {
  const BpeTokenizer& tokenizer = SmallBpe();
  Random random(23);
  // The NUL byte as std::string(1, '\0'): the literal "\0" would make an empty string.
  const std::vector<std::string> parts = {
      "the", " cat", "a", "aa", "t", "h", "e", " ", "\xC3\xA9", "'s", "1", std::string(1, '\0')};
  for (int trial = 0; trial < 300; ++trial) {
    std::string piece;
    // Long pieces too: the heap-based merging must agree there as well.
    const uint64_t count = trial % 10 == 0 ? 300 : random.NextU64() % 12 + 1;
    for (uint64_t i = 0; i < count; ++i) piece += parts[random.NextU64() % parts.size()];
    std::vector<int32_t> ids;
    tokenizer.EncodePiece(piece, &ids);
    EXPECT_EQ(ids, ReferenceBpe(tokenizer, piece)) << "piece '" << piece << "'";
  }
}

TEST(BpeTokenizerTest, SpecialTokensAreKeptWholeWhenAllowed) {
  const BpeTokenizer& small = SmallBpe();
  nlohmann::json vocab = nlohmann::json::parse(small.VocabJson());
  vocab["<|endoftext|>"] = small.vocab_size();
  const auto tokenizer = BpeTokenizer::FromStrings(vocab.dump(), small.MergesText());
  const int32_t end_of_text = static_cast<int32_t>(small.vocab_size());
  ASSERT_EQ(tokenizer->vocab_size(), small.vocab_size() + 1);
  const std::string text = "the cat<|endoftext|>sat<|endoftext|>";
  const std::vector<int32_t> allowed =
      tokenizer->Encode(text, {.allow_special = true, .progress = {}});
  EXPECT_EQ(std::count(allowed.begin(), allowed.end(), end_of_text), 2);
  EXPECT_EQ(allowed.back(), end_of_text);
  const std::vector<int32_t> plain = tokenizer->Encode(text);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), end_of_text), 0);
  EXPECT_EQ(tokenizer->Decode(allowed), text);
  EXPECT_EQ(tokenizer->Decode(plain), text);
}

TEST(BpeTokenizerTest, SaveAndLoadRoundTrip) {
  const TempDir dir("qkv_bpe_");
  const BpeTokenizer& tokenizer = SmallBpe();
  const nlohmann::json entry = SaveTokenizer(tokenizer, dir.path());
  EXPECT_EQ(entry,
            (nlohmann::json{
                {"type", "bpe"}, {"vocab_file", "vocab.json"}, {"merges_file", "merges.txt"}}));
  const auto loaded = LoadTokenizer({{"tokenizer", entry}, {"n_layer", 2}}, dir.path());
  EXPECT_EQ(loaded->vocab_size(), tokenizer.vocab_size());
  const auto* bpe = dynamic_cast<const BpeTokenizer*>(loaded.get());
  ASSERT_NE(bpe, nullptr);
  EXPECT_EQ(bpe->VocabJson(), tokenizer.VocabJson());
  EXPECT_EQ(bpe->MergesText(), tokenizer.MergesText());
  const std::string text = TrainingText(9, 500);
  EXPECT_EQ(loaded->Encode(text), tokenizer.Encode(text));
}

TEST(TokenizerTest, SaveAndLoadCharAndByte) {
  const TempDir dir("qkv_bpe_");
  for (const std::string spec : {"char", "byte"}) {
    const auto tokenizer = TrainTokenizer(spec, "hello there", nullptr);
    const nlohmann::json entry = SaveTokenizer(*tokenizer, dir.path());
    EXPECT_EQ(entry["type"], spec);
    dir.Write("config.json", nlohmann::json{{"tokenizer", entry}}.dump());
    const auto loaded = LoadTokenizerFromModelDir(dir.path());
    EXPECT_EQ(loaded->name(), spec);
    EXPECT_EQ(loaded->vocab_size(), tokenizer->vocab_size());
    EXPECT_EQ(loaded->Encode("three"), tokenizer->Encode("three"));
  }
}

TEST(TokenizerTest, BadSpecsAreNamed) {
  for (const std::string spec : {"words", "bpe", "bpe:", "bpe:abc", "bpe:12x", "bpe:-5"}) {
    EXPECT_TRUE(ErrorHas([&] { TrainTokenizer(spec, "text", nullptr); }, "\"" + spec + "\""));
    EXPECT_TRUE(ErrorHas([&] { TrainTokenizer(spec, "text", nullptr); }, "bpe:N"));
  }
  EXPECT_TRUE(ErrorHas([&] { TrainTokenizer("bpe:256", "text", nullptr); }, "at least 257"));
  EXPECT_EQ(TrainTokenizer("bpe:257", "aa", nullptr)->vocab_size(), 257);
}

TEST(TokenizerTest, BadConfigEntriesAreErrors) {
  const TempDir dir("qkv_bpe_");
  EXPECT_TRUE(ErrorHas(
      [&] {
        LoadTokenizer({{"n_layer", 2}}, dir.path());
      },
      "no \"tokenizer\" entry"));
  EXPECT_TRUE(ErrorHas([&] { LoadTokenizer({{"tokenizer", "bpe"}}, dir.path()); }, "\"type\""));
  EXPECT_TRUE(ErrorHas(
      [&] {
        LoadTokenizer({{"tokenizer", {{"type", "words"}}}}, dir.path());
      },
      "unknown tokenizer type \"words\""));
  EXPECT_TRUE(ErrorHas(
      [&] {
        LoadTokenizer({{"tokenizer", {{"type", "bpe"}}}}, dir.path());
      },
      "\"vocab_file\""));
  EXPECT_TRUE(ErrorHas(
      [&] {
        LoadTokenizer(
            {{"tokenizer",
              {{"type", "bpe"}, {"vocab_file", "vocab.json"}, {"merges_file", "merges.txt"}}}},
            dir.path());
      },
      "cannot open"));
  EXPECT_TRUE(ErrorHas([&] { LoadTokenizerFromModelDir(dir.path()); }, "config.json"));
  dir.Write("config.json", "{not json");
  EXPECT_TRUE(ErrorHas([&] { LoadTokenizerFromModelDir(dir.path()); }, "not valid JSON"));
}

TEST(BpeTokenizerTest, MalformedFilesAreClearErrors) {
  const BpeTokenizer& small = SmallBpe();
  const std::string vocab = small.VocabJson(), merges = small.MergesText();
  EXPECT_TRUE(ErrorHas([&] { BpeTokenizer::FromStrings("{\"a\": 0,", merges); }, "not valid JSON"));
  EXPECT_TRUE(
      ErrorHas([&] { BpeTokenizer::FromStrings("[1, 2]", merges); }, "must be a JSON object"));
  nlohmann::json bad = nlohmann::json::parse(vocab);
  bad["!"] = "zero";
  EXPECT_TRUE(ErrorHas([&] { BpeTokenizer::FromStrings(bad.dump(), merges); }, "has id \"zero\""));
  bad = nlohmann::json::parse(vocab);
  bad["!"] = 100000;
  EXPECT_TRUE(ErrorHas([&] { BpeTokenizer::FromStrings(bad.dump(), merges); }, "has id 100000"));
  bad = nlohmann::json::parse(vocab);
  bad["!"] = 1;  // '"' also has id 1
  EXPECT_TRUE(ErrorHas([&] { BpeTokenizer::FromStrings(bad.dump(), merges); },
                       "id 1 is used by two tokens"));
  bad = nlohmann::json::parse(vocab);
  const int64_t last = bad["\xC4\xA0"].get<int64_t>();  // 'Ġ', the space byte
  bad.erase("\xC4\xA0");
  for (auto& [token, id] : bad.items()) {
    if (id.get<int64_t>() == small.vocab_size() - 1) id = last;
  }
  EXPECT_TRUE(ErrorHas([&] { BpeTokenizer::FromStrings(bad.dump(), "#version: 0.2\n"); },
                       "no token for byte 0x20"));
  EXPECT_TRUE(ErrorHas([&] { BpeTokenizer::FromStrings(vocab, "#version: 0.2\nt h\nlonely\n"); },
                       "line 3: expected two tokens"));
  EXPECT_TRUE(ErrorHas([&] { BpeTokenizer::FromStrings(vocab, "#version: 0.2\nzzzz q\n"); },
                       "unknown token \"zzzz\""));
  EXPECT_TRUE(ErrorHas([&] { BpeTokenizer::FromStrings(vocab, "#version: 0.2\nq \xC3\xBF\n"); },
                       "is not in the vocabulary"));
  EXPECT_TRUE(ErrorHas(
      [&] { BpeTokenizer::FromFiles("/nonexistent/vocab.json", "/nonexistent/merges.txt"); },
      "cannot open the vocabulary file '/nonexistent/vocab.json'"));
  // Merges missing: the vocabulary's merged tokens become special tokens, which is allowed,
  // but an empty merges file with GPT-2 style tokens still loads and round-trips.
  const auto no_merges = BpeTokenizer::FromStrings(vocab, "");
  EXPECT_EQ(no_merges->num_merges(), 0);
  EXPECT_EQ(no_merges->Decode(no_merges->Encode("the cat")), "the cat");
}

}  // namespace
}  // namespace qkv::tokenizer
