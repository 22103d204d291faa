// The attention explorer: one self-contained HTML page (inline CSS and script, the weights
// embedded as JSON, nothing fetched) that shows every layer and head of a model for one text:
// a grid of small heatmaps, an enlarged view, and a line view of who attends to whom.
//
// The data is a list of attention kinds rather than one (layers, heads) block because an
// encoder-decoder model has three of them (encoder self-, decoder self- and cross-attention),
// and cross-attention's queries and keys are different token sequences.
#pragma once

#include <string>
#include <vector>

namespace qkv::inspect {

struct AttentionKind {
  std::string name;                       // shown in the page, e.g. "decoder self-attention"
  std::vector<std::string> query_tokens;  // the rows of every matrix
  std::vector<std::string> key_tokens;    // the columns
  // weights[layer][head][query][key], each in [0, 1]. Exactly 0 means masked: the page draws
  // it apart from small non-zero weights.
  std::vector<std::vector<std::vector<std::vector<float>>>> weights;
};

struct AttentionExplorer {
  std::string title;  // e.g. the model directory
  std::string text;   // the text the weights were computed for
  std::vector<AttentionKind> kinds;
};

// The data as JSON that is safe inside <script type="application/json">: '<', '>', '&', U+2028
// and U+2029 are written as \uXXXX escapes, so no text can close the element. Bytes that are
// not valid UTF-8 become U+FFFD. Weights keep 4 significant digits (a non-zero weight stays
// non-zero). Throws std::invalid_argument when a matrix's shape does not match its tokens, a
// weight is not finite, or a kind has no layers.
std::string AttentionExplorerJson(const AttentionExplorer& explorer);

// The whole page.
std::string RenderAttentionHtml(const AttentionExplorer& explorer);

// text with &, <, >, " and ' escaped for HTML character data and attribute values.
std::string EscapeHtml(const std::string& text);

}  // namespace qkv::inspect
