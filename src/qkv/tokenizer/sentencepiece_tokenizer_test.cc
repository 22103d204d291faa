#include "qkv/tokenizer/sentencepiece_tokenizer.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "qkv/core/check.h"
#include "qkv/core/random.h"
#include "qkv/testing/temp_dir.h"
#include "qkv/tokenizer/tokenizer.h"
#include "qkv/tokenizer/utf8.h"

namespace qkv::tokenizer {
namespace {

using qkv::testing::ErrorOf;
using qkv::testing::TempDir;

using Json = nlohmann::json;

// A SentencePiece ModelProto written by hand (protobuf's wire format), so that these tests
// need neither the trainer nor Python: a BPE model over "▁", "a", "b", "c" with the merges
// "▁a", "ab", "▁ab" (by score), <unk> <s> </s>, the 256 byte pieces (byte fallback), and
// Llama's normalizer settings (identity, dummy prefix, extra whitespace kept).
// Ids: 0 <unk>, 1 <s>, 2 </s>, 3 + b <0xbb>, 259 ▁, 260 a, 261 b, 262 c, 263 ▁a, 264 ab,
// 265 ▁ab.
class Proto {
 public:
  Proto& Varint(int field, uint64_t value) {
    Key(field, 0);
    Raw(value);
    return *this;
  }
  Proto& Float(int field, float value) {
    Key(field, 5);
    char bytes[4];
    std::memcpy(bytes, &value, 4);
    data_.append(bytes, 4);
    return *this;
  }
  Proto& Bytes(int field, const std::string& value) {
    Key(field, 2);
    Raw(value.size());
    data_ += value;
    return *this;
  }
  const std::string& data() const { return data_; }

