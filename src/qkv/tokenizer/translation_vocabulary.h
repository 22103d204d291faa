// The vocabulary of an encoder-decoder (model/encoder_decoder.h): one id space shared by source
// and target, with Marian's special ids (OPUS-MT's layout, sentencepiece_trainer.h):
//   0 "</s>"   ends every source and every label sequence
//   1 "<unk>"  unknown
//   2 ..       the pieces
//   last       "<pad>": padding and the decoder's start token (vocab_size - 1)
// Two kinds:
//   spm:N  a SentencePiece model of N pieces trained on both sides of the pairs (vocab_size
//          N + 1); saved as source.spm and target.spm (the same bytes) and vocab.json, as
//          Hugging Face's MarianTokenizer reads them.
//   byte   the 256 byte values: byte b is id 2 + b, <pad> 258 (vocab_size 259); no files.
// A model directory records the kind in config.json under "qkv_translation_vocabulary"
// ("spm" or "byte"); a directory without the key that holds source.spm is "spm" (an OPUS-MT
// directory).
//
// Example:
//   auto vocabulary = TrainTranslationVocabulary("spm:8000", pairs);
//   TokenizedPair pair{vocabulary->EncodeSource("Zuko made his uncle tea."),
//                      vocabulary->EncodeTarget("Zuko preparó té para su tío.")};
//   nlohmann::json config = model::MarianConfigJson(model_config);
//   config.update(vocabulary->Save(dir));  // writes the files, returns config.json's keys
//   auto again = LoadTranslationVocabulary(dir, config);
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "qkv/io/sentence_pairs.h"

namespace qkv::tokenizer {

class TranslationVocabulary {
 public:
  virtual ~TranslationVocabulary() = default;

  virtual std::string name() const = 0;  // "spm:N" or "byte"
  virtual int64_t vocab_size() const = 0;
  int32_t eos_id() const { return 0; }
  int32_t unk_id() const { return 1; }
  int32_t pad_id() const { return static_cast<int32_t>(vocab_size() - 1); }

  // The ids of text followed by eos_id(): an encoder input. Throws qkv::Error for invalid
  // UTF-8 (naming the byte offset).
  virtual std::vector<int32_t> EncodeSource(std::string_view text) const = 0;
  // The ids of text alone (no start, no end id): TokenizedPair::target.
  virtual std::vector<int32_t> EncodeTarget(std::string_view text) const = 0;
  // The text of generated ids; eos_id() and pad_id() are dropped. Throws qkv::Error naming an
  // id outside [0, vocab_size()).
  virtual std::string Decode(std::span<const int32_t> ids) const = 0;
  // One piece's text for displays (attention maps): "▁the", "<0x41>", "</s>".
  virtual std::string PieceText(int32_t id) const = 0;

  // Writes the vocabulary's files into model_dir atomically (nothing for byte) and returns the
  // keys that belong in config.json.
  virtual nlohmann::json Save(const std::string& model_dir) const = 0;
};

// spec: "spm:N" (3 <= N) or "byte". Throws qkv::Error for another spec (naming the ones
// offered; "char" and "bpe:N" say that they serve decoder-only models) or when SentencePiece
// cannot train N pieces on the pairs (its message says which N works).
std::unique_ptr<TranslationVocabulary> TrainTranslationVocabulary(
    std::string_view spec, std::span<const io::SentencePair> pairs);

// The vocabulary of the model directory whose config.json is `config`. Throws qkv::Error naming
// the file for a missing or malformed vocabulary, or one whose size differs from the config's
// vocab_size.
std::unique_ptr<TranslationVocabulary> LoadTranslationVocabulary(const std::string& model_dir,
                                                                 const nlohmann::json& config);

}  // namespace qkv::tokenizer
