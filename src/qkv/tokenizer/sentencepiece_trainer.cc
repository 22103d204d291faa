#include "qkv/tokenizer/sentencepiece_trainer.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <algorithm>
#include <functional>
#include <unordered_map>
#include <utility>

#include "qkv/core/check.h"
#include "qkv/tokenizer/utf8.h"

namespace qkv::tokenizer {
namespace {

constexpr std::string_view kEosPiece = "</s>";
constexpr std::string_view kUnkPiece = "<unk>";
constexpr std::string_view kPadPiece = "<pad>";
// SentencePiece skips longer sentences (trainer_spec max_sentence_length, 4192 bytes by
// default); qkv raises the limit to the longest sentence so that none is dropped.
constexpr size_t kDefaultMaxSentenceLength = 4192;

// The non-empty sentences of a corpus, as SentencePiece reads its training text.
class SentenceSource final : public sentencepiece::SentenceIterator {
 public:
  SentenceSource(size_t count, std::function<const std::string&(size_t)> sentence)
      : count_(count), sentence_(std::move(sentence)) {
    SkipEmpty();
  }
  bool done() const override { return index_ >= count_; }
  void Next() override {
    ++index_;
    SkipEmpty();
  }
  const std::string& value() const override { return sentence_(index_); }
  sentencepiece::util::Status status() const override { return {}; }

 private:
  void SkipEmpty() {
    while (index_ < count_ && sentence_(index_).empty()) ++index_;
  }

