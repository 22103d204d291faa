#include "qkv/tokenizer/translation_vocabulary.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "qkv/core/check.h"
#include "qkv/io/sentence_pairs.h"
#include "qkv/io/text_file.h"
#include "qkv/testing/temp_dir.h"

namespace qkv::tokenizer {
namespace {

namespace fs = std::filesystem;
using qkv::testing::ErrorOf;
using qkv::testing::TempDir;

::testing::AssertionResult Contains(const std::string& text, const std::string& part) {
  if (text.find(part) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "\"" << text << "\" does not contain \"" << part << "\"";
}

// English-Spanish pairs with accents, ñ, ¿ and ¡: 6 subjects x 5 predicates.
std::vector<io::SentencePair> Pairs() {
  const std::vector<std::pair<std::string, std::string>> subjects = {
      {"The child", "El niño"},    {"My mother", "Mi madre"},  {"The old man", "El anciano"},
      {"The doctor", "El médico"}, {"His friend", "Su amigo"}, {"The dog", "El perro"}};
  const std::vector<std::pair<std::string, std::string>> predicates = {
      {"is at home.", "está en casa."},
      {"eats bread every morning.", "come pan cada mañana."},
      {"reads a book in the garden.", "lee un libro en el jardín."},
      {"was happy yesterday!", "¡estaba feliz ayer!"},
      {"sings a song about the sea.", "canta una canción sobre el mar."}};
  std::vector<io::SentencePair> pairs;
  for (const auto& [subject_en, subject_es] : subjects) {
    for (const auto& [predicate_en, predicate_es] : predicates) {
      std::string source = subject_en, target = subject_es;
      source.append(" ").append(predicate_en);
      target.append(" ").append(predicate_es);
      pairs.push_back({source, target});
    }
  }
  pairs.push_back({"Where is the child?", "¿Dónde está el niño?"});
  return pairs;
}

// config.json as the trainer writes it: the model's keys (here only those the vocabulary
// checks) plus the vocabulary's own.
nlohmann::json ConfigFor(const TranslationVocabulary& vocabulary, const nlohmann::json& keys) {
  nlohmann::json config = {{"model_type", "marian"},
                           {"vocab_size", vocabulary.vocab_size()},
                           {"pad_token_id", vocabulary.pad_id()},
                           {"eos_token_id", vocabulary.eos_id()},
                           {"decoder_start_token_id", vocabulary.pad_id()}};
  if (!keys.is_null()) config.update(keys);  // {} is null, not an empty object
  return config;
}

TEST(TranslationVocabularyTest, ByteIdsAndSpecials) {
  const auto vocabulary = TrainTranslationVocabulary("byte", {});
  EXPECT_EQ(vocabulary->name(), "byte");
  EXPECT_EQ(vocabulary->vocab_size(), 259);
  EXPECT_EQ(vocabulary->eos_id(), 0);
  EXPECT_EQ(vocabulary->unk_id(), 1);
  EXPECT_EQ(vocabulary->pad_id(), 258);
  EXPECT_EQ(vocabulary->EncodeSource("Ab"), (std::vector<int32_t>{2 + 'A', 2 + 'b', 0}));
  EXPECT_EQ(vocabulary->EncodeTarget("Ab"), (std::vector<int32_t>{2 + 'A', 2 + 'b'}));
  EXPECT_EQ(vocabulary->EncodeSource(""), (std::vector<int32_t>{0}));
  EXPECT_TRUE(vocabulary->EncodeTarget("").empty());
  // "ñ" is C3 B1: two byte ids.
  EXPECT_EQ(vocabulary->EncodeTarget("ñ"), (std::vector<int32_t>{2 + 0xC3, 2 + 0xB1}));
  EXPECT_EQ(vocabulary->PieceText(0), "</s>");
  EXPECT_EQ(vocabulary->PieceText(1), "<unk>");
  EXPECT_EQ(vocabulary->PieceText(258), "<pad>");
  EXPECT_EQ(vocabulary->PieceText(2 + 'A'), "A");
  EXPECT_EQ(vocabulary->PieceText(2 + ' '), " ");
  EXPECT_EQ(vocabulary->PieceText(2 + 0xC3), "<0xC3>");
  EXPECT_EQ(vocabulary->PieceText(2), "<0x00>");
}

TEST(TranslationVocabularyTest, ByteRoundTripsAndDecodeDropsSpecials) {
  const auto vocabulary = TrainTranslationVocabulary("byte", {});
  for (const io::SentencePair& pair : Pairs()) {
    EXPECT_EQ(vocabulary->Decode(vocabulary->EncodeSource(pair.target)), pair.target);
    EXPECT_EQ(vocabulary->Decode(vocabulary->EncodeTarget(pair.target)), pair.target);
  }
  const std::string text = "a  b\t\n\xF0\x9F\x98\x80";  // spaces, controls, an emoji
  EXPECT_EQ(vocabulary->Decode(vocabulary->EncodeTarget(text)), text);
  EXPECT_EQ(vocabulary->Decode(std::vector<int32_t>{258, 2 + 'h', 2 + 'i', 0, 258}), "hi");
}

TEST(TranslationVocabularyTest, ByteDecodeAlwaysGivesText) {
  const auto vocabulary = TrainTranslationVocabulary("byte", {});
  // A lone continuation byte, a truncated sequence and <unk> each become U+FFFD.
  EXPECT_EQ(vocabulary->Decode(std::vector<int32_t>{2 + 'a', 2 + 0x80, 2 + 'b'}),
            "a\xEF\xBF\xBD"
            "b");
  EXPECT_EQ(vocabulary->Decode(std::vector<int32_t>{2 + 0xC3}), "\xEF\xBF\xBD");
  EXPECT_EQ(vocabulary->Decode(std::vector<int32_t>{1}), "\xEF\xBF\xBD");
}

TEST(TranslationVocabularyTest, SpmIdsAndSpecials) {
  const auto vocabulary = TrainTranslationVocabulary("spm:90", Pairs());
  EXPECT_EQ(vocabulary->name(), "spm:90");
  EXPECT_EQ(vocabulary->vocab_size(), 91);
  EXPECT_EQ(vocabulary->eos_id(), 0);
  EXPECT_EQ(vocabulary->unk_id(), 1);
  EXPECT_EQ(vocabulary->pad_id(), 90);
  EXPECT_EQ(vocabulary->PieceText(0), "</s>");
  EXPECT_EQ(vocabulary->PieceText(1), "<unk>");
  EXPECT_EQ(vocabulary->PieceText(90), "<pad>");
  const std::vector<int32_t> source = vocabulary->EncodeSource("The child is at home.");
  const std::vector<int32_t> target = vocabulary->EncodeTarget("The child is at home.");
  ASSERT_FALSE(target.empty());
  EXPECT_EQ(source.back(), 0);
  EXPECT_EQ(std::vector<int32_t>(source.begin(), source.end() - 1), target);
  for (const int32_t id : target) {
    EXPECT_GE(id, 2);
    EXPECT_LT(id, 90);
  }
  // The first word's piece carries SentencePiece's space mark.
  EXPECT_TRUE(vocabulary->PieceText(target[0]).starts_with("\xE2\x96\x81"));
}

TEST(TranslationVocabularyTest, SpmRoundTrips) {
  const auto vocabulary = TrainTranslationVocabulary("spm:90", Pairs());
  for (const io::SentencePair& pair : Pairs()) {
    EXPECT_EQ(vocabulary->Decode(vocabulary->EncodeSource(pair.source)), pair.source);
    EXPECT_EQ(vocabulary->Decode(vocabulary->EncodeTarget(pair.target)), pair.target);
  }
  std::vector<int32_t> ids = vocabulary->EncodeTarget("¿Dónde está el niño?");
  ids.insert(ids.begin(), vocabulary->pad_id());  // a decoder's start token
  ids.push_back(vocabulary->eos_id());
  EXPECT_EQ(vocabulary->Decode(ids), "¿Dónde está el niño?");
}

TEST(TranslationVocabularyTest, SpmSaveAndLoad) {
  const TempDir dir;
  const auto vocabulary = TrainTranslationVocabulary("spm:90", Pairs());
  const nlohmann::json keys = vocabulary->Save(dir.path());
  EXPECT_EQ(keys, (nlohmann::json{{"qkv_translation_vocabulary", "spm"}}));
  for (const char* name : {"source.spm", "target.spm", "vocab.json"}) {
    EXPECT_TRUE(fs::is_regular_file(fs::path(dir.path()) / name)) << name;
  }
  EXPECT_EQ(io::ReadTextFile(dir.path() + "/source.spm"),
            io::ReadTextFile(dir.path() + "/target.spm"));
  const nlohmann::json vocab = nlohmann::json::parse(io::ReadTextFile(dir.path() + "/vocab.json"));
  EXPECT_EQ(vocab.at("</s>"), 0);
  EXPECT_EQ(vocab.at("<unk>"), 1);
  EXPECT_EQ(vocab.at("<pad>"), 90);
  EXPECT_EQ(vocab.size(), 91u);

  const auto loaded = LoadTranslationVocabulary(dir.path(), ConfigFor(*vocabulary, keys));
  EXPECT_EQ(loaded->name(), "spm:90");
  EXPECT_EQ(loaded->vocab_size(), 91);
  for (const io::SentencePair& pair : Pairs()) {
    EXPECT_EQ(loaded->EncodeSource(pair.source), vocabulary->EncodeSource(pair.source));
    EXPECT_EQ(loaded->EncodeTarget(pair.target), vocabulary->EncodeTarget(pair.target));
  }
  for (int32_t id = 0; id < 91; ++id) EXPECT_EQ(loaded->PieceText(id), vocabulary->PieceText(id));

  // An OPUS-MT-style directory has no qkv key: source.spm makes it "spm".
  nlohmann::json without = ConfigFor(*vocabulary, {});
  EXPECT_EQ(LoadTranslationVocabulary(dir.path(), without)->name(), "spm:90");
}

TEST(TranslationVocabularyTest, ByteSaveAndLoad) {
  const TempDir dir;
  const auto vocabulary = TrainTranslationVocabulary("byte", {});
  const nlohmann::json keys = vocabulary->Save(dir.path());
  EXPECT_EQ(keys, (nlohmann::json{{"qkv_translation_vocabulary", "byte"}}));
  EXPECT_TRUE(fs::is_empty(dir.path()));  // no files
  const auto loaded = LoadTranslationVocabulary(dir.path(), ConfigFor(*vocabulary, keys));
  EXPECT_EQ(loaded->name(), "byte");
  EXPECT_EQ(loaded->EncodeSource("héllo"), vocabulary->EncodeSource("héllo"));
}

TEST(TranslationVocabularyTest, BadSpecsAreErrors) {
  EXPECT_TRUE(Contains(ErrorOf([] { TrainTranslationVocabulary("spm", Pairs()); }), "spm:N"));
  EXPECT_TRUE(Contains(ErrorOf([] { TrainTranslationVocabulary("spm:x", Pairs()); }), "spm:N"));
  EXPECT_TRUE(Contains(ErrorOf([] { TrainTranslationVocabulary("spm:-5", Pairs()); }), "spm:N"));
  EXPECT_TRUE(Contains(ErrorOf([] { TrainTranslationVocabulary("spm:2", Pairs()); }), "[3,"));
  EXPECT_TRUE(Contains(ErrorOf([] { TrainTranslationVocabulary("words", Pairs()); }), "byte"));
  EXPECT_TRUE(
      Contains(ErrorOf([] { TrainTranslationVocabulary("char", Pairs()); }), "decoder-only"));
  EXPECT_TRUE(
      Contains(ErrorOf([] { TrainTranslationVocabulary("bpe:300", Pairs()); }), "decoder-only"));
  // SentencePiece's own limit comes back saying which N works.
  EXPECT_TRUE(Contains(ErrorOf([] { TrainTranslationVocabulary("spm:5", Pairs()); }),
                       "use a vocabulary size of at least"));
  EXPECT_TRUE(
      Contains(ErrorOf([] { TrainTranslationVocabulary("spm:100000", Pairs()); }), "too large"));
}

TEST(TranslationVocabularyTest, InvalidUtf8NamesTheByte) {
  for (const char* spec : {"byte", "spm:90"}) {
    const auto vocabulary = TrainTranslationVocabulary(spec, Pairs());
    const std::string message = ErrorOf([&] { vocabulary->EncodeSource("ab\xFF"); });
    EXPECT_TRUE(Contains(message, "not valid UTF-8 at byte 2")) << spec;
    EXPECT_TRUE(Contains(ErrorOf([&] { vocabulary->EncodeTarget("\xC3"); }), "UTF-8 at byte 0"))
        << spec;
  }
}

TEST(TranslationVocabularyTest, IdsOutOfRangeAreErrors) {
  for (const char* spec : {"byte", "spm:90"}) {
    const auto vocabulary = TrainTranslationVocabulary(spec, Pairs());
    const int32_t size = static_cast<int32_t>(vocabulary->vocab_size());
    const std::string past = std::to_string(size);
    EXPECT_TRUE(Contains(ErrorOf([&] {
                           vocabulary->Decode(std::vector<int32_t>{2, size});
                         }),
                         std::string("token id ")
                             .append(past)
                             .append(" is outside the vocabulary [0, ")
                             .append(past)
                             .append(")")))
        << spec;
    EXPECT_TRUE(
        Contains(ErrorOf([&] { vocabulary->Decode(std::vector<int32_t>{-1}); }), "token id -1"))
        << spec;
    EXPECT_TRUE(Contains(ErrorOf([&] { vocabulary->PieceText(size); }), "token id " + past))
        << spec;
  }
}

TEST(TranslationVocabularyTest, LoadErrorsNameTheProblem) {
  const TempDir dir;
  const auto spm = TrainTranslationVocabulary("spm:90", Pairs());
  const auto byte = TrainTranslationVocabulary("byte", {});
  const nlohmann::json spm_config = ConfigFor(*spm, {{"qkv_translation_vocabulary", "spm"}});
  const nlohmann::json byte_config = ConfigFor(*byte, {{"qkv_translation_vocabulary", "byte"}});

  // No vocabulary at all, and a missing source.spm.
  EXPECT_TRUE(Contains(ErrorOf([&] { LoadTranslationVocabulary(dir.path(), ConfigFor(*spm, {})); }),
                       "no translation vocabulary"));
  EXPECT_TRUE(Contains(ErrorOf([&] { LoadTranslationVocabulary(dir.path(), spm_config); }),
                       "source.spm: missing"));
  // An unknown kind.
  EXPECT_TRUE(Contains(ErrorOf([&] {
                         LoadTranslationVocabulary(
                             dir.path(), ConfigFor(*spm, {{"qkv_translation_vocabulary", "bpe"}}));
                       }),
                       "\"qkv_translation_vocabulary\" is \"bpe\""));
  EXPECT_TRUE(Contains(
      ErrorOf([&] {
        LoadTranslationVocabulary(dir.path(), ConfigFor(*spm, {{"qkv_translation_vocabulary", 3}}));
      }),
      "must be \"spm\" or \"byte\""));

  // Sizes and special ids that disagree with the config.
  nlohmann::json wrong_size = byte_config;
  wrong_size["vocab_size"] = 300;
  EXPECT_TRUE(Contains(ErrorOf([&] { LoadTranslationVocabulary(dir.path(), wrong_size); }),
                       "\"vocab_size\" is 300 but"));
  nlohmann::json wrong_pad = byte_config;
  wrong_pad["pad_token_id"] = 0;
  EXPECT_TRUE(Contains(ErrorOf([&] { LoadTranslationVocabulary(dir.path(), wrong_pad); }),
                       "\"pad_token_id\" is 0"));

  spm->Save(dir.path());
  nlohmann::json spm_wrong_size = spm_config;
  spm_wrong_size["vocab_size"] = 90;
  const std::string message =
      ErrorOf([&] { LoadTranslationVocabulary(dir.path(), spm_wrong_size); });
  EXPECT_TRUE(Contains(message, "\"vocab_size\" is 90 but"));
  EXPECT_TRUE(Contains(message, "source.spm"));
  EXPECT_TRUE(Contains(message, "91 ids"));

  // A target.spm of its own, a vocab.json that disagrees, and bytes that are no model.
  dir.Write("target.spm", "other");
  EXPECT_TRUE(Contains(ErrorOf([&] { LoadTranslationVocabulary(dir.path(), spm_config); }),
                       "target.spm differs from"));
  fs::remove(fs::path(dir.path()) / "target.spm");
  dir.Write("vocab.json", "{\"</s>\": 0}");
  EXPECT_TRUE(Contains(ErrorOf([&] { LoadTranslationVocabulary(dir.path(), spm_config); }),
                       "vocab.json: does not list the pieces"));
  dir.Write("vocab.json", "{");
  EXPECT_TRUE(Contains(ErrorOf([&] { LoadTranslationVocabulary(dir.path(), spm_config); }),
                       "vocab.json: not valid JSON"));
  fs::remove(fs::path(dir.path()) / "vocab.json");
  dir.Write("source.spm", "not a model");
  EXPECT_TRUE(Contains(ErrorOf([&] { LoadTranslationVocabulary(dir.path(), spm_config); }),
                       "source.spm is not a valid SentencePiece model"));
}

}  // namespace
}  // namespace qkv::tokenizer
