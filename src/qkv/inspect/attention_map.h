// Attention maps as standalone SVG: one heatmap per head, the query tokens down the rows and
// the key tokens along the columns, one picture per layer. Weights exactly 0 (the causal
// upper triangle) are drawn white, so masking is visible at a glance.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace qkv::inspect {

// weights[head][query][key], each in [0, 1]. Tokens label both axes; whitespace is made
// visible (space as '␣', newline as '⏎', tab as '⇥').
std::string RenderAttentionSvg(const std::string& title, const std::vector<std::string>& tokens,
                               const std::vector<std::vector<std::vector<float>>>& weights);
// Queries and keys from different sequences (an encoder-decoder's cross-attention):
// weights[head][query][key], query_tokens label the rows, key_tokens the columns.
std::string RenderAttentionSvg(const std::string& title,
                               const std::vector<std::string>& query_tokens,
                               const std::vector<std::string>& key_tokens,
                               const std::vector<std::vector<std::vector<float>>>& weights);

// The label drawn for a token.
std::string VisibleToken(const std::string& token);

}  // namespace qkv::inspect
