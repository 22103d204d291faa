// Text for SVG documents, shared by the plots and the attention maps.
#pragma once

#include <string>

namespace qkv::inspect {

// text with &, <, >, " and ' escaped for XML (and HTML) character data and attribute values.
inline std::string EscapeXml(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

}  // namespace qkv::inspect