 private:
  void Key(int field, int wire) { Raw(static_cast<uint64_t>(field) << 3 | wire); }
  void Raw(uint64_t value) {
    do {
      const auto byte = static_cast<char>(value & 0x7F);
      value >>= 7;
      data_ += static_cast<char>(byte | (value != 0 ? 0x80 : 0));
    } while (value != 0);
  }
  std::string data_;
};

std::string TestModel() {
  enum Type { kNormal = 1, kUnknown = 2, kControl = 3, kByte = 6 };
  struct Piece {
    std::string text;
    float score;
    Type type;
  };
  std::vector<Piece> pieces = {{"<unk>", 0, kUnknown}, {"<s>", 0, kControl}, {"</s>", 0, kControl}};
  for (int byte = 0; byte < 256; ++byte) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", byte);
    pieces.push_back({name, 0, kByte});
  }
  const std::string space = "\xE2\x96\x81";
  for (const Piece& piece : std::vector<Piece>{{space, -10, kNormal},
                                               {"a", -11, kNormal},
                                               {"b", -12, kNormal},
                                               {"c", -13, kNormal},
                                               {space + "a", -1, kNormal},
                                               {"ab", -2, kNormal},
                                               {space + "ab", -3, kNormal}}) {
    pieces.push_back(piece);
  }
  Proto model;
  for (const Piece& piece : pieces) {
    model.Bytes(1, Proto().Bytes(1, piece.text).Float(2, piece.score).Varint(3, piece.type).data());
  }
  // trainer_spec: model_type BPE, vocab_size, byte_fallback.
  model.Bytes(2, Proto().Varint(3, 2).Varint(4, pieces.size()).Varint(35, 1).data());
  // normalizer_spec: name, add_dummy_prefix, remove_extra_whitespaces, escape_whitespaces.
  model.Bytes(3, Proto().Bytes(1, "identity").Varint(3, 1).Varint(4, 0).Varint(5, 1).data());
  return model.data();
}

std::unique_ptr<SentencePieceTokenizer> Load(const SentencePieceOptions& options = {}) {
  return SentencePieceTokenizer::FromString(TestModel(), "test tokenizer.model", options);
}

using Ids = std::vector<int32_t>;

TEST(SentencePieceTokenizerTest, EncodesWithBosAndByteFallback) {
  const auto tokenizer = Load();
  EXPECT_EQ(tokenizer->name(), "sentencepiece");
  EXPECT_EQ(tokenizer->vocab_size(), 266);
  EXPECT_EQ(tokenizer->bos_id(), 1);
  EXPECT_EQ(tokenizer->eos_id(), 2);
  EXPECT_EQ(tokenizer->Encode("ab"), (Ids{1, 265}));
  EXPECT_EQ(tokenizer->Encode("ba"), (Ids{1, 259, 261, 260}));
  EXPECT_EQ(tokenizer->Encode(""), (Ids{1}));
  EXPECT_EQ(tokenizer->Encode("\xC3\xA9"), (Ids{1, 259, 3 + 0xC3, 3 + 0xA9}));  // é, bytes
  EXPECT_EQ(tokenizer->Encode("ab ab  c"), (Ids{1, 265, 265, 259, 259, 262}));
  EXPECT_EQ(Load({.add_bos = false, .add_eos = true})->Encode("ab"), (Ids{265, 2}));
  EXPECT_EQ(Load({.add_bos = false, .add_eos = false})->Encode(""), Ids{});
}

TEST(SentencePieceTokenizerTest, DecodesAndRoundTrips) {
  const auto tokenizer = Load();
  EXPECT_EQ(tokenizer->Decode(Ids{1, 265, 2}), "ab");
  EXPECT_EQ(tokenizer->Decode(Ids{259, 3 + 0xC3, 3 + 0xA9}), "\xC3\xA9");
  EXPECT_NE(ErrorOf([&] { tokenizer->Decode(Ids{266}); }).find("id 266 at position 0"),
            std::string::npos);
  EXPECT_NE(ErrorOf([&] { tokenizer->Decode(Ids{-1}); }).find("outside [0, 266)"),
            std::string::npos);
  // Streaming: each token's bytes where it follows others (the first word's space kept).
  EXPECT_EQ(tokenizer->TokenBytes(265), " ab");
  EXPECT_EQ(tokenizer->TokenBytes(1), "");
  EXPECT_EQ(tokenizer->TokenBytes(3 + 0xC3), "\xC3");
  const std::vector<std::string> parts = {
      "a", "b",  "c",   " ", "  ", "\n", "\t", "\xC3\xA9", "\xE6\x97\xA5", "\xF0\x9F\x98\x80",
      "x", "ab", "\r\n"};
  Random random(3);
  for (int trial = 0; trial < 300; ++trial) {
    std::string text;
    const uint64_t length = random.NextU64() % 30;
    for (uint64_t i = 0; i < length; ++i) text += parts[random.NextU64() % parts.size()];
    const Ids ids = tokenizer->Encode(text);
    ASSERT_EQ(tokenizer->Decode(ids), text) << "trial " << trial;
    std::string stream;
    for (int32_t id : ids) stream += tokenizer->TokenBytes(id);
    ASSERT_EQ(stream, text.empty() ? "" : " " + text) << "trial " << trial;
  }
}

TEST(SentencePieceTokenizerTest, SpecialTokensAndInvalidUtf8) {
  const auto tokenizer = Load();
  const EncodeOptions allow{.allow_special = true, .progress = {}};
  EXPECT_EQ(tokenizer->Encode("ab<s>ba</s>", allow), (Ids{1, 265, 1, 259, 261, 260, 2}));
  EXPECT_EQ(tokenizer->Encode("<unk>", allow), (Ids{1, 0}));
  const Ids plain = tokenizer->Encode("ab<s>");
  EXPECT_EQ(plain.size(), 5u);  // BOS, "▁ab", then <s> as the bytes of its text
  EXPECT_EQ(tokenizer->Decode(plain), "ab<s>");
  const std::string message = ErrorOf([&] { tokenizer->Encode("ab\xFFz"); });
  EXPECT_NE(message.find("not valid UTF-8 at byte 2"), std::string::npos) << message;
}

TEST(SentencePieceTokenizerTest, SavesAndLoadsFromDirectories) {
  const TempDir dir("qkv_spm_");
  const auto tokenizer = Load({.add_bos = false, .add_eos = true});
  const Json entry = SaveTokenizer(*tokenizer, dir.path());
  EXPECT_EQ(entry, (Json{{"type", "sentencepiece"},
                         {"file", "tokenizer.model"},
                         {"add_bos", false},
                         {"add_eos", true}}));
  const auto loaded = LoadTokenizer({{"tokenizer", entry}}, dir.path());
  EXPECT_EQ(loaded->name(), "sentencepiece");
  EXPECT_EQ(loaded->Encode("abc"), tokenizer->Encode("abc"));

  // A Hugging Face directory: config.json without "tokenizer", tokenizer.model, and maybe
  // tokenizer_config.json with LlamaTokenizer's add_bos_token / add_eos_token.
  dir.Write("config.json", Json{{"model_type", "llama"}}.dump());
  EXPECT_EQ(LoadTokenizerFromModelDir(dir.path())->Encode("ab"), (Ids{1, 265}));
  dir.Write("tokenizer_config.json",
            Json{{"add_bos_token", false}, {"add_eos_token", true}}.dump());
  EXPECT_EQ(LoadTokenizerFromModelDir(dir.path())->Encode("ab"), (Ids{265, 2}));
  dir.Write("tokenizer_config.json", Json{{"add_bos_token", "yes"}}.dump());
  EXPECT_NE(ErrorOf([&] { LoadTokenizerFromModelDir(dir.path()); }).find("\"add_bos_token\""),
            std::string::npos);
  dir.Write("tokenizer_config.json", "{oops");
  EXPECT_NE(ErrorOf([&] { LoadTokenizerFromModelDir(dir.path()); }).find("not valid JSON"),
            std::string::npos);
  EXPECT_NE(ErrorOf([&] {
              LoadTokenizer(
                  {{"tokenizer",
                    {{"type", "sentencepiece"}, {"file", "tokenizer.model"}, {"add_bos", 1}}}},
                  dir.path());
            }).find("\"add_bos\" must be true or false"),
            std::string::npos);
}

TEST(SentencePieceTokenizerTest, MalformedModelsAreClearErrors) {
  const std::string model = TestModel();
  for (const std::string& bad : {std::string(), std::string("not a model at all"),
                                 model.substr(0, model.size() / 2), std::string(100, '\xFF')}) {
    const std::string message =
        ErrorOf([&] { SentencePieceTokenizer::FromString(bad, "'dir/tokenizer.model'", {}); });
    EXPECT_NE(message.find("'dir/tokenizer.model'"), std::string::npos) << message;
  }
  // A model without a BOS piece cannot add one.
  Proto no_bos;
  no_bos.Bytes(1, Proto().Bytes(1, "<unk>").Float(2, 0).Varint(3, 2).data());
  no_bos.Bytes(1, Proto().Bytes(1, "a").Float(2, 0).Varint(3, 1).data());
  no_bos.Bytes(2, Proto().Varint(3, 2).Varint(4, 2).Varint(41, 100).data());
  const std::string message =
      ErrorOf([&] { SentencePieceTokenizer::FromString(no_bos.data(), "'nobos.model'", {}); });
  EXPECT_NE(message.find("'nobos.model': add_bos is set but the SentencePiece model has no BOS"),
            std::string::npos)
      << message;
  EXPECT_NE(ErrorOf([] {
              SentencePieceTokenizer::FromFile("/nonexistent/tokenizer.model");
            }).find("cannot open the tokenizer file '/nonexistent/tokenizer.model'"),
            std::string::npos);
}

}  // namespace
}  // namespace qkv::tokenizer
