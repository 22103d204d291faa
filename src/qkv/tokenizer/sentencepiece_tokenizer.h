// SentencePiece tokenizers from a model directory's tokenizer.model (Llama 1 and 2, Mistral,
// TinyLlama ...), encoded as Hugging Face's LlamaTokenizer does (its default, "legacy"
// behaviour): the text goes to SentencePiece whole, with the model's own normalisation, dummy
// prefix and byte fallback, and the model's BOS id goes first (add_bos, LlamaTokenizer's
// add_bos_token, true by default; add_eos appends EOS, false by default). With
// EncodeOptions::allow_special the texts of the control tokens and of the unknown token
// ("<s>", "</s>", "<unk>") become those ids, and the parts between them are encoded one by one,
// as LlamaTokenizer does. Decode is SentencePiece's: control tokens such as BOS and EOS give no
// text, and the space put before the first word is dropped.
//
// SentencePiece works on Unicode text, so invalid UTF-8 is an error naming its byte offset.
// Decode(Encode(x)) == x when the model does not normalise (normalization "identity" and no
// removal of extra whitespace, as Llama's), and x has no "<unk>"-surfaced characters.
// Uses Debian's libsentencepiece (only this file's .cc includes it).
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "qkv/tokenizer/tokenizer.h"

namespace sentencepiece {
class SentencePieceProcessor;
}  // namespace sentencepiece

namespace qkv::tokenizer {

struct SentencePieceOptions {
  bool add_bos = true;   // LlamaTokenizer's add_bos_token
  bool add_eos = false;  // LlamaTokenizer's add_eos_token
};

class SentencePieceTokenizer final : public Tokenizer {
 public:
  // Reads a tokenizer.model (a serialized SentencePiece ModelProto). Throws qkv::Error naming
  // the file and what is wrong.
  static std::unique_ptr<SentencePieceTokenizer> FromFile(const std::string& path,
                                                          const SentencePieceOptions& options = {});
  // The same from the file's contents; `source` names it in errors.
  static std::unique_ptr<SentencePieceTokenizer> FromString(std::string model,
                                                            const std::string& source,
                                                            const SentencePieceOptions& options);
  ~SentencePieceTokenizer() override;

  std::string name() const override { return "sentencepiece"; }
  int64_t vocab_size() const override { return static_cast<int64_t>(token_bytes_.size()); }
  // Copies tokenizer.model into model_dir (atomically): {"type": "sentencepiece", "file":
  // "tokenizer.model", "add_bos": true, "add_eos": false}.
  nlohmann::json Save(const std::string& model_dir) const override;
  // The piece with its U+2581 as a space, a byte piece's byte, nothing for a control token.
  std::string TokenBytes(int32_t id) const override;

  const SentencePieceOptions& options() const { return options_; }
  int32_t bos_id() const { return bos_id_; }  // -1: the model has none
  int32_t eos_id() const { return eos_id_; }

 private:
  SentencePieceTokenizer();
  std::vector<int32_t> DoEncode(std::string_view text, const EncodeOptions& options) const override;
  std::string DoDecode(std::span<const int32_t> ids) const override;
  void EncodeText(std::string_view text, std::vector<int32_t>* ids) const;

  std::string model_;  // tokenizer.model as read, for Save
  std::string source_;
  SentencePieceOptions options_;
  std::unique_ptr<sentencepiece::SentencePieceProcessor> processor_;
  int32_t bos_id_ = -1, eos_id_ = -1;
  std::vector<std::string> token_bytes_;                   // by id
  std::vector<std::pair<std::string, int32_t>> specials_;  // text, id; longest first
};

}  // namespace qkv::tokenizer
