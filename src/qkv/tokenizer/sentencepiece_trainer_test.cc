#include "qkv/tokenizer/sentencepiece_trainer.h"

#include <gtest/gtest.h>
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <algorithm>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "qkv/core/check.h"
#include "qkv/io/sentence_pairs.h"
#include "qkv/testing/temp_dir.h"
#include "qkv/tokenizer/sentencepiece_tokenizer.h"

namespace qkv::tokenizer {
namespace {

using qkv::testing::ErrorOf;

::testing::AssertionResult Contains(const std::string& text, const std::string& part) {
  if (text.find(part) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "\"" << text << "\" does not contain \"" << part << "\"";
}

// English-Spanish pairs from templates: 12 subjects x 10 predicates = 120 pairs, with the
// accents, ñ, ¿ and ¡ of Spanish.
std::vector<io::SentencePair> BilingualPairs() {
  const std::vector<std::pair<std::string, std::string>> subjects = {
      {"The child", "El niño"},         {"My mother", "Mi madre"},
      {"The old man", "El anciano"},    {"Our teacher", "Nuestra profesora"},
      {"The dog", "El perro"},          {"Your sister", "Tu hermana"},
      {"The doctor", "El médico"},      {"The woman from Spain", "La mujer de España"},
      {"His friend", "Su amigo"},       {"The young girl", "La niña"},
      {"The fisherman", "El pescador"}, {"Everybody", "Todo el mundo"}};
  const std::vector<std::pair<std::string, std::string>> predicates = {
      {"is at home.", "está en casa."},
      {"eats bread every morning.", "come pan cada mañana."},
      {"reads a book in the garden.", "lee un libro en el jardín."},
      {"lives near the station.", "vive cerca de la estación."},
      {"was happy yesterday!", "¡estaba feliz ayer!"},
      {"goes to the mountains in winter.", "va a las montañas en invierno."},
      {"sings a song about the sea.", "canta una canción sobre el mar."},
      {"drinks coffee after lunch.", "bebe café después del almuerzo."},
      {"is learning to swim.", "está aprendiendo a nadar."},
      {"writes a long letter to the king.", "escribe una carta larga al rey."}};
  std::vector<io::SentencePair> pairs;
  for (const auto& [subject_en, subject_es] : subjects) {
    for (const auto& [predicate_en, predicate_es] : predicates) {
      pairs.push_back({internal::StrCat(subject_en, " ", predicate_en),
                       internal::StrCat(subject_es, " ", predicate_es)});
    }
  }
  pairs.push_back({"Where is the child?", "¿Dónde está el niño?"});
  pairs.push_back({"Why?", "¿Por qué?"});
  return pairs;
}

std::vector<std::string> BilingualSentences() {
  std::vector<std::string> sentences;
  for (const io::SentencePair& pair : BilingualPairs()) {
    sentences.push_back(pair.source);
    sentences.push_back(pair.target);
  }
  return sentences;
}

SentencePieceTrainOptions Options(int vocab_size,
                                  SentencePieceModelType type = SentencePieceModelType::kUnigram) {
  SentencePieceTrainOptions options;
  options.vocab_size = vocab_size;
  options.model_type = type;
  return options;
}

TEST(SentencePieceTrainerTest, SpecialPiecesAreLaidOutAsMarian) {
  for (const auto type : {SentencePieceModelType::kUnigram, SentencePieceModelType::kBpe}) {
    const std::string model = TrainSentencePiece(BilingualSentences(), Options(120, type));
    const SentencePieceModel processor = LoadSentencePieceModel(model, "model");
    EXPECT_EQ(processor->GetPieceSize(), 120);
    EXPECT_EQ(processor->IdToPiece(0), "</s>");
    EXPECT_TRUE(processor->IsControl(0));
    EXPECT_EQ(processor->eos_id(), 0);
    EXPECT_EQ(processor->IdToPiece(1), "<unk>");
    EXPECT_TRUE(processor->IsUnknown(1));
    EXPECT_EQ(processor->unk_id(), 1);
    EXPECT_EQ(processor->bos_id(), -1);
    EXPECT_EQ(processor->pad_id(), -1);
    for (int id = 2; id < 120; ++id) {
      EXPECT_FALSE(processor->IsControl(id) || processor->IsUnknown(id)) << id;
    }
    const MarianVocabIds ids = ReadMarianVocabIds(model);
    EXPECT_EQ(ids.eos_id, 0);
    EXPECT_EQ(ids.unk_id, 1);
    EXPECT_EQ(ids.pad_id, 120);
    EXPECT_EQ(ids.vocab_size, 121);
  }
}

TEST(SentencePieceTrainerTest, TrainingIsDeterministic) {
  const std::vector<std::string> sentences = BilingualSentences();
  for (const auto type : {SentencePieceModelType::kUnigram, SentencePieceModelType::kBpe}) {
    const std::string first = TrainSentencePiece(sentences, Options(150, type));
    const std::string second = TrainSentencePiece(sentences, Options(150, type));
    EXPECT_EQ(first, second);
    EXPECT_NE(first, TrainSentencePiece(sentences, Options(140, type)));
  }
  EXPECT_NE(TrainSentencePiece(sentences, Options(150, SentencePieceModelType::kUnigram)),
            TrainSentencePiece(sentences, Options(150, SentencePieceModelType::kBpe)));
}

TEST(SentencePieceTrainerTest, PairsTrainOnBothSidesInOrder) {
  const std::vector<io::SentencePair> pairs = BilingualPairs();
  EXPECT_EQ(TrainSentencePieceOnPairs(pairs, Options(150)),
            TrainSentencePiece(BilingualSentences(), Options(150)));
  // Only the sources: another model, without the Spanish characters.
  std::vector<std::string> sources;
  sources.reserve(pairs.size());
  for (const io::SentencePair& pair : pairs) sources.push_back(pair.source);
  const std::string english = TrainSentencePiece(sources, Options(80));
  EXPECT_EQ(LoadSentencePieceModel(english, "english")->PieceToId("ñ"), kMarianUnkId);
}

TEST(SentencePieceTrainerTest, AccentedSpanishRoundTrips) {
  for (const auto type : {SentencePieceModelType::kUnigram, SentencePieceModelType::kBpe}) {
    const std::string model = TrainSentencePiece(BilingualSentences(), Options(150, type));
    const SentencePieceModel processor = LoadSentencePieceModel(model, "model");
    // character_coverage 1.0: every character of the text has its piece.
    for (const std::string character : {"ñ", "á", "é", "í", "ó", "¿", "¡", "Ñ"}) {
      if (character == "Ñ") {
        EXPECT_EQ(processor->PieceToId(character), kMarianUnkId);  // not in the text
      } else {
        EXPECT_NE(processor->PieceToId(character), kMarianUnkId) << character;
      }
    }
    for (const std::string text :
         {"¿Dónde está el niño?", "¡La niña canta una canción después del almuerzo!",
          "The doctor lives near the station.", "Mi madre está aprendiendo a nadar."}) {
      const std::vector<int32_t> ids = EncodeWithEos(*processor, text);
      ASSERT_GE(ids.size(), 2u);
      EXPECT_EQ(ids.back(), kMarianEosId);
      for (size_t i = 0; i + 1 < ids.size(); ++i) {
        EXPECT_GT(ids[i], kMarianUnkId) << text << " at " << i;
        EXPECT_LT(ids[i], 150);
      }
      std::string decoded;
      ASSERT_TRUE(processor->Decode(std::vector<int>(ids.begin(), ids.end()), &decoded).ok());
      EXPECT_EQ(decoded, text);  // </s> decodes to nothing
      // qkv's SentencePiece tokenizer over the same bytes, with EOS appended and no BOS.
      const auto tokenizer =
          SentencePieceTokenizer::FromString(model, "model", {.add_bos = false, .add_eos = true});
      EXPECT_EQ(tokenizer->Encode(text), ids);
      EXPECT_EQ(tokenizer->Decode(ids), text);
    }
    // A character the text lacks is <unk>, and decodes as SentencePiece's " ⁇ ".
    const std::vector<int32_t> ids = EncodeWithEos(*processor, "Ñu");
    EXPECT_NE(std::find(ids.begin(), ids.end(), kMarianUnkId), ids.end());
    EXPECT_EQ(EncodeWithEos(*processor, ""), std::vector<int32_t>{kMarianEosId});
  }
}

TEST(SentencePieceTrainerTest, VocabJsonAgreesWithTheModel) {
  const std::string model = TrainSentencePiece(BilingualSentences(), Options(130));
  const nlohmann::json vocab = SentencePieceVocabJson(model);
  const SentencePieceModel processor = LoadSentencePieceModel(model, "model");
  ASSERT_TRUE(vocab.is_object());
  EXPECT_EQ(vocab.size(), 131u);
  EXPECT_EQ(vocab.at("</s>"), 0);
  EXPECT_EQ(vocab.at("<unk>"), 1);
  EXPECT_EQ(vocab.at("<pad>"), 130);
  EXPECT_FALSE(vocab.contains("<s>"));
  std::set<int> ids;
  for (const auto& [piece, id] : vocab.items()) {
    ASSERT_TRUE(id.is_number_integer()) << piece;
    ids.insert(id.get<int>());
    if (piece != "<pad>") {
      EXPECT_EQ(processor->PieceToId(piece), id.get<int>()) << piece;
      EXPECT_EQ(processor->IdToPiece(id.get<int>()), piece);
    }
  }
  EXPECT_EQ(ids.size(), 131u);  // 0 .. 130, each once
  EXPECT_EQ(*ids.begin(), 0);
  EXPECT_EQ(*ids.rbegin(), 130);
  // What MarianTokenizer does: SentencePiece's pieces, looked up in vocab.json, then </s>.
  const std::string text = "¿Dónde está el niño?";
  std::vector<std::string> pieces;
  ASSERT_TRUE(processor->Encode(text, &pieces).ok());
  std::vector<int32_t> marian;
  marian.reserve(pieces.size() + 1);
  for (const std::string& piece : pieces) marian.push_back(vocab.at(piece).get<int32_t>());
  marian.push_back(vocab.at("</s>").get<int32_t>());
  EXPECT_EQ(EncodeWithEos(*processor, text), marian);
}

TEST(SentencePieceTrainerTest, VocabularySizeErrorsSayWhatToDo) {
  const std::vector<std::string> sentences = BilingualSentences();
  EXPECT_TRUE(Contains(ErrorOf([&] { TrainSentencePiece(sentences, Options(2)); }),
                       "SentencePiece vocabulary size 2 is too small"));
  EXPECT_TRUE(Contains(ErrorOf([&] { TrainSentencePiece(sentences, Options(0)); }), "at least 3"));
  EXPECT_TRUE(Contains(ErrorOf([&] { TrainSentencePiece(sentences, Options(-5)); }),
                       "size -5 is too small"));

  // Fewer pieces than characters: the error names the smallest size, which trains.
  const std::string small = ErrorOf([&] { TrainSentencePiece(sentences, Options(10)); });
  EXPECT_TRUE(Contains(small, "vocabulary size 10 is too small for the training text"));
  const size_t at_least = small.find("at least ");
  ASSERT_NE(at_least, std::string::npos) << small;
  const int minimum = std::stoi(small.substr(at_least + 9));
  EXPECT_GT(minimum, 30);  // the letters of both languages, accented ones, ¿ ¡ . !
  EXPECT_TRUE(Contains(small, "--tokenizer spm:" + std::to_string(minimum)));
  EXPECT_NO_THROW(TrainSentencePiece(sentences, Options(minimum)));
  EXPECT_TRUE(Contains(ErrorOf([&] { TrainSentencePiece(sentences, Options(minimum - 1)); }),
                       "at least " + std::to_string(minimum)));

  // More pieces than the text yields: the error names the largest size, which trains.
  for (const auto type : {SentencePieceModelType::kUnigram, SentencePieceModelType::kBpe}) {
    const std::string large = ErrorOf([&] { TrainSentencePiece(sentences, Options(50000, type)); });
    EXPECT_TRUE(Contains(large, "vocabulary size 50000 is too large for the training text"));
    const size_t at_most = large.find("at most ");
    ASSERT_NE(at_most, std::string::npos) << large;
    const int maximum = std::stoi(large.substr(at_most + 8));
    EXPECT_GT(maximum, minimum);
    EXPECT_LT(maximum, 50000);
    EXPECT_TRUE(Contains(large, "or train on more text"));
    const std::string model = TrainSentencePiece(sentences, Options(maximum, type));
    EXPECT_EQ(ReadMarianVocabIds(model).pad_id, maximum);
  }
}

TEST(SentencePieceTrainerTest, BadTrainingTextIsAnError) {
  EXPECT_TRUE(Contains(ErrorOf([] { TrainSentencePiece({}, Options(100)); }),
                       "no training text (no sentences)"));
  const std::vector<std::string> empty = {"", "", ""};
  EXPECT_TRUE(Contains(ErrorOf([&] { TrainSentencePiece(empty, Options(100)); }),
                       "no training text (every sentence is empty)"));
  EXPECT_TRUE(
      Contains(ErrorOf([] { TrainSentencePieceOnPairs({}, Options(100)); }), "no training text"));
  std::vector<std::string> invalid = BilingualSentences();
  invalid[3] = "caf\xC3";  // a cut two-byte sequence
  EXPECT_TRUE(Contains(ErrorOf([&] { TrainSentencePiece(invalid, Options(100)); }),
                       "sentence 4 is not valid UTF-8 at byte 3"));
  std::vector<io::SentencePair> invalid_pairs = BilingualPairs();
  invalid_pairs[2].target = "ni\xF1o";
  EXPECT_TRUE(Contains(ErrorOf([&] { TrainSentencePieceOnPairs(invalid_pairs, Options(100)); }),
                       "the target of pair 3 is not valid UTF-8 at byte 2"));
  SentencePieceTrainOptions options = Options(100);
  options.num_threads = 0;
  EXPECT_TRUE(Contains(ErrorOf([&] { TrainSentencePiece(BilingualSentences(), options); }),
                       "num_threads must be at least 1"));
  options = Options(100);
  options.normalization = "no_such_rule";
  EXPECT_TRUE(Contains(ErrorOf([&] { TrainSentencePiece(BilingualSentences(), options); }),
                       "unknown normalization \"no_such_rule\"; expected nmt_nfkc"));
}

TEST(SentencePieceTrainerTest, EmptySentencesAreSkipped) {
  std::vector<std::string> sentences = BilingualSentences();
  const std::string model = TrainSentencePiece(sentences, Options(120));
  sentences.insert(sentences.begin(), "");
  sentences.insert(sentences.begin() + 10, "");
  sentences.push_back("");
  EXPECT_EQ(TrainSentencePiece(sentences, Options(120)), model);
}

TEST(SentencePieceTrainerTest, LongSentencesAreNotDropped) {
  // SentencePiece skips sentences over 4192 bytes unless told otherwise; qkv keeps them.
  std::vector<std::string> sentences = BilingualSentences();
  std::string long_sentence;
  while (long_sentence.size() < 6000) long_sentence += "zyxwvq ";
  sentences.push_back(long_sentence);
  const SentencePieceModel processor =
      LoadSentencePieceModel(TrainSentencePiece(sentences, Options(150)), "model");
  EXPECT_NE(processor->PieceToId("q"), kMarianUnkId);
}

TEST(SentencePieceTrainerTest, ByteFallbackAndNormalizationOptions) {
  SentencePieceTrainOptions options = Options(400);
  options.byte_fallback = true;
  const SentencePieceModel processor =
      LoadSentencePieceModel(TrainSentencePiece(BilingualSentences(), options), "model");
  EXPECT_EQ(processor->IdToPiece(0), "</s>");
  EXPECT_EQ(processor->IdToPiece(1), "<unk>");
  std::vector<int> ids;
  ASSERT_TRUE(processor->Encode("Ñ", &ids).ok());
  for (int id : ids) EXPECT_NE(id, kMarianUnkId);  // two byte pieces
  std::string decoded;
  ASSERT_TRUE(processor->Decode(ids, &decoded).ok());
  EXPECT_EQ(decoded, "Ñ");

  // nmt_nfkc (the default) folds full-width letters; identity keeps them apart.
  options = Options(150);
  options.normalization = "identity";
  const std::string nfkc = TrainSentencePiece(BilingualSentences(), Options(150));
  const std::string identity = TrainSentencePiece(BilingualSentences(), options);
  EXPECT_NE(identity, nfkc);
  // U+FF34 FULLWIDTH LATIN CAPITAL LETTER T: "T" under nmt_nfkc, unknown under identity.
  const std::string text = "\xEF\xBC\xB4he";
  const std::vector<int32_t> nfkc_ids = EncodeWithEos(*LoadSentencePieceModel(nfkc, "nfkc"), text);
  std::string nfkc_text;
  ASSERT_TRUE(LoadSentencePieceModel(nfkc, "nfkc")
                  ->Decode(std::vector<int>(nfkc_ids.begin(), nfkc_ids.end()), &nfkc_text)
                  .ok());
  EXPECT_EQ(nfkc_text, "The");
  const std::vector<int32_t> identity_ids =
      EncodeWithEos(*LoadSentencePieceModel(identity, "identity"), text);
  EXPECT_NE(std::find(identity_ids.begin(), identity_ids.end(), kMarianUnkId), identity_ids.end());
  EXPECT_EQ(std::find(nfkc_ids.begin(), nfkc_ids.end(), kMarianUnkId), nfkc_ids.end());
}

TEST(SentencePieceTrainerTest, ModelsLaidOutOtherwiseAreRejected) {
  // spm_train's defaults: <unk> 0, <s> 1, </s> 2.
  class Sentences final : public sentencepiece::SentenceIterator {
   public:
    explicit Sentences(std::vector<std::string> sentences) : sentences_(std::move(sentences)) {}
    bool done() const override { return index_ >= sentences_.size(); }
    void Next() override { ++index_; }
    const std::string& value() const override { return sentences_[index_]; }
    sentencepiece::util::Status status() const override { return {}; }

   private:
    std::vector<std::string> sentences_;
    size_t index_ = 0;
  };
  Sentences sentences(BilingualSentences());
  std::string model;
  ASSERT_TRUE(sentencepiece::SentencePieceTrainer::Train(
                  std::unordered_map<std::string, std::string>{
                      {"vocab_size", "100"}, {"minloglevel", "2"}, {"num_threads", "1"}},
                  &sentences, &model)
                  .ok());
  EXPECT_TRUE(Contains(ErrorOf([&] { ReadMarianVocabIds(model, "source.spm"); }),
                       "source.spm: not laid out as a Marian vocabulary: piece 0 must be the "
                       "control piece \"</s>\", not \"<unk>\""));
  EXPECT_TRUE(Contains(ErrorOf([&] { SentencePieceVocabJson(model, "source.spm"); }),
                       "not laid out as a Marian vocabulary"));
  EXPECT_TRUE(Contains(ErrorOf([] { LoadSentencePieceModel("not a model", "x.spm"); }),
                       "x.spm is not a valid SentencePiece model"));
  EXPECT_TRUE(Contains(ErrorOf([] { LoadSentencePieceModel("", "x.spm"); }), "x.spm is empty"));
}

TEST(SentencePieceTrainerTest, EncodeWithEosRejectsInvalidUtf8) {
  const SentencePieceModel processor =
      LoadSentencePieceModel(TrainSentencePiece(BilingualSentences(), Options(100)), "model");
  EXPECT_TRUE(Contains(ErrorOf([&] { EncodeWithEos(*processor, "ni\xF1o"); }),
                       "not valid UTF-8 at byte 2"));
}

}  // namespace
}  // namespace qkv::tokenizer
