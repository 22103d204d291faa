// SentencePiece models for translation (`qkv train --arch encoder-decoder --tokenizer spm:N`,
// SPEC section 4): one model trained with the SentencePiece library (Debian's
// libsentencepiece, as Marian's spm_train and OPUS-MT use it) on both sides of the training
// pairs, in memory, and the vocabulary Hugging Face's MarianTokenizer reads with it.
//
// The ids, as in OPUS-MT's vocab.json files (Helsinki-NLP/opus-mt-en-de: eos_token_id 0,
// pad_token_id = decoder_start_token_id = vocab_size - 1 = 58100):
//   0          "</s>"   end of sentence (a control piece of the SentencePiece model: its text
//                       never encodes to it, and decoding drops it)
//   1          "<unk>"  unknown (characters outside the model: none of the training text's,
//                       as character_coverage is 1.0)
//   2 .. N-1            the learned pieces, by SentencePiece's id
//   N          "<pad>"  padding and the decoder's start token; not in the SentencePiece model:
//                       Marian appends it to the vocabulary, and so does vocab.json
// N is SentencePieceTrainOptions::vocab_size, the number of pieces of the SentencePiece model
// (`spm:N`); the model's vocabulary, config.json's vocab_size, is N + 1. The SentencePiece
// model has no "<s>" (bos_id -1) and no "<pad>" (pad_id -1), so its ids are vocab.json's ids:
// MarianTokenizer's piece -> vocab.json lookup and SentencePiece's own ids agree.
//
// Training is deterministic: the same sentences and options give the same model bytes
// (every sentence is used, none sampled or shuffled; one thread unless num_threads says
// otherwise, and the model depends on the thread count).
//
// Example:
//   std::string model = TrainSentencePieceOnPairs(pairs, {.vocab_size = 8000});
//   WriteFileAtomically(dir + "/source.spm", model);  // and target.spm: the same bytes
//   WriteFileAtomically(dir + "/vocab.json", SentencePieceVocabJson(model).dump(2));
//   MarianVocabIds ids = ReadMarianVocabIds(model);  // {eos 0, unk 1, pad N, size N + 1}
//   SentencePieceModel processor = LoadSentencePieceModel(model, "source.spm");
//   std::vector<int32_t> source_ids = EncodeWithEos(*processor, "¿Dónde está?");  // ..., 0
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "qkv/io/sentence_pairs.h"

namespace sentencepiece {
class SentencePieceProcessor;
}  // namespace sentencepiece

namespace qkv::tokenizer {

inline constexpr int32_t kMarianEosId = 0;
inline constexpr int32_t kMarianUnkId = 1;
// "</s>" and "<unk>": the pieces of every model besides the learned ones.
inline constexpr int kMarianSpecialPieces = 2;

enum class SentencePieceModelType { kUnigram, kBpe };

struct SentencePieceTrainOptions {
  // Pieces in the SentencePiece model, "</s>" and "<unk>" included (`spm:N`); at least 3, and
  // at least 2 + the number of distinct characters of the text (each needs a piece). An N the
  // text cannot fill is an error saying the largest N it can.
  int vocab_size = 8000;
  SentencePieceModelType model_type = SentencePieceModelType::kUnigram;  // Marian's default
  // SentencePiece's normalization_rule_name: "nmt_nfkc" (spm_train's default, OPUS-MT's
  // models), "nfkc", "nmt_nfkc_cf", "nfkc_cf" or "identity".
  std::string normalization = "nmt_nfkc";
  bool byte_fallback = false;  // unknown characters as <0xXX> byte pieces instead of <unk>
  int num_threads = 1;         // the model depends on it
  bool verbose = false;        // SentencePiece's training log on stderr (process-wide setting)
};

// Trains a SentencePiece model on `sentences` (UTF-8; empty ones are skipped) and returns the
// serialized ModelProto: the bytes of source.spm / target.spm. Throws qkv::Error for a
// vocab_size below 3, a vocab_size the text cannot hold or fill (naming the smallest or
// largest one that works), no non-empty sentence, invalid UTF-8 (naming the sentence and byte)
// and any other failure of the library (with its message).
std::string TrainSentencePiece(std::span<const std::string> sentences,
                               const SentencePieceTrainOptions& options);
// Both sides of the pairs: source 1, target 1, source 2, target 2, ...
std::string TrainSentencePieceOnPairs(std::span<const io::SentencePair> pairs,
                                      const SentencePieceTrainOptions& options);

struct MarianVocabIds {
  int32_t eos_id = kMarianEosId;
  int32_t unk_id = kMarianUnkId;
  int32_t pad_id = 0;      // = the SentencePiece model's piece count N
  int64_t vocab_size = 0;  // N + 1: config.json's vocab_size
};

// The ids of a model laid out as above (piece 0 the control piece "</s>", piece 1 the unknown
// piece "<unk>", no "<s>" and no "<pad>" piece). Throws qkv::Error, naming `source`, for bytes
// that are not a SentencePiece model or a model laid out otherwise (e.g. a plain spm_train
// model: <unk> 0, <s> 1, </s> 2).
MarianVocabIds ReadMarianVocabIds(std::string_view model, std::string_view source = "the model");

// vocab.json for a model laid out as above: {"</s>": 0, "<unk>": 1, piece: id, ...,
// "<pad>": N}, every piece of the model at its SentencePiece id. (nlohmann::json keeps the
// keys sorted; readers look pieces up by key.) Throws as ReadMarianVocabIds.
nlohmann::json SentencePieceVocabJson(std::string_view model,
                                      std::string_view source = "the model");

// A SentencePiece processor that owns its model (from the bytes above or a source.spm file).
struct SentencePieceProcessorDeleter {
  void operator()(sentencepiece::SentencePieceProcessor* processor) const;
};
using SentencePieceModel =
    std::unique_ptr<sentencepiece::SentencePieceProcessor, SentencePieceProcessorDeleter>;
// Throws qkv::Error naming `source` for bytes that are not a SentencePiece model.
SentencePieceModel LoadSentencePieceModel(std::string_view model, std::string_view source);

// The source side of a Marian pair: SentencePiece's ids of text, then the model's "</s>"
// (MarianTokenizer's build_inputs_with_special_tokens). The labels are EncodeWithEos(target),
// the decoder input [pad] + the same ids without the final </s>.
// Throws qkv::Error for invalid UTF-8 (naming the byte offset) or a model without "</s>".
std::vector<int32_t> EncodeWithEos(const sentencepiece::SentencePieceProcessor& processor,
                                   std::string_view text);

}  // namespace qkv::tokenizer