  size_t count_;
  std::function<const std::string&(size_t)> sentence_;
  size_t index_ = 0;
};

std::string ModelTypeName(SentencePieceModelType type) {
  switch (type) {
    case SentencePieceModelType::kUnigram:
      return "unigram";
    case SentencePieceModelType::kBpe:
      return "bpe";
  }
  QKV_CHECK(false, "unknown SentencePiece model type ", static_cast<int>(type));
  return {};
}

// The digits right after `before_number`, searched from where `anchor` occurs in message; empty
// when either is missing. (Plain string search: GCC 12's std::regex trips its own
// maybe-uninitialized warning in sanitizer builds.)
std::string NumberAfter(const std::string& message, const std::string& anchor,
                        const std::string& before_number) {
  const size_t at = message.find(anchor);
  if (at == std::string::npos) return "";
  const size_t start = message.find(before_number, at);
  if (start == std::string::npos) return "";
  size_t end = start + before_number.size();
  while (end < message.size() && message[end] >= '0' && message[end] <= '9') ++end;
  return message.substr(start + before_number.size(), end - start - before_number.size());
}

// SentencePiece's status for a vocabulary size that does not fit the text, as a qkv::Error
// that says what to do; other failures keep the library's message.
[[noreturn]] void ThrowTrainingError(const sentencepiece::util::Status& status,
                                     const SentencePieceTrainOptions& options) {
  const std::string message = status.ToString();
  // trainer_interface.cc: "Vocabulary size is smaller than required_chars. N vs MIN."
  const std::string minimum = NumberAfter(message, "smaller than required_chars. ", " vs ");
  // trainer_interface.cc: "Vocabulary size too high (N). Please set it to a value <= MAX."
  const std::string maximum = NumberAfter(message, "Vocabulary size too high (", "value <= ");
  if (!minimum.empty()) {
    QKV_CHECK(false, "SentencePiece vocabulary size ", options.vocab_size,
              " is too small for the training text: every one of its characters needs a piece, "
              "besides \"</s>\" and \"<unk>\"; use a vocabulary size of at least ",
              minimum, " (e.g. --tokenizer spm:", minimum, ")");
  }
  if (!maximum.empty()) {
    QKV_CHECK(false, "SentencePiece vocabulary size ", options.vocab_size,
              " is too large for the training text: it yields at most ", maximum,
              " pieces; lower the vocabulary size to at most ", maximum,
              " (e.g. --tokenizer spm:", maximum, ") or train on more text");
  }
  QKV_CHECK(false, "SentencePiece training failed: ", message);
  __builtin_unreachable();
}

// `pairs`: sentence 2p is the source of pair p, 2p + 1 its target (for error messages).
std::string Train(size_t count, const std::function<const std::string&(size_t)>& sentence,
                  bool pairs, const SentencePieceTrainOptions& options) {
  QKV_CHECK(options.vocab_size > kMarianSpecialPieces, "SentencePiece vocabulary size ",
            options.vocab_size, " is too small: it counts \"</s>\" and \"<unk>\", so it must be ",
            "at least ", kMarianSpecialPieces + 1,
            ", and at least 2 + the number of distinct characters of the training text");
  QKV_CHECK(options.num_threads >= 1,
            "SentencePiece training: num_threads must be at least 1, not ", options.num_threads);
  constexpr std::string_view kNormalizations[] = {"nmt_nfkc", "nfkc", "nmt_nfkc_cf", "nfkc_cf",
                                                  "identity"};
  QKV_CHECK(std::ranges::find(kNormalizations, options.normalization) != std::end(kNormalizations),
            "SentencePiece training: unknown normalization \"", options.normalization,
            "\"; expected nmt_nfkc, nfkc, nmt_nfkc_cf, nfkc_cf or identity");
  size_t non_empty = 0, longest = 0;
  for (size_t i = 0; i < count; ++i) {
    const std::string& text = sentence(i);
    const size_t invalid = utf8::FirstInvalidOffset(text);
    QKV_CHECK(invalid == text.size(), "SentencePiece training: ",
              pairs ? (i % 2 == 0 ? "the source of pair " : "the target of pair ") : "sentence ",
              pairs ? i / 2 + 1 : i + 1, " is not valid UTF-8 at byte ", invalid);
    if (!text.empty()) ++non_empty;
    longest = std::max(longest, text.size());
  }
  QKV_CHECK(non_empty > 0, "SentencePiece training: no training text (",
            count == 0 ? "no sentences" : "every sentence is empty", ")");

  const std::unordered_map<std::string, std::string> args = {
      {"model_type", ModelTypeName(options.model_type)},
      {"vocab_size", std::to_string(options.vocab_size)},
      {"character_coverage", "1.0"},
      {"normalization_rule_name", options.normalization},
      {"byte_fallback", options.byte_fallback ? "true" : "false"},
      // Marian's layout (see the header): </s> 0, <unk> 1, no <s>, <pad> outside the model.
      {"eos_id", std::to_string(kMarianEosId)},
      {"unk_id", std::to_string(kMarianUnkId)},
      {"bos_id", "-1"},
      {"pad_id", "-1"},
      {"eos_piece", std::string(kEosPiece)},
      {"unk_piece", std::string(kUnkPiece)},
      // Determinism: every sentence, in order, none sampled or shuffled.
      {"input_sentence_size", "0"},
      {"shuffle_input_sentence", "false"},
      {"max_sentence_length", std::to_string(std::max(kDefaultMaxSentenceLength, longest))},
      {"num_threads", std::to_string(options.num_threads)},
      {"minloglevel", options.verbose ? "0" : "2"},
  };
  SentenceSource source(count, sentence);
  std::string model;
  const sentencepiece::util::Status status =
      sentencepiece::SentencePieceTrainer::Train(args, &source, &model);
  if (!status.ok()) ThrowTrainingError(status, options);
  QKV_CHECK(!model.empty(), "SentencePiece training returned no model");
  return model;
}

}  // namespace

std::string TrainSentencePiece(std::span<const std::string> sentences,
                               const SentencePieceTrainOptions& options) {
  return Train(
      sentences.size(), [&](size_t i) -> const std::string& { return sentences[i]; },
      /*pairs=*/false, options);
}

std::string TrainSentencePieceOnPairs(std::span<const io::SentencePair> pairs,
                                      const SentencePieceTrainOptions& options) {
  return Train(
      2 * pairs.size(),
      [&](size_t i) -> const std::string& {
        return i % 2 == 0 ? pairs[i / 2].source : pairs[i / 2].target;
      },
      /*pairs=*/true, options);
}

void SentencePieceProcessorDeleter::operator()(
    sentencepiece::SentencePieceProcessor* processor) const {
  delete processor;
}

SentencePieceModel LoadSentencePieceModel(std::string_view model, std::string_view source) {
  QKV_CHECK(!model.empty(), source, " is empty; expected a SentencePiece model");
  SentencePieceModel processor(new sentencepiece::SentencePieceProcessor());
  const sentencepiece::util::Status status = processor->LoadFromSerializedProto(model);
  QKV_CHECK(status.ok(), source, " is not a valid SentencePiece model: ", status.ToString());
  QKV_CHECK(processor->GetPieceSize() > 0, source, ": the SentencePiece model has no pieces");
  return processor;
}

namespace {

MarianVocabIds CheckMarianLayout(const sentencepiece::SentencePieceProcessor& processor,
                                 std::string_view source) {
  const int size = processor.GetPieceSize();
  const auto expect = [&](int32_t id, std::string_view piece, std::string_view kind, bool ok) {
    const std::string actual = size > id ? processor.IdToPiece(id) : std::string();
    QKV_CHECK(size > id && actual == piece && ok, source,
              ": not laid out as a Marian vocabulary: piece ", id, " must be the ", kind, " \"",
              piece, "\", not \"", actual,
              "\" (qkv trains SentencePiece models with </s> 0, <unk> 1, no <s> and no <pad>)");
  };
  expect(kMarianEosId, kEosPiece, "control piece",
         size > kMarianEosId && processor.IsControl(kMarianEosId));
  expect(kMarianUnkId, kUnkPiece, "unknown piece",
         size > kMarianUnkId && processor.IsUnknown(kMarianUnkId));
  QKV_CHECK(size > kMarianSpecialPieces, source, ": the SentencePiece model has only ", size,
            " pieces, no learned ones");
  for (const std::string_view piece : {std::string_view("<s>"), kPadPiece}) {
    const int id = processor.PieceToId(piece);
    QKV_CHECK(id == kMarianUnkId, source, ": not laid out as a Marian vocabulary: it has a \"",
              piece, "\" piece (id ", id,
              "); qkv's models have none (<pad> comes after the SentencePiece pieces)");
  }
  return {.eos_id = kMarianEosId,
          .unk_id = kMarianUnkId,
          .pad_id = size,
          .vocab_size = static_cast<int64_t>(size) + 1};
}

}  // namespace

MarianVocabIds ReadMarianVocabIds(std::string_view model, std::string_view source) {
  return CheckMarianLayout(*LoadSentencePieceModel(model, source), source);
}

nlohmann::json SentencePieceVocabJson(std::string_view model, std::string_view source) {
  const SentencePieceModel processor = LoadSentencePieceModel(model, source);
  const MarianVocabIds ids = CheckMarianLayout(*processor, source);
  nlohmann::json vocab = nlohmann::json::object();
  for (int id = 0; id < ids.pad_id; ++id) {
    const std::string& piece = processor->IdToPiece(id);
    QKV_CHECK(!vocab.contains(piece), source, ": piece \"", piece, "\" appears twice (ids ",
              vocab.at(piece).get<int>(), " and ", id, ")");
    vocab[piece] = id;
  }
  vocab[std::string(kPadPiece)] = ids.pad_id;
  return vocab;
}

std::vector<int32_t> EncodeWithEos(const sentencepiece::SentencePieceProcessor& processor,
                                   std::string_view text) {
  const size_t invalid = utf8::FirstInvalidOffset(text);
  QKV_CHECK(invalid == text.size(), "SentencePiece: the text is not valid UTF-8 at byte ", invalid,
            " (SentencePiece encodes Unicode text)");
  const int eos = processor.eos_id();
  QKV_CHECK(eos >= 0, "SentencePiece: the model has no \"</s>\" piece to end the sentence with");
  std::vector<int> pieces;
  const sentencepiece::util::Status status = processor.Encode(text, &pieces);
  QKV_CHECK(status.ok(), "SentencePiece: ", status.ToString());
  std::vector<int32_t> ids(pieces.begin(), pieces.end());
  ids.push_back(eos);
  return ids;
}

}  // namespace qkv::tokenizer
