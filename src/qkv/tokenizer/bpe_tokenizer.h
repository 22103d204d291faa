// GPT-2's byte-level BPE. Encoding: special tokens (when allowed) are cut out first; the rest
// is pre-tokenised with GPT-2's pattern (pretokenizer.h); each piece's bytes start as one
// token per byte, and merges are applied by rank: repeatedly the adjacent pair with the lowest
// rank is found and all its occurrences are merged, left to right, until no pair in the piece
// has a rank (bpe_merger.h). This is exactly openai/gpt-2's encoder.py, so GPT-2's files give
// GPT-2's ids. Results are cached per piece.
//
// Files (GPT-2's pair; Hugging Face calls them vocab.json and merges.txt):
//   encoder.json  {"token": id, ...}, tokens written in the byte-level alphabet (byte_level.h),
//                 ids 0..n-1 each used once;
//   vocab.bpe     "#version: 0.2" then one merge per line, "left right", in rank order.
// A vocabulary entry that is neither one of the 256 byte tokens nor made by a merge is a
// special token (GPT-2 has one: "<|endoftext|>"); it decodes to its own text.
#pragma once

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "qkv/tokenizer/bpe_merger.h"
#include "qkv/tokenizer/pretokenizer.h"
#include "qkv/tokenizer/tokenizer.h"

namespace qkv::tokenizer {

struct BpeTrainOptions {
  // Vocabulary size: 256 byte tokens plus (num_tokens - 256) merges. Must be >= 257.
  int64_t num_tokens = 0;
  // Where progress lines go (nullptr: silent).
  std::ostream* progress = nullptr;
};

class BpeTokenizer final : public Tokenizer {
 public:
  // vocabulary[i] is token i in the byte-level alphabet (special tokens: their plain text);
  // merges are (left, right) token strings in rank order. Throws qkv::Error for a byte
  // without a token, a repeated token, or a merge whose parts or result are not tokens.
  // `source` names where the data came from, for error messages.
  BpeTokenizer(std::vector<std::string> vocabulary,
               std::vector<std::pair<std::string, std::string>> merges,
               const std::string& source = "BPE vocabulary");
  ~BpeTokenizer() override;

  // Reads GPT-2's encoder.json + vocab.bpe (or vocab.json + merges.txt). Throws qkv::Error
  // naming the file, line and problem for unreadable or malformed files.
  static std::unique_ptr<BpeTokenizer> FromFiles(const std::string& vocab_path,
                                                 const std::string& merges_path);
  // The same from the files' contents.
  static std::unique_ptr<BpeTokenizer> FromStrings(std::string_view vocab_json,
                                                   std::string_view merges_text,
                                                   const std::string& vocab_name = "vocab.json",
                                                   const std::string& merges_name = "merges.txt");

  // Learns merges from text; see docs/tokenizers.md for the tie-breaking rule. Deterministic.
  static std::unique_ptr<BpeTokenizer> Train(std::string_view text, const BpeTrainOptions& options);

  std::string name() const override { return "bpe"; }
  int64_t vocab_size() const override { return static_cast<int64_t>(tokens_.size()); }
  int64_t num_merges() const { return static_cast<int64_t>(merges_.size()); }
  // Token strings (byte-level alphabet) by id.
  const std::vector<std::string>& tokens() const { return tokens_; }

  // vocab.json and merges.txt contents, and writing them (atomically).
  std::string VocabJson() const;
  std::string MergesText() const;
  void SaveFiles(const std::string& vocab_path, const std::string& merges_path) const;
  nlohmann::json Save(const std::string& model_dir) const override;

  // The BPE of one piece of bytes (no pre-tokenisation, no cache); appends ids to *ids.
  // Exposed for tests.
  void EncodePiece(std::string_view piece, std::vector<int32_t>* ids) const;

 private:
  std::vector<int32_t> DoEncode(std::string_view text, const EncodeOptions& options) const override;
  std::string DoDecode(std::span<const int32_t> ids) const override;
  // Where a piece of the text starts in the whole, for progress reports.
  struct EncodeProgress {
    const std::function<void(size_t)>& report;
    size_t base;
  };
  void EncodeOrdinary(std::string_view text, std::vector<int32_t>* ids,
                      const EncodeProgress& progress) const;

  std::vector<std::string> tokens_;                        // byte-level strings by id
  std::vector<std::string> token_bytes_;                   // what each id decodes to
  std::vector<std::pair<int32_t, int32_t>> merges_;        // by rank
  std::vector<std::pair<std::string, int32_t>> specials_;  // text, id; longest first
  std::unique_ptr<BpeMerger> merger_;
  Pretokenizer pretokenizer_;
  mutable std::mutex cache_mutex_;
  std::unique_ptr<BpeMerger::Cache> cache_;
};

}  // namespace qkv::tokenizer
