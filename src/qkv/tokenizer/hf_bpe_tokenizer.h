// Byte-level BPE tokenizers from Hugging Face tokenizer.json files (GPT-2, Llama 3 and others
// of that family; not Qwen 2, whose NFC normalizer qkv lacks), with the encoding of Hugging
// Face's tokenizers library.
//
// What is read (docs/tokenizers.md has the details):
//   model          {"type": "BPE", "vocab": {token: id}, "merges": ["a b", ...] or [["a", "b"]],
//                  "ignore_merges": bool}; no dropout, subword prefix/suffix or byte fallback.
//   added_tokens   [{"id", "content", "special", ...}]: cut out of the text before anything
//                  else; "special": true ones only with EncodeOptions::allow_special.
//   normalizer     none.
//   pre_tokenizer  ByteLevel {add_prefix_space, use_regex} and Split {pattern: {Regex|String},
//                  behavior "Isolated"}, alone or in a Sequence, Split before ByteLevel.
//   post_processor none, ByteLevel or TemplateProcessing (its "single" template: the special
//                  tokens put before and after every text, e.g. Llama 3's <|begin_of_text|>),
//                  alone or in a Sequence.
//   decoder        ByteLevel.
// Anything else is a qkv::Error naming the file and the unsupported value, never a silently
// different encoding. Split patterns are Oniguruma's syntax (what Hugging Face compiles them
// with); they are matched with PCRE2 after the escapes that mean something else there are
// rewritten to Oniguruma's meaning (\s \S: Unicode's White_Space; \h \H: hex digits; \w \W).
//
// Encoding: added tokens are cut out (earliest first, the longest at equal positions); each
// remaining part is pre-tokenised; each piece's bytes are merged by BpeMerger (bpe_merger.h),
// or, with ignore_merges, a piece that is itself a vocabulary token becomes that token; the
// template's tokens go around the result. Decoding concatenates the tokens' bytes (an added
// token's: its content) and leaves out the template's tokens at the start and end of the ids,
// so that Decode(Encode(x)) == x (unless ByteLevel's add_prefix_space put a space before x).
// Bytes that are not valid UTF-8 are pieces of their own (pretokenizer.h), so any bytes encode.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "qkv/tokenizer/bpe_merger.h"
#include "qkv/tokenizer/pretokenizer.h"
#include "qkv/tokenizer/special_tokens.h"
#include "qkv/tokenizer/tokenizer.h"

namespace qkv::tokenizer {

class HfBpeTokenizer final : public Tokenizer {
 public:
  // Reads tokenizer.json at `path`. Throws qkv::Error naming the file, the JSON path (e.g.
  // model.merges[12]) and what is wrong.
  static std::unique_ptr<HfBpeTokenizer> FromFile(const std::string& path);
  // The same from the file's contents; `source` names it in errors.
  static std::unique_ptr<HfBpeTokenizer> FromString(std::string contents,
                                                    const std::string& source);
  // The same from the parsed file and its contents (kept for Save).
  static std::unique_ptr<HfBpeTokenizer> FromParsed(const nlohmann::json& json,
                                                    std::string contents,
                                                    const std::string& source);
  // Whether a parsed tokenizer.json describes a byte-level BPE (a BPE model with a ByteLevel
  // pre-tokenizer): what this class reads. Llama 2's tokenizer.json, a SentencePiece model
  // converted to BPE with byte fallback, is not one.
  static bool IsByteLevelBpe(const nlohmann::json& tokenizer_json);

  ~HfBpeTokenizer() override;

  std::string name() const override { return "hf-bpe"; }
  int64_t vocab_size() const override { return static_cast<int64_t>(token_bytes_.size()); }
  // Copies tokenizer.json into model_dir (atomically): {"type": "hf-bpe", "file":
  // "tokenizer.json"}.
  nlohmann::json Save(const std::string& model_dir) const override;

  // The ids the post-processor puts before and after every encoded text.
  const std::vector<int32_t>& prefix_ids() const { return prefix_ids_; }
  const std::vector<int32_t>& suffix_ids() const { return suffix_ids_; }
  // Whether id is an added token (matched in the text before pre-tokenisation).
  bool is_added_token(int32_t id) const;

 private:
  struct PreTokenizeStep;  // one Split or ByteLevel step
  struct AddedToken {
    std::string content;
    int32_t id;
    bool special;
  };

  HfBpeTokenizer();
  void Parse(const nlohmann::json& json, const std::string& source);

  std::vector<int32_t> DoEncode(std::string_view text, const EncodeOptions& options) const override;
  std::string DoDecode(std::span<const int32_t> ids) const override;
  // Pre-tokenises text that holds no added token, from step `step` on, and merges the pieces;
  // appends the ids.
  void PreTokenize(size_t step, std::string_view text, std::vector<int32_t>* ids) const;

  std::string contents_;                   // tokenizer.json as read, for Save
  std::vector<std::string> token_bytes_;   // what each id decodes to
  std::vector<bool> added_;                // by id
  std::vector<AddedToken> added_tokens_;   // longest first
  std::vector<SpecialToken> all_added_;    // views of added_tokens_, longest first
  std::vector<SpecialToken> plain_added_;  // those not "special": matched always
  std::vector<PreTokenizeStep> steps_;
  std::vector<int32_t> prefix_ids_, suffix_ids_;
  std::unique_ptr<BpeMerger> merger_;
  mutable std::mutex cache_mutex_;
  std::unique_ptr<BpeMerger::Cache> cache_;
};

}  // namespace qkv::tokenizer
