#include "qkv/tokenizer/bpe_merger.h"

#include <algorithm>
#include <bit>

namespace qkv::tokenizer {

// Open addressing with linear probing: the lookup in BPE's inner loop, so it avoids
// std::unordered_map's pointer chasing.
struct BpeMerger::MergeTable {
  struct Slot {
    uint64_t key = kEmpty;
    int32_t rank = 0;
    int32_t merged = 0;
  };
  static constexpr uint64_t kEmpty = ~uint64_t{0};

  explicit MergeTable(size_t count) {
    const size_t capacity = std::bit_ceil(std::max<size_t>(16, count * 2));
    slots.resize(capacity);
    shift = 64 - std::countr_zero(capacity);
  }
  static uint64_t Key(int32_t left, int32_t right) {
    return (uint64_t{static_cast<uint32_t>(left)} << 32) | static_cast<uint32_t>(right);
  }
  size_t Home(uint64_t key) const { return (key * 0x9E3779B97F4A7C15ull) >> shift; }
  // False if the pair is already present (the first, lowest rank, wins).
  bool Insert(int32_t left, int32_t right, int32_t rank, int32_t merged) {
    const uint64_t key = Key(left, right);
    for (size_t i = Home(key);; i = (i + 1) & (slots.size() - 1)) {
      if (slots[i].key == key) return false;
      if (slots[i].key == kEmpty) {
        slots[i] = {key, rank, merged};
        return true;
      }
    }
  }
  const Slot* Find(int32_t left, int32_t right) const {
    const uint64_t key = Key(left, right);
    for (size_t i = Home(key);; i = (i + 1) & (slots.size() - 1)) {
      if (slots[i].key == key) return &slots[i];
      if (slots[i].key == kEmpty) return nullptr;
    }
  }

  std::vector<Slot> slots;
  int shift;
};

BpeMerger::BpeMerger(const std::array<int32_t, 256>& byte_ids, const std::vector<Merge>& merges,
                     WholeTokens whole_tokens)
    : byte_ids_(byte_ids),
      table_(std::make_unique<MergeTable>(merges.size())),
      whole_tokens_(std::move(whole_tokens)) {
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    table_->Insert(merges[rank].left, merges[rank].right, static_cast<int32_t>(rank),
                   merges[rank].merged);
  }
}

BpeMerger::~BpeMerger() = default;

void BpeMerger::EncodePiece(std::string_view piece, std::vector<int32_t>* ids) const {
  const int32_t n = static_cast<int32_t>(piece.size());
  if (n == 0) return;
  if (n == 1) {
    ids->push_back(byte_ids_[static_cast<uint8_t>(piece[0])]);
    return;
  }
  if (!whole_tokens_.empty()) {
    if (const auto it = whole_tokens_.find(piece); it != whole_tokens_.end()) {
      ids->push_back(it->second);
      return;
    }
  }
  // The piece as a linked list of symbols (id -1: merged into its left neighbour), and a
  // min-heap of candidate merges ordered by (rank, position). GPT-2 merges every occurrence of
  // the lowest-ranked pair in one left-to-right pass before looking for the next pair, so each
  // round takes all candidates of one rank, in position order, and candidates created during
  // the round wait for a later round. O(n log n) rather than GPT-2's O(n^2) on long pieces.
  struct Symbol {
    int32_t id, prev, next;
  };
  struct Candidate {
    int32_t rank, position, left, right;
    bool operator>(const Candidate& other) const {
      return rank != other.rank ? rank > other.rank : position > other.position;
    }
  };
  std::vector<Symbol> symbols(n);
  for (int32_t i = 0; i < n; ++i) {
    symbols[i] = {byte_ids_[static_cast<uint8_t>(piece[i])], i - 1, i + 1 < n ? i + 1 : -1};
  }
  std::vector<Candidate> heap;
  const auto consider = [&](int32_t position) {
    const int32_t next = symbols[position].next;
    if (next < 0) return;
    const MergeTable::Slot* merge = table_->Find(symbols[position].id, symbols[next].id);
    if (merge == nullptr) return;
    heap.push_back({merge->rank, position, symbols[position].id, symbols[next].id});
    std::push_heap(heap.begin(), heap.end(), std::greater<>());
  };
  for (int32_t i = 0; i + 1 < n; ++i) consider(i);
  std::vector<Candidate> round;
  while (!heap.empty()) {
    round.clear();
    const int32_t rank = heap.front().rank;
    while (!heap.empty() && heap.front().rank == rank) {
      std::pop_heap(heap.begin(), heap.end(), std::greater<>());
      round.push_back(heap.back());
      heap.pop_back();
    }
    for (const Candidate& candidate : round) {
      Symbol& symbol = symbols[candidate.position];
      // Stale if either side has been merged since the candidate was made.
      if (symbol.id != candidate.left || symbol.next < 0 ||
          symbols[symbol.next].id != candidate.right) {
        continue;
      }
      const int32_t absorbed = symbol.next;
      symbol.id = table_->Find(candidate.left, candidate.right)->merged;
      symbol.next = symbols[absorbed].next;
      if (symbol.next >= 0) symbols[symbol.next].prev = candidate.position;
      symbols[absorbed].id = -1;
      if (symbol.prev >= 0) consider(symbol.prev);
      consider(candidate.position);
    }
  }
  for (int32_t i = 0; i >= 0; i = symbols[i].next) ids->push_back(symbols[i].id);
}

void BpeMerger::Cache::EncodePiece(const BpeMerger& merger, std::string_view piece,
                                   std::vector<int32_t>* ids) {
  if (const auto it = pieces_.find(piece); it != pieces_.end()) {
    ids->insert(ids->end(), it->second.begin(), it->second.end());
    return;
  }
  const size_t begin = ids->size();
  merger.EncodePiece(piece, ids);
  if (pieces_.size() >= kMaxEntries) pieces_.clear();
  pieces_.emplace(std::string(piece), std::vector<int32_t>(ids->begin() + begin, ids->end()));
}

}  // namespace qkv::tokenizer
