// BpeTokenizer::Train: learning merges from text.
//
// The text is pre-tokenised as for encoding and the distinct pieces are counted, so a merge
// never crosses a piece boundary. Every piece starts as its bytes. Each step merges the pair
// of adjacent tokens with the highest count over all pieces (weighted by how often each piece
// occurs); ties go to the pair whose left token's bytes are smallest (compared as unsigned
// bytes), then whose right token's bytes are smallest, so the result depends only on the text.
//
// Counts are updated incrementally: only the pieces that contain the merged pair are visited
// (an index maps each pair to those pieces), and a max-heap with lazy deletion finds the best
// pair (an entry whose count is out of date is pushed again with the current count).
#include <algorithm>
#include <chrono>
#include <ostream>
#include <unordered_map>

#include "qkv/core/check.h"
#include "qkv/tokenizer/bpe_tokenizer.h"
#include "qkv/tokenizer/byte_level.h"

namespace qkv::tokenizer {
namespace {

uint64_t PairKey(int32_t left, int32_t right) {
  return (uint64_t{static_cast<uint32_t>(left)} << 32) | static_cast<uint32_t>(right);
}

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view text) const { return std::hash<std::string_view>{}(text); }
};

struct HeapEntry {
  int64_t count;
  int32_t left, right;
};

class Trainer {
 public:
  Trainer(std::string_view text, std::ostream* progress) : progress_(progress) {
    const auto start = std::chrono::steady_clock::now();
    std::unordered_map<std::string, int64_t, StringHash, std::equal_to<>> piece_counts;
    int64_t num_pieces = 0;
    Pretokenizer().Split(text, [&](std::string_view piece) {
      ++num_pieces;
      if (piece.size() < 2) return;  // holds no pair
      if (auto it = piece_counts.find(piece); it != piece_counts.end()) {
        ++it->second;
      } else {
        piece_counts.emplace(std::string(piece), 1);
      }
    });
    // Sorted so that the order of work never depends on hashing.
    std::vector<std::pair<std::string, int64_t>> pieces(piece_counts.begin(), piece_counts.end());
    std::sort(pieces.begin(), pieces.end());

    const auto& byte_order = byte_level::ByteOrder();
    int32_t byte_ids[256];
    for (int32_t id = 0; id < 256; ++id) {
      byte_ids[byte_order[id]] = id;
      token_bytes_.emplace_back(1, static_cast<char>(byte_order[id]));
      token_ids_.emplace(token_bytes_.back(), id);
    }
    words_.reserve(pieces.size());
    word_counts_.reserve(pieces.size());
    for (const auto& [piece, count] : pieces) {
      std::vector<int32_t> symbols(piece.size());
      for (size_t i = 0; i < piece.size(); ++i)
        symbols[i] = byte_ids[static_cast<uint8_t>(piece[i])];
      words_.push_back(std::move(symbols));
      word_counts_.push_back(count);
    }
    for (int32_t w = 0; w < static_cast<int32_t>(words_.size()); ++w) {
      const std::vector<int32_t>& symbols = words_[w];
      for (size_t i = 0; i + 1 < symbols.size(); ++i) {
        const uint64_t key = PairKey(symbols[i], symbols[i + 1]);
        pair_counts_[key] += word_counts_[w];
        AddToIndex(key, w);
      }
    }
    for (const auto& [key, count] : pair_counts_) {
      heap_.push_back({count, static_cast<int32_t>(key >> 32), static_cast<int32_t>(key)});
    }
    std::make_heap(heap_.begin(), heap_.end(), HeapOrder());
    if (progress_ != nullptr) {
      const double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      *progress_ << "bpe: " << text.size() << " bytes, " << num_pieces << " pieces ("
                 << words_.size() << " distinct with 2+ bytes) in " << seconds << " s\n";
    }
  }

  // Merges until there are num_tokens tokens or no pair is left.
  void Run(int64_t num_tokens) {
    const auto start = std::chrono::steady_clock::now();
    const int64_t target_merges = num_tokens - 256;
    const int64_t report_every = std::max<int64_t>(1, target_merges / 10);
    while (static_cast<int64_t>(token_bytes_.size()) < num_tokens && !heap_.empty()) {
      std::pop_heap(heap_.begin(), heap_.end(), HeapOrder());
      const HeapEntry entry = heap_.back();
      heap_.pop_back();
      const uint64_t key = PairKey(entry.left, entry.right);
      const auto it = pair_counts_.find(key);
      const int64_t current = it == pair_counts_.end() ? 0 : it->second;
      if (current != entry.count) {
        if (current > 0) Push({current, entry.left, entry.right});
        continue;
      }
      Merge(entry.left, entry.right);
      if (progress_ != nullptr && static_cast<int64_t>(merges_.size()) % report_every == 0) {
        const double seconds =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        const double done = static_cast<double>(merges_.size());
        const double left = seconds / done * (static_cast<double>(target_merges) - done);
        *progress_ << "bpe: training the tokenizer: merge " << merges_.size() << "/"
                   << target_merges << " (count " << entry.count << ", " << token_bytes_.size()
                   << " tokens) " << seconds << " s, " << left << " s left\n";
      }
    }
    if (progress_ != nullptr && static_cast<int64_t>(token_bytes_.size()) < num_tokens) {
      *progress_ << "bpe: the text has no more pairs to merge; stopping at " << token_bytes_.size()
                 << " tokens instead of " << num_tokens << "\n";
    }
  }

