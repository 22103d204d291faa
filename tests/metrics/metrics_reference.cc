// metrics_reference FILE.tsv: corpus BLEU and chrF of a file of "hypothesis<TAB>reference" lines,
// printed as one JSON object for tests/metrics/check_translation_metrics.py to compare with its own
// implementation.
//
// So that corpora can hold tabs, newlines (13a treats "-\n" and "\n" specially) and carriage
// returns, the two fields are escaped: "\\" is a backslash, "\t" a tab, "\n" a newline, "\r" a
// carriage return. Every other byte is itself; lines end at '\n' only.
//
// Doubles are printed with %.17g, which round-trips, so the comparison sees every bit.
#include <array>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "qkv/core/check.h"
#include "qkv/eval/translation_metrics.h"

namespace {

std::string Unescape(std::string_view field, size_t line_number) {
  std::string out;
  for (size_t i = 0; i < field.size(); ++i) {
    if (field[i] != '\\') {
      out += field[i];
      continue;
    }
    QKV_CHECK(i + 1 < field.size(), "line ", line_number, ": a lone backslash ends a field");
    switch (field[++i]) {
      case '\\':
        out += '\\';
        break;
      case 't':
        out += '\t';
        break;
      case 'n':
        out += '\n';
        break;
      case 'r':
        out += '\r';
        break;
      default:
        QKV_CHECK(false, "line ", line_number, ": unknown escape \\", field[i]);
    }
  }
  return out;
}

// A JSON string literal; the text is UTF-8 already, only quotes, backslashes and control characters
// need escapes.
std::string JsonString(std::string_view text) {
  std::string out = "\"";
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (byte < 0x20) {
      char escape[8];
      std::snprintf(escape, sizeof escape, "\\u%04x", byte);
      out += escape;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string Number(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%.17g", value);
  return text;
}

template <typename T, size_t N, typename Format>
std::string Array(const std::array<T, N>& values, Format format) {
  std::string out = "[";
  for (size_t i = 0; i < N; ++i) out += (i > 0 ? ", " : "") + format(values[i]);
  return out + "]";
}

std::string Strings(const std::vector<std::string>& lines) {
  std::string out = "[";
  for (size_t i = 0; i < lines.size(); ++i) {
    out += (i > 0 ? ", " : "") + JsonString(qkv::eval::Tokenize13a(lines[i]));
  }
  return out + "]";
}

int Run(const char* path) {
  std::ifstream file(path, std::ios::binary);
  QKV_CHECK(file, "cannot open ", path);
  std::vector<std::string> hypotheses, references;
  std::string line;
  for (size_t number = 1; std::getline(file, line); ++number) {
    const size_t tab = line.find('\t');
    QKV_CHECK(tab != std::string::npos && line.find('\t', tab + 1) == std::string::npos, path, ":",
              number, ": expected exactly one tab between hypothesis and reference");
    hypotheses.push_back(Unescape(std::string_view(line).substr(0, tab), number));
    references.push_back(Unescape(std::string_view(line).substr(tab + 1), number));
  }
  const qkv::eval::BleuScore bleu = qkv::eval::CorpusBleu(hypotheses, references);
  const qkv::eval::ChrfScore chrf = qkv::eval::CorpusChrf(hypotheses, references);
  const auto integer = [](int64_t value) { return std::to_string(value); };
  std::cout << "{\"bleu\": " << Number(bleu.score) << ", \"chrf\": " << Number(chrf.score)
            << ", \"precisions\": " << Array(bleu.precisions, Number)
            << ", \"bp\": " << Number(bleu.brevity_penalty)
            << ", \"hyp_len\": " << bleu.hypothesis_length
            << ", \"ref_len\": " << bleu.reference_length
            << ", \"matches\": " << Array(bleu.matches, integer)
            << ", \"totals\": " << Array(bleu.totals, integer)
            << ", \"chrf_precision\": " << Number(chrf.precision)
            << ", \"chrf_recall\": " << Number(chrf.recall)
            << ", \"chrf_effective_order\": " << chrf.effective_order
            << ", \"chrf_hyp\": " << Array(chrf.hypothesis_ngrams, integer)
            << ", \"chrf_ref\": " << Array(chrf.reference_ngrams, integer)
            << ", \"chrf_matches\": " << Array(chrf.matches, integer)
            << ", \"hyp_13a\": " << Strings(hypotheses) << ", \"ref_13a\": " << Strings(references)
            << "}\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: metrics_reference FILE.tsv  (lines: "
                 "hypothesis<TAB>reference)\n";
    return 2;
  }
  try {
    return Run(argv[1]);
  } catch (const qkv::Error& error) {
    std::cerr << "metrics_reference: " << error.what() << "\n";
    return 1;
  }
}
