#include "qkv/tokenizer/hf_bpe_tokenizer.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "qkv/core/check.h"
#include "qkv/core/random.h"
#include "qkv/testing/temp_dir.h"
#include "qkv/tokenizer/bpe_tokenizer.h"
#include "qkv/tokenizer/byte_level.h"
#include "qkv/tokenizer/tokenizer.h"

namespace qkv::tokenizer {
namespace {

using qkv::testing::ErrorOf;
using qkv::testing::TempDir;

using Json = nlohmann::json;

std::string Token(std::string_view bytes) { return byte_level::Encode(bytes); }

// A tokenizer.json: the 256 byte tokens (GPT-2's order), then `extra` tokens (byte-level
// strings), the merges, and GPT-2's ByteLevel pre-tokenizer and decoder.
Json TokenizerJson(const std::vector<std::string>& extra, const Json& merges) {
  Json vocab = Json::object();
  for (int id = 0; id < 256; ++id) {
    vocab[Token(std::string(1, static_cast<char>(byte_level::ByteOrder()[id])))] = id;
  }
  for (const std::string& token : extra) vocab[token] = vocab.size();
  return {{"version", "1.0"},
          {"added_tokens", Json::array()},
          {"normalizer", nullptr},
          {"pre_tokenizer",
           {{"type", "ByteLevel"},
            {"add_prefix_space", false},
            {"trim_offsets", true},
            {"use_regex", true}}},
          {"post_processor", nullptr},
          {"decoder", {{"type", "ByteLevel"}}},
          {"model", {{"type", "BPE"}, {"dropout", nullptr}, {"vocab", vocab}, {"merges", merges}}}};
}

// Llama 3's pre-tokenisation: its Split pattern, then ByteLevel without GPT-2's regex.
constexpr char kLlama3Pattern[] =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

Json Llama3PreTokenizer() {
  return {{"type", "Sequence"},
          {"pretokenizers",
           {{{"type", "Split"},
             {"pattern", {{"Regex", kLlama3Pattern}}},
             {"behavior", "Isolated"},
             {"invert", false}},
            {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}};
}

std::unique_ptr<HfBpeTokenizer> Load(const Json& json) {
  return HfBpeTokenizer::FromString(json.dump(), "test tokenizer.json");
}

std::string RandomBytes(Random& random, size_t max_length) {
  std::string text(random.NextU64() % (max_length + 1), '\0');
  for (char& c : text) {
    const uint64_t r = random.NextU64();
    c = static_cast<char>(r % 3 == 0 ? (r >> 8) % 256 : "the cat\n\0'a1 "[(r >> 8) % 14]);
  }
  return text;
}

TEST(HfBpeTokenizerTest, Gpt2LayoutEncodesAsQkvsGpt2Bpe) {
  // A trained qkv BPE written as a tokenizer.json: both implement GPT-2's encoding.
  Random random(5);
  std::string training;
  for (int i = 0; i < 200; ++i) training += "the cat sat on the mat, 1234 caf\xC3\xA9 don't ";
  training += RandomBytes(random, 3000);
  BpeTrainOptions options;
  options.num_tokens = 400;
  const std::unique_ptr<BpeTokenizer> bpe = BpeTokenizer::Train(training, options);
  Json vocab = Json::object();
  for (size_t id = 0; id < bpe->tokens().size(); ++id) vocab[bpe->tokens()[id]] = id;
  Json merges = Json::array();
  std::istringstream lines(bpe->MergesText());
  std::string line;
  std::getline(lines, line);  // #version
  while (std::getline(lines, line)) merges.push_back(line);
  Json json = TokenizerJson({}, merges);
  json["model"]["vocab"] = vocab;
  const auto hf = Load(json);
  EXPECT_EQ(hf->name(), "hf-bpe");
  EXPECT_EQ(hf->vocab_size(), bpe->vocab_size());
  for (int trial = 0; trial < 300; ++trial) {
    const std::string text =
        trial % 2 == 0 ? RandomBytes(random, 200) : training.substr(trial, 300);
    const std::vector<int32_t> ids = hf->Encode(text);
    ASSERT_EQ(ids, bpe->Encode(text)) << "trial " << trial;
    ASSERT_EQ(hf->Decode(ids), text) << "trial " << trial;
  }
}

TEST(HfBpeTokenizerTest, Llama3SplitAndIgnoreMerges) {
  // No merges at all: with ignore_merges a piece that is a token becomes it, so the ids show
  // how Llama 3's pattern cut the text.
  Json json = TokenizerJson({"123", "45", "12345", "'LL", Token(" x"), "don"}, Json::array());
  json["pre_tokenizer"] = Llama3PreTokenizer();
  json["model"]["ignore_merges"] = true;
  const auto tokenizer = Load(json);
  const auto id = [&](const std::string& token) {
    return json["model"]["vocab"][token].get<int32_t>();
  };
  EXPECT_EQ(tokenizer->Encode("12345"), (std::vector<int32_t>{id("123"), id("45")}));
  EXPECT_EQ(tokenizer->Encode("I'LL"), (std::vector<int32_t>{id("I"), id("'LL")}));
  // "\s+(?!\S)" leaves the last space of a run to the word after it.
  EXPECT_EQ(tokenizer->Encode("  x"), (std::vector<int32_t>{id(Token(" ")), id(Token(" x"))}));
  EXPECT_EQ(tokenizer->Encode("don't"),
            (std::vector<int32_t>{id("don"), id("'"), id("t")}));  // no merges for "'t"
  // Without ignore_merges the same pieces are merged from their bytes (here: not at all).
  json["model"]["ignore_merges"] = false;
  EXPECT_EQ(Load(json)->Encode("12345").size(), 5u);
}

TEST(HfBpeTokenizerTest, RoundTripsAnyBytes) {
  Json json = TokenizerJson({Token("th"), Token("the"), Token(" the")},
                            {Token("t") + " " + Token("h"), Token("th") + " " + Token("e"),
                             Json::array({Token(" "), Token("the")})});
  json["pre_tokenizer"] = Llama3PreTokenizer();
  json["model"]["ignore_merges"] = true;
  const auto tokenizer = Load(json);
  Random random(11);
  for (int trial = 0; trial < 300; ++trial) {
    const std::string text = RandomBytes(random, 300);
    const std::vector<int32_t> ids = tokenizer->Encode(text);
    for (int32_t token : ids) ASSERT_TRUE(token >= 0 && token < tokenizer->vocab_size());
    ASSERT_EQ(tokenizer->Decode(ids), text) << "trial " << trial;
  }
  EXPECT_EQ(tokenizer->Encode(" the"), (std::vector<int32_t>{258}));
}

TEST(HfBpeTokenizerTest, RepeatedMergeKeepsItsLastRank) {
  // As Hugging Face (and GPT-2's Python dict) do: "a b" ranks after "b c" here.
  const Json json = TokenizerJson({"ab", "bc"}, {"a b", "b c", "a b"});
  const auto tokenizer = Load(json);
  EXPECT_EQ(tokenizer->Encode("abc"),
            (std::vector<int32_t>{json["model"]["vocab"]["a"].get<int32_t>(), 257}));
}

TEST(HfBpeTokenizerTest, AddedTokensAndTheTemplate) {
  Json json = TokenizerJson({}, Json::array());
  json["added_tokens"] = {
      {{"id", 256}, {"content", "<|begin|>"}, {"special", true}},
      {{"id", 257}, {"content", "<|end|>"}, {"special", true}},
      {{"id", 258}, {"content", "<x>"}, {"special", false}},
      {{"id", 259}, {"content", "<x>y"}, {"special", false}},
  };
  json["post_processor"] = {
      {"type", "Sequence"},
      {"processors",
       {{{"type", "ByteLevel"}},
        {{"type", "TemplateProcessing"},
         {"single",
          {{{"SpecialToken", {{"id", "<|begin|>"}, {"type_id", 0}}}},
           {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
         {"special_tokens", {{"<|begin|>", {{"id", "<|begin|>"}, {"ids", {256}}}}}}}}}};
  const auto tokenizer = Load(json);
  EXPECT_EQ(tokenizer->vocab_size(), 260);
  EXPECT_EQ(tokenizer->prefix_ids(), (std::vector<int32_t>{256}));
  EXPECT_TRUE(tokenizer->is_added_token(258));
  EXPECT_FALSE(tokenizer->is_added_token(10));
  const auto a = json["model"]["vocab"]["a"].get<int32_t>();
  EXPECT_EQ(tokenizer->Encode(""), (std::vector<int32_t>{256}));
  // The non-special added tokens are matched always (the longest at a position), the special
  // ones only with allow_special.
  const std::string text = "a<x>ya<x><|end|>";
  const std::vector<int32_t> plain = tokenizer->Encode(text);
  ASSERT_GE(plain.size(), 5u);
  EXPECT_EQ(std::vector<int32_t>(plain.begin(), plain.begin() + 5),
            (std::vector<int32_t>{256, a, 259, a, 258}));
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 257), 0);
  const std::vector<int32_t> special =
      tokenizer->Encode(text, {.allow_special = true, .progress = {}});
  EXPECT_EQ(special, (std::vector<int32_t>{256, a, 259, a, 258, 257}));
  // Decode leaves out the template's token where Encode put it, nowhere else.
  EXPECT_EQ(tokenizer->Decode(plain), text);
  EXPECT_EQ(tokenizer->Decode(special), text);
  EXPECT_EQ(tokenizer->Decode(std::vector<int32_t>{a, 256, a}), "a<|begin|>a");
  EXPECT_EQ(tokenizer->TokenBytes(257), "<|end|>");
  EXPECT_NE(ErrorOf([&] { tokenizer->Decode(std::vector<int32_t>{260}); }).find("outside [0, 260)"),
            std::string::npos);
}

TEST(HfBpeTokenizerTest, AddPrefixSpace) {
  Json json = TokenizerJson({}, Json::array());
  json["pre_tokenizer"]["add_prefix_space"] = true;
  const auto tokenizer = Load(json);
  EXPECT_EQ(tokenizer->Decode(tokenizer->Encode("hi there")), " hi there");
  EXPECT_EQ(tokenizer->Decode(tokenizer->Encode(" hi")), " hi");
}

TEST(HfBpeTokenizerTest, LoadsFromHuggingFaceDirectoriesAndSaves) {
  const TempDir dir("qkv_hf_bpe_");
  Json json = TokenizerJson({Token(" t")}, {Token(" ") + " t"});
  json["pre_tokenizer"] = Llama3PreTokenizer();
  dir.Write("tokenizer.json", json.dump());
  dir.Write("config.json", Json{{"model_type", "llama"}, {"vocab_size", 257}}.dump());
  const auto loaded = LoadTokenizerFromModelDir(dir.path());
  EXPECT_EQ(loaded->name(), "hf-bpe");
  EXPECT_EQ(loaded->vocab_size(), 257);
  EXPECT_EQ(loaded->Encode(" t"), (std::vector<int32_t>{256}));

  const std::string saved = dir.path() + "/saved";
  std::filesystem::create_directories(saved);
  const Json entry = SaveTokenizer(*loaded, saved);
  EXPECT_EQ(entry, (Json{{"type", "hf-bpe"}, {"file", "tokenizer.json"}}));
  const auto again = LoadTokenizer({{"tokenizer", entry}}, saved);
  EXPECT_EQ(again->name(), "hf-bpe");
  EXPECT_EQ(again->Encode("a t t"), loaded->Encode("a t t"));

  // A tokenizer.json that is a converted SentencePiece model gives way to tokenizer.model.
  Json sentencepiece_style = json;
  sentencepiece_style["model"]["byte_fallback"] = true;
  sentencepiece_style["pre_tokenizer"] = nullptr;
  dir.Write("tokenizer.json", sentencepiece_style.dump());
  EXPECT_NE(ErrorOf([&] { LoadTokenizerFromModelDir(dir.path()); }).find("byte_fallback"),
            std::string::npos);
  dir.Write("tokenizer.model", "not a model");
  EXPECT_NE(ErrorOf([&] { LoadTokenizerFromModelDir(dir.path()); }).find("tokenizer.model"),
            std::string::npos);
  std::filesystem::remove(dir.path() + "/tokenizer.json");
  std::filesystem::remove(dir.path() + "/tokenizer.model");
  const std::string none = ErrorOf([&] { LoadTokenizerFromModelDir(dir.path()); });
  EXPECT_NE(none.find("no \"tokenizer\" entry"), std::string::npos) << none;
  EXPECT_NE(none.find("neither tokenizer.json nor tokenizer.model"), std::string::npos) << none;
  EXPECT_NE(ErrorOf([&] {
              LoadTokenizer({{"tokenizer", {{"type", "hf-bpe"}}}}, dir.path());
            }).find("\"file\""),
            std::string::npos);
  EXPECT_NE(
      ErrorOf([&] {
        LoadTokenizer({{"tokenizer", {{"type", "hf-bpe"}, {"file", "missing.json"}}}}, dir.path());
      }).find("cannot open"),
      std::string::npos);
}

// Malformed tokenizer.json files: each is a qkv::Error naming the file and the problem.
TEST(HfBpeTokenizerTest, MalformedFilesAreClearErrors) {
  const Json good = TokenizerJson({"ab"}, {"a b"});
  ASSERT_NO_THROW(Load(good));
  struct Case {
    std::function<void(Json&)> change;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {[](Json& j) { j = Json::array(); }, "expected a JSON object"},
      {[](Json& j) { j.erase("model"); }, "missing \"model\""},
      {[](Json& j) { j["model"]["type"] = "WordPiece"; }, "\"WordPiece\" is not supported"},
      {[](Json& j) { j["model"]["vocab"] = Json::array(); }, "model.vocab"},
      {[](Json& j) { j["model"]["vocab"]["ab"] = -1; }, "expected a token id"},
      {[](Json& j) { j["model"]["vocab"]["ab"] = "x"; }, "model.vocab[\"ab\"]"},
      {[](Json& j) { j["model"]["vocab"]["ab"] = 0; }, "is used by two tokens"},
      {[](Json& j) { j["model"]["vocab"]["ab"] = 1000; }, "without gaps"},
      {[](Json& j) {
         const Json id = j["model"]["vocab"]["a"];
         j["model"]["vocab"].erase("a");
         j["model"]["vocab"]["ab"] = id;
       },
       "no token for byte 0x61"},
      {[](Json& j) { j["model"]["merges"] = "a b"; }, "model.merges: expected an array"},
      {[](Json& j) { j["model"]["merges"][0] = "ab"; }, "two tokens separated by one space"},
      {[](Json& j) { j["model"]["merges"][0] = Json::array({"a"}); }, "model.merges[0]"},
      {[](Json& j) { j["model"]["merges"][0] = "a zz"; }, "\"zz\" is not in the vocabulary"},
      {[](Json& j) { j["model"]["merges"][0] = "b a"; }, "merged token \"ba\""},
      {[](Json& j) { j["model"]["dropout"] = 0.1; }, "dropout"},
      {[](Json& j) { j["model"]["byte_fallback"] = true; }, "tokenizer.model"},
      {[](Json& j) { j["model"]["continuing_subword_prefix"] = "##"; }, "continuing_subword"},
      {[](Json& j) {
         j["added_tokens"] = {{{"id", 5000}, {"content", "<x>"}}};
       },
       "without gaps"},
      {[](Json& j) {
         j["added_tokens"] = {{{"id", 258}, {"content", ""}}};
       },
       "cannot be empty"},
      {[](Json& j) {
         j["added_tokens"] = {{{"id", 258}, {"content", "<x>"}, {"lstrip", true}}};
       },
       "lstrip"},
      {[](Json& j) {
         j["added_tokens"] = {{{"id", 3}, {"content", "<x>"}}};
       },
       "but the vocabulary token"},
      {[](Json& j) {
         j["added_tokens"] = {{{"content", "<x>"}}};
       },
       "added_tokens[0]: missing"},
      {[](Json& j) {
         j["normalizer"] = {{"type", "NFC"}};
       },
       "\"NFC\" is not supported"},
      {[](Json& j) { j.erase("pre_tokenizer"); }, "missing \"pre_tokenizer\""},
      {[](Json& j) {
         j["pre_tokenizer"] = {{"type", "Whitespace"}};
       },
       "\"Whitespace\""},
      {[](Json& j) {
         j["pre_tokenizer"] = {{"type", "Sequence"}, {"pretokenizers", Json::array()}};
       },
       "no ByteLevel"},
      {[](Json& j) {
         j["pre_tokenizer"] = Llama3PreTokenizer();
         j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "(unclosed";
       },
       "PCRE2 rejected"},
      {[](Json& j) {
         j["pre_tokenizer"] = Llama3PreTokenizer();
         j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "[\\W]";
       },
       "inside a character class"},
      {[](Json& j) {
         j["pre_tokenizer"] = Llama3PreTokenizer();
         j["pre_tokenizer"]["pretokenizers"][0]["behavior"] = "Removed";
       },
       "\"Removed\" is not supported"},
      {[](Json& j) {
         j["pre_tokenizer"] = Llama3PreTokenizer();
         std::swap(j["pre_tokenizer"]["pretokenizers"][0], j["pre_tokenizer"]["pretokenizers"][1]);
       },
       "after ByteLevel"},
      {[](Json& j) {
         j["decoder"] = {{"type", "WordPiece"}};
       },
       "decoder: \"WordPiece\""},
      {[](Json& j) { j.erase("decoder"); }, "no decoder"},
      {[](Json& j) {
         j["post_processor"] = {{"type", "RobertaProcessing"}};
       },
       "\"RobertaProcessing\" is not supported"},
      {[](Json& j) {
         j["post_processor"] = {{"type", "TemplateProcessing"},
                                {"single", {{{"SpecialToken", {{"id", "<s>"}}}}}},
                                {"special_tokens", Json::object()}};
       },
       "no entry for the template's token \"<s>\""},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    Json json = good;
    cases[i].change(json);
    const std::string message = ErrorOf([&] { Load(json); });
    EXPECT_NE(message.find("test tokenizer.json"), std::string::npos)
        << "case " << i << ": " << message;
    EXPECT_NE(message.find(cases[i].expected), std::string::npos)
        << "case " << i << ": \"" << message << "\" lacks \"" << cases[i].expected << "\"";
  }
  EXPECT_NE(ErrorOf([] {
              HfBpeTokenizer::FromString("{\"model\": ", "x.json");
            }).find("x.json is not valid JSON"),
            std::string::npos);
  EXPECT_NE(ErrorOf([] {
              HfBpeTokenizer::FromFile("/nonexistent/tokenizer.json");
            }).find("cannot open the tokenizer file '/nonexistent/tokenizer.json'"),
            std::string::npos);
}

// Random damage to a valid file: every outcome is a tokenizer or a qkv::Error, never another
// exception or a crash (a libFuzzer-free cousin of tests/fuzz).
TEST(HfBpeTokenizerTest, DamagedFilesNeverCrash) {
  Json good = TokenizerJson({"ab", Token(" a")}, {"a b", Json::array({Token(" "), "a"})});
  good["pre_tokenizer"] = Llama3PreTokenizer();
  good["added_tokens"] = {{{"id", 258}, {"content", "<s>"}, {"special", true}}};
  good["post_processor"] = {
      {"type", "TemplateProcessing"},
      {"single", {{{"SpecialToken", {{"id", "<s>"}}}}, {{"Sequence", {{"id", "A"}}}}}},
      {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {258}}}}}}};
  ASSERT_EQ(Load(good)->Encode("a<s>", {.allow_special = true, .progress = {}}),
            (std::vector<int32_t>{258, good["model"]["vocab"]["a"].get<int32_t>(), 258}));
  const std::vector<Json> values = {nullptr,
                                    true,
                                    0,
                                    -1,
                                    1 << 30,
                                    3.5,
                                    "",
                                    "x",
                                    Json::array(),
                                    Json::object(),
                                    Json::array({1, "a"}),
                                    {{"type", "Split"}}};
  Random random(99);
  int loaded = 0;
  for (int trial = 0; trial < 2000; ++trial) {
    Json json = good;
    // Pick a random node by walking down, and replace or delete it.
    Json* node = &json;
    Json* parent = nullptr;
    std::string key;
    size_t index = 0;
    while ((node->is_object() || node->is_array()) && !node->empty() && random.NextU64() % 4 != 0) {
      parent = node;
      if (node->is_object()) {
        auto it = node->begin();
        std::advance(it, random.NextU64() % node->size());
        key = it.key();
        node = &(*node)[key];
      } else {
        index = random.NextU64() % node->size();
        key.clear();
        node = &(*node)[index];
      }
    }
    if (parent != nullptr && random.NextU64() % 3 == 0) {
      if (parent->is_object()) {
        parent->erase(key);
      } else {
        parent->erase(index);
      }
    } else {
      *node = values[random.NextU64() % values.size()];
    }
    try {
      const auto tokenizer = Load(json);
      const std::string text = RandomBytes(random, 50) + "<s>";
      const std::vector<int32_t> ids =
          tokenizer->Encode(text, {.allow_special = true, .progress = {}});
      for (int32_t id : ids) ASSERT_TRUE(id >= 0 && id < tokenizer->vocab_size());
      tokenizer->Decode(ids);
      ++loaded;
    } catch (const qkv::Error&) {
    } catch (const std::exception& error) {
      FAIL() << "trial " << trial << ": not a qkv::Error: " << error.what() << "\n" << json.dump();
    }
  }
  EXPECT_GT(loaded, 100);
}

}  // namespace
}  // namespace qkv::tokenizer