  std::unique_ptr<BpeTokenizer> Build() const {
    std::vector<std::string> vocabulary;
    vocabulary.reserve(token_bytes_.size());
    for (const std::string& bytes : token_bytes_) vocabulary.push_back(byte_level::Encode(bytes));
    std::vector<std::pair<std::string, std::string>> merges;
    merges.reserve(merges_.size());
    for (const auto& [left, right] : merges_) {
      merges.emplace_back(vocabulary[left], vocabulary[right]);
    }
    return std::make_unique<BpeTokenizer>(std::move(vocabulary), std::move(merges), "trained BPE");
  }

 private:
  // Heap order: higher count first, then smaller left bytes, then smaller right bytes.
  struct Less {
    const std::vector<std::string>* bytes;
    bool operator()(const HeapEntry& a, const HeapEntry& b) const {
      if (a.count != b.count) return a.count < b.count;
      const int left = (*bytes)[a.left].compare((*bytes)[b.left]);
      if (left != 0) return left > 0;
      return (*bytes)[a.right].compare((*bytes)[b.right]) > 0;
    }
  };
  Less HeapOrder() const { return {&token_bytes_}; }

  void Push(const HeapEntry& entry) {
    heap_.push_back(entry);
    std::push_heap(heap_.begin(), heap_.end(), HeapOrder());
  }

  void AddToIndex(uint64_t key, int32_t word) {
    std::vector<int32_t>& words = index_[key];
    if (words.empty() || words.back() != word) words.push_back(word);
  }

  void Merge(int32_t left, int32_t right) {
    const std::string bytes = token_bytes_[left] + token_bytes_[right];
    // Two different pairs can spell the same bytes ("a"+"bc", "ab"+"c"); they share a token.
    int32_t merged;
    if (const auto it = token_ids_.find(bytes); it != token_ids_.end()) {
      merged = it->second;
    } else {
      merged = static_cast<int32_t>(token_bytes_.size());
      token_bytes_.push_back(bytes);
      token_ids_.emplace(bytes, merged);
    }
    merges_.emplace_back(left, right);

    const uint64_t merged_key = PairKey(left, right);
    std::vector<int32_t> words = std::move(index_[merged_key]);
    index_.erase(merged_key);
    std::sort(words.begin(), words.end());
    words.erase(std::unique(words.begin(), words.end()), words.end());
    std::vector<uint64_t> grown;  // pairs with the merged token, whose counts went up
    std::vector<int32_t> merged_symbols;
    for (int32_t w : words) {
      std::vector<int32_t>& symbols = words_[w];
      const int64_t count = word_counts_[w];
      bool contains = false;
      for (size_t i = 0; i + 1 < symbols.size() && !contains; ++i) {
        contains = symbols[i] == left && symbols[i + 1] == right;
      }
      if (!contains) continue;  // the index keeps words whose pair has since been merged away
      for (size_t i = 0; i + 1 < symbols.size(); ++i) {
        pair_counts_[PairKey(symbols[i], symbols[i + 1])] -= count;
      }
      merged_symbols.clear();
      for (size_t i = 0; i < symbols.size(); ++i) {
        if (i + 1 < symbols.size() && symbols[i] == left && symbols[i + 1] == right) {
          merged_symbols.push_back(merged);
          ++i;
        } else {
          merged_symbols.push_back(symbols[i]);
        }
      }
      symbols.assign(merged_symbols.begin(), merged_symbols.end());
      for (size_t i = 0; i + 1 < symbols.size(); ++i) {
        const uint64_t key = PairKey(symbols[i], symbols[i + 1]);
        pair_counts_[key] += count;
        if (symbols[i] == merged || symbols[i + 1] == merged) {
          AddToIndex(key, w);
          grown.push_back(key);
        }
      }
    }
    pair_counts_.erase(merged_key);
    std::sort(grown.begin(), grown.end());
    grown.erase(std::unique(grown.begin(), grown.end()), grown.end());
    for (uint64_t key : grown) {
      const int64_t count = pair_counts_[key];
      if (count > 0) Push({count, static_cast<int32_t>(key >> 32), static_cast<int32_t>(key)});
    }
  }

  std::ostream* progress_;
  std::vector<std::string> token_bytes_;  // by id
  std::unordered_map<std::string, int32_t> token_ids_;
  std::vector<std::pair<int32_t, int32_t>> merges_;
  std::vector<std::vector<int32_t>> words_;  // distinct pieces, as token ids
  std::vector<int64_t> word_counts_;
  std::unordered_map<uint64_t, int64_t> pair_counts_;
  std::unordered_map<uint64_t, std::vector<int32_t>> index_;  // pair -> words that had it
  std::vector<HeapEntry> heap_;
};

}  // namespace

std::unique_ptr<BpeTokenizer> BpeTokenizer::Train(std::string_view text,
                                                  const BpeTrainOptions& options) {
  QKV_CHECK(options.num_tokens >= 257 && options.num_tokens <= (int64_t{1} << 30),
            "BPE training: num_tokens ", options.num_tokens,
            " must be at least 257 (the 256 bytes plus one merge) and at most 2^30");
  Trainer trainer(text, options.progress);
  trainer.Run(options.num_tokens);
  return trainer.Build();
}

}  // namespace qkv::tokenizer
