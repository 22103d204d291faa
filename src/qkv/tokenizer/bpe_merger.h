// Byte-level BPE merging, shared by qkv's GPT-2 tokenizer (bpe_tokenizer.h) and Hugging Face
// tokenizer.json files (hf_bpe_tokenizer.h): the one implementation of the merge loop.
//
// A piece of bytes starts as one token per byte; repeatedly the adjacent pair with the lowest
// merge rank is found and all its occurrences are merged, left to right, until no pair in the
// piece has a rank (openai/gpt-2's encoder.py). Hugging Face's BPE merges one occurrence at a
// time, lowest (rank, position) first; for merge lists in which every merge's parts are bytes or
// results of lower-ranked merges (all learned or converted vocabularies) the two give the same
// tokens.
//
// Optionally (Hugging Face's "ignore_merges", Llama 3), a piece that is itself a token maps to
// that token directly, without merging.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace qkv::tokenizer {

class BpeMerger {
 public:
  struct Merge {
    int32_t left, right, merged;  // token ids
  };
  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view text) const { return std::hash<std::string_view>{}(text); }
  };
  using WholeTokens = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

  // byte_ids[b] is the token of byte b; merges are in rank order (a repeated pair keeps its
  // first, lowest rank). whole_tokens (raw bytes -> id; may be empty) are the pieces that map
  // to one token without merging.
  BpeMerger(const std::array<int32_t, 256>& byte_ids, const std::vector<Merge>& merges,
            WholeTokens whole_tokens = {});
  ~BpeMerger();
  BpeMerger(const BpeMerger&) = delete;
  BpeMerger& operator=(const BpeMerger&) = delete;

  int32_t byte_id(uint8_t byte) const { return byte_ids_[byte]; }

  // Appends the ids of one piece (no cache).
  void EncodePiece(std::string_view piece, std::vector<int32_t>* ids) const;

  // Pieces -> ids. Not thread-safe: its users take one lock per Encode call (pieces are too
  // small to lock one by one). Bounded, so text with endless distinct pieces cannot exhaust
  // memory; the cache only saves time.
  class Cache {
   public:
    void EncodePiece(const BpeMerger& merger, std::string_view piece, std::vector<int32_t>* ids);

   private:
    static constexpr size_t kMaxEntries = size_t{1} << 18;
    std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>> pieces_;
  };

 private:
  struct MergeTable;  // (left id, right id) -> (rank, merged id)

  std::array<int32_t, 256> byte_ids_;
  std::unique_ptr<MergeTable> table_;
  WholeTokens whole_tokens_;
};

}  // namespace qkv::tokenizer
