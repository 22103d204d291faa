// Cutting special (added) tokens out of a text before it is tokenised: the earliest occurrence
// first, and at equal positions the longest token (Hugging Face's leftmost-longest match).
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string_view>

namespace qkv::tokenizer {

struct SpecialToken {
  std::string_view text;  // not empty
  int32_t id;
};

// Calls ordinary(part) for each non-empty part of text between special tokens and special(id)
// for each special token, in text order. `tokens` must be sorted longest first. Linear in the
// text for a fixed set of tokens: each token's next occurrence is searched for again only once
// the text before it has been consumed.
void SplitAtSpecialTokens(std::string_view text, std::span<const SpecialToken> tokens,
                          const std::function<void(std::string_view)>& ordinary,
                          const std::function<void(int32_t)>& special);

}  // namespace qkv::tokenizer
