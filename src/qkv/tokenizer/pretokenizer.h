// GPT-2's pre-tokenisation: the text is cut into pieces by the regular expression
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// (contractions, letters, numbers, other symbols, and whitespace, where the look-ahead leaves
// the last space of a run to the word that follows it), and BPE then runs inside each piece.
// Pieces never cross each other, so BPE can cache its result per piece.
//
// Matching uses PCRE2 with PCRE2_UTF | PCRE2_UCP and its JIT where available. \s is spelt out
// as Unicode's White_Space property (what GPT-2's Python `regex`, tiktoken and Hugging Face
// use); PCRE2's own \s would also match U+180E.
//
// PCRE2 in UTF mode only accepts valid UTF-8, but qkv must tokenize any bytes. The text is
// therefore split into maximal valid UTF-8 runs, each matched on its own (so a look-ahead at
// the end of a run sees the end of the subject), and maximal runs of bytes that do not start a
// valid UTF-8 sequence, each of which becomes one piece. Valid UTF-8 text is cut exactly as
// GPT-2 cuts it.
//
// Hugging Face tokenizer.json files bring patterns of their own (a "Split" pre-tokenizer, e.g.
// Llama 3's): the second constructor takes one, and cuts text as Hugging Face's Split with
// behavior "Isolated" does: every match is a piece, and so is the text between two matches.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace qkv::tokenizer {

class Pretokenizer {
 public:
  // Compiles the pattern (and JIT-compiles it when PCRE2 has a JIT for this machine).
  Pretokenizer();
  // A pattern in PCRE2's syntax (compiled with PCRE2_UTF | PCRE2_UCP); empty matches are
  // skipped, as Hugging Face skips them. Throws qkv::Error naming `source` (where the pattern
  // came from) and the offset of a pattern PCRE2 rejects.
  Pretokenizer(const std::string& pattern, const std::string& source);
  ~Pretokenizer();
  Pretokenizer(const Pretokenizer&) = delete;
  Pretokenizer& operator=(const Pretokenizer&) = delete;

  // Calls emit(piece) for each piece of text in order; the pieces concatenate to text and
  // none is empty. Thread-safe (each call has its own match data).
  void Split(std::string_view text, const std::function<void(std::string_view)>& emit) const;

  bool uses_jit() const { return uses_jit_; }

  // Frees the compiled pattern (pcre2_code_free).
  struct CodeDeleter {
    void operator()(void* code) const;
  };

 private:
  void SplitValid(std::string_view run, void* match_data,
                  const std::function<void(std::string_view)>& emit) const;

  std::unique_ptr<void, CodeDeleter> code_;  // pcre2_code_8*, kept out of this header
  bool uses_jit_ = false;
};

}  // namespace qkv::tokenizer
