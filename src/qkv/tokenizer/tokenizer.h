// Tokenizers turn text (any bytes) into token ids and back. qkv has three of its own:
//   char  the sorted set of Unicode characters of the training text (nanoGPT's
//         shakespeare_char); ids in code point order. Text must be valid UTF-8 and use only
//         those characters.
//   byte  the 256 byte values; id = byte value.
//   bpe   GPT-2's byte-level BPE (see bpe_tokenizer.h), loaded from GPT-2 files or trained.
// and reads two of Hugging Face model directories (Llama-family models):
//   hf-bpe         a byte-level BPE tokenizer.json (GPT-2, Llama 3; hf_bpe_tokenizer.h).
//   sentencepiece  a tokenizer.model, as LlamaTokenizer encodes (sentencepiece_tokenizer.h).
// Model directories store the choice under "tokenizer" in config.json (SaveTokenizer /
// LoadTokenizer below), or, as Hugging Face's do, hold tokenizer.json or tokenizer.model.
// docs/tokenizers.md describes the formats.
//
// Example:
//   std::unique_ptr<Tokenizer> tokenizer = TrainTokenizer("bpe:2048", text);
//   std::vector<int32_t> ids = tokenizer->Encode("Hello world");
//   std::string again = tokenizer->Decode(ids);  // == "Hello world"
#pragma once

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <memory>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace qkv::tokenizer {

struct EncodeOptions {
  // Encode special tokens such as "<|endoftext|>" as their own ids. When false (the default,
  // as in GPT-2's reference encoder) their text is encoded like any other text.
  bool allow_special = false;
  // Called now and then with the bytes of the text encoded so far (for a progress line on
  // large files), and once with the whole size at the end.
  std::function<void(size_t bytes_done)> progress;
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // "char", "byte", "bpe", "hf-bpe" or "sentencepiece".
  virtual std::string name() const = 0;
  // Ids are in [0, vocab_size()).
  virtual int64_t vocab_size() const = 0;

  // Deterministic; thread-safe. Throws qkv::Error for text the tokenizer cannot represent
  // (char: invalid UTF-8 or characters outside the vocabulary; sentencepiece: invalid UTF-8).
  std::vector<int32_t> Encode(std::string_view text, const EncodeOptions& options = {}) const {
    std::vector<int32_t> ids = DoEncode(text, options);
    if (options.progress) options.progress(text.size());
    return ids;
  }
  // Throws qkv::Error naming any id outside [0, vocab_size()). Decode(Encode(x)) == x.
  std::string Decode(std::span<const int32_t> ids) const { return DoDecode(ids); }

  // The bytes token `id` stands for where it follows other tokens: what a stream of generated
  // tokens prints for it, one token at a time (with infer::Utf8Stream for the bytes of a
  // character split between tokens). The same as Decode of the one id, except for
  // SentencePiece, whose Decode drops the space before the first word of a text (decoded one
  // by one, every word would lose its space). Throws qkv::Error for an id outside
  // [0, vocab_size()).
  virtual std::string TokenBytes(int32_t id) const { return Decode(std::span(&id, 1)); }

  // Writes the tokenizer's files (if any) into model_dir, atomically, and returns the object
  // that belongs under "tokenizer" in config.json.
  virtual nlohmann::json Save(const std::string& model_dir) const = 0;

 private:
  virtual std::vector<int32_t> DoEncode(std::string_view text,
                                        const EncodeOptions& options) const = 0;
  virtual std::string DoDecode(std::span<const int32_t> ids) const = 0;
};

// Writes tokenizer's files into model_dir (vocab.json + merges.txt for BPE, a copy of
// tokenizer.json or tokenizer.model for the Hugging Face ones) and returns the "tokenizer"
// entry of config.json:
//   {"type": "char", "characters": ["\n", " ", "!", ...]}  (one string per id)
//   {"type": "byte"}
//   {"type": "bpe", "vocab_file": "vocab.json", "merges_file": "merges.txt"}
//   {"type": "hf-bpe", "file": "tokenizer.json"}
//   {"type": "sentencepiece", "file": "tokenizer.model", "add_bos": true, "add_eos": false}
nlohmann::json SaveTokenizer(const Tokenizer& tokenizer, const std::string& model_dir);

// Whether LoadTokenizer finds a tokenizer for this directory: config.json (its whole object)
// has a "tokenizer" entry, or model_dir holds tokenizer.json or tokenizer.model. (A directory
// of Hugging Face's GPT-2 has only vocab.json and merges.txt: its user names the tokenizer.)
bool HasTokenizer(const nlohmann::json& config, const std::string& model_dir);

// Rebuilds a tokenizer from config.json's whole object (it reads config["tokenizer"]) and the
// files in model_dir. Without a "tokenizer" entry (a Hugging Face directory) it reads
// model_dir/tokenizer.json when that is a byte-level BPE, else model_dir/tokenizer.model
// (add_bos_token / add_eos_token from model_dir/tokenizer_config.json when it has them), else
// the tokenizer.json that is there (to say why it cannot be read). Throws qkv::Error for a
// missing or malformed entry or file.
std::unique_ptr<Tokenizer> LoadTokenizer(const nlohmann::json& config,
                                         const std::string& model_dir);

// LoadTokenizer on model_dir/config.json.
std::unique_ptr<Tokenizer> LoadTokenizerFromModelDir(const std::string& model_dir);

// Builds a tokenizer for `spec` from the training text:
//   "char"   characters of text;  "byte"   (text unused);
//   "bpe:N"  byte-level BPE with N tokens in all: the 256 bytes plus N - 256 merges learned
//            from text, N >= 257 (fewer if text runs out of pairs; see docs/tokenizers.md).
// BPE training reports progress on *progress when it is not null. Throws qkv::Error naming a
// bad spec and the allowed forms.
std::unique_ptr<Tokenizer> TrainTokenizer(const std::string& spec, std::string_view text,
                                          std::ostream* progress);
std::unique_ptr<Tokenizer> TrainTokenizer(const std::string& spec, std::string_view text);

}  // namespace qkv::tokenizer
