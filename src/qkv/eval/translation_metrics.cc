#include "qkv/eval/translation_metrics.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "qkv/core/check.h"

namespace qkv::eval {
namespace {

// Strict UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF), the set of
// byte strings Python can decode to the str that sacreBLEU works on. Returns the sequence's length
// (1-4) and writes its code point, or returns 0 when text[offset] starts no valid one. Written here
// rather than borrowed from qkv/tokenizer so that eval depends on core only.
int DecodeUtf8(std::string_view text, size_t offset, char32_t* code_point) {
  const auto byte = [&](size_t i) { return static_cast<unsigned char>(text[i]); };
  const unsigned char lead = byte(offset);
  if (lead < 0x80) {
    *code_point = lead;
    return 1;
  }
  // The lead byte gives the length, its payload bits and the smallest code point that needs that
  // length (anything below is an overlong form). 0xC0, 0xC1 and 0xF5.. lead only overlong or
  // out-of-range sequences.
  int length = 0;
  char32_t value = 0;
  char32_t smallest = 0;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
    value = lead & 0x1Fu;
    smallest = 0x80;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    value = lead & 0x0Fu;
    smallest = 0x800;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    value = lead & 0x07u;
    smallest = 0x10000;
  } else {
    return 0;
  }
  if (text.size() - offset < static_cast<size_t>(length)) return 0;
  for (int i = 1; i < length; ++i) {
    const unsigned char next = byte(offset + static_cast<size_t>(i));
    if ((next & 0xC0u) != 0x80u) return 0;
    value = (value << 6) | (next & 0x3Fu);
  }
  if (value < smallest || value > 0x10FFFF || (value >= 0xD800 && value <= 0xDFFF)) return 0;
  *code_point = value;
  return length;
}

// Python's str.isspace(), which is what str.split() and str.rstrip() (no argument) use; the 13a
// tokenizer, BLEU's n-gram extraction and chrF's whitespace removal all go through them.
bool IsPythonSpace(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
         c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
         c == 0x205F || c == 0x3000;
}

// One character of text at offset: its byte length and whether it is whitespace. An invalid byte
// counts as a one-byte non-space character, so tokenizing arbitrary bytes never fails.
struct Char {
  size_t length;
  bool space;
};

Char CharAt(std::string_view text, size_t offset) {
  char32_t c = 0;
  const int length = DecodeUtf8(text, offset, &c);
  if (length == 0) return {1, false};
  return {static_cast<size_t>(length), IsPythonSpace(c)};
}

// ' '.join(text.split()) in Python.
std::string CollapseSpaces(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    const Char c = CharAt(text, i);
    if (c.space) {
      i += c.length;
      continue;
    }
    if (!out.empty()) out += ' ';
    while (i < text.size()) {
      const Char word_char = CharAt(text, i);
      if (word_char.space) break;
      out.append(text.substr(i, word_char.length));
      i += word_char.length;
    }
  }
  return out;
}

// text.rstrip() in Python.
std::string_view StripTrailingSpaces(std::string_view text) {
  size_t end = 0;
  for (size_t i = 0; i < text.size();) {
    const Char c = CharAt(text, i);
    i += c.length;
    if (!c.space) end = i;
  }
  return text.substr(0, end);
}

// Python's str.replace: left to right, matches do not overlap, the result is not rescanned.
std::string ReplaceAll(std::string_view text, std::string_view from, std::string_view to) {
  std::string out;
  out.reserve(text.size());
  size_t start = 0;
  for (size_t found; (found = text.find(from, start)) != std::string_view::npos;) {
    out.append(text.substr(start, found - start));
    out.append(to);
    start = found + from.size();
  }
  out.append(text.substr(start));
  return out;
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsPeriodOrComma(char c) { return c == '.' || c == ','; }

// The class [\{-\~\[-\` -\&\(-\+\:-\@\/] of mteval's first rule: all ASCII punctuation and the
// space except '.', ',', '-' and '\'' (0x27), which have rules of their own or none.
bool IsSplitPunctuation(char c) {
  return (c >= '{' && c <= '~') || (c >= '[' && c <= '`') || (c >= ' ' && c <= '&') ||
         (c >= '(' && c <= '+') || (c >= ':' && c <= '@') || c == '/';
}

// Applies a two-character substitution pattern the way Python's re.sub does: scanning left to
// right, a match consumes both characters and scanning resumes after them. `matches` decides on a
// pair of bytes. Working on bytes rather than code points gives the same result because every
// pattern has an ASCII character on at least one side, and the one non-ASCII-capable class, [^0-9],
// only ever needs a single byte to decide (no byte of a multi-byte UTF-8 sequence is a digit, '.'
// or ',').
template <typename Matches, typename Emit>
std::string SubstitutePairs(std::string_view text, Matches matches, Emit emit) {
  std::string out;
  out.reserve(text.size() + text.size() / 2);
  size_t i = 0;
  while (i < text.size()) {
    if (i + 1 < text.size() && matches(text[i], text[i + 1])) {
      emit(text[i], text[i + 1], out);
      i += 2;
    } else {
      out += text[i++];
    }
  }
  return out;
}

std::string ApplyPunctuationRules(std::string_view line) {
  // ([\{-\~\[-\` -\&\(-\+\:-\@\/]) -> " \1 "
  std::string text;
  text.reserve(line.size() * 2);
  for (const char c : line) {
    if (IsSplitPunctuation(c)) {
      text += ' ';
      text += c;
      text += ' ';
    } else {
      text += c;
    }
  }
  // ([^0-9])([\.,]) -> "\1 \2 ": a period or comma not preceded by a digit.
  text = SubstitutePairs(
      text, [](char a, char b) { return !IsDigit(a) && IsPeriodOrComma(b); },
      [](char a, char b, std::string& out) {
        out += a;
        out += ' ';
        out += b;
        out += ' ';
      });
  // ([\.,])([^0-9]) -> " \1 \2": a period or comma not followed by a digit.
  text = SubstitutePairs(
      text, [](char a, char b) { return IsPeriodOrComma(a) && !IsDigit(b); },
      [](char a, char b, std::string& out) {
        out += ' ';
        out += a;
        out += ' ';
        out += b;
      });
  // ([0-9])(-) -> "\1 \2 ": a dash after a digit.
  text = SubstitutePairs(
      text, [](char a, char b) { return IsDigit(a) && b == '-'; },
      [](char a, char b, std::string& out) {
        out += a;
        out += ' ';
        out += b;
        out += ' ';
      });
  return CollapseSpaces(text);
}

void CheckUtf8(std::string_view text, const char* what, size_t index) {
  char32_t c;
  for (size_t i = 0; i < text.size();) {
    const int length = DecodeUtf8(text, i, &c);
    QKV_CHECK(length > 0, what, " ", index, " is not valid UTF-8 (byte ", i, " of ", text.size(),
              ")");
    i += static_cast<size_t>(length);
  }
}

void CheckCorpus(std::span<const std::string> hypotheses, std::span<const std::string> references,
                 const char* metric) {
  QKV_CHECK(hypotheses.size() == references.size(), metric, ": ", hypotheses.size(),
            " hypotheses but ", references.size(), " references (one reference per hypothesis)");
  QKV_CHECK(!hypotheses.empty(), metric, ": the corpus is empty (no hypotheses, no references)");
  for (size_t i = 0; i < hypotheses.size(); ++i) {
    CheckUtf8(hypotheses[i], "hypothesis", i);
    CheckUtf8(references[i], "reference", i);
  }
}

// The n-grams of one order of a hypothesis and its reference, as views of the lines' text.
// Matching sorts both lists and walks them in step, pairing equal n-grams one to one: that counts
// min(hypothesis count, reference count) of each n-gram, the clipped count, without hashing, and
// as the lists are reused from line to line it stops allocating once they have grown.
template <typename View>
struct NgramLists {
  std::vector<View> hypothesis, reference;

  int64_t ClippedMatches() {
    std::sort(hypothesis.begin(), hypothesis.end());
    std::sort(reference.begin(), reference.end());
    int64_t matches = 0;
    auto h = hypothesis.begin();
    auto r = reference.begin();
    while (h != hypothesis.end() && r != reference.end()) {
      if (*h < *r) {
        ++h;
      } else if (*r < *h) {
        ++r;
      } else {
        ++matches;
        ++h;
        ++r;
      }
    }
    return matches;
  }
};

// Replaces `out` with the n-grams of characters of text.
void CharNgrams(std::u32string_view text, size_t n, std::vector<std::u32string_view>& out) {
  out.clear();
  for (size_t i = 0; i + n <= text.size(); ++i) out.push_back(text.substr(i, n));
}

// A tokenized line (single spaces between tokens) and where each token starts and ends. The n-gram
// of tokens i..i+n-1 is then the substring from the start of i to the end of i+n-1: as tokens hold
// no spaces, equal substrings are equal token tuples.
struct Tokens {
  std::string text;
  std::vector<size_t> starts, ends;

  explicit Tokens(std::string tokenized) : text(std::move(tokenized)) {
    for (size_t i = 0; i < text.size();) {
      const size_t end = std::min(text.find(' ', i), text.size());
      starts.push_back(i);
      ends.push_back(end);
      i = end + 1;
    }
  }
  int64_t size() const { return static_cast<int64_t>(starts.size()); }

  // Replaces `out` with the n-grams of tokens.
  void Ngrams(size_t n, std::vector<std::string_view>& out) const {
    out.clear();
    const std::string_view view = text;
    for (size_t i = 0; i + n <= starts.size(); ++i) {
      out.push_back(view.substr(starts[i], ends[i + n - 1] - starts[i]));
    }
  }
};

// sacreBLEU's my_log: log with log(0) replaced by a huge negative number, so that an order with no
// n-grams at all drives the geometric mean to exactly 0 instead of raising.
double FlooredLog(double x) { return x == 0.0 ? -9999999999.0 : std::log(x); }

void ComputeBleu(BleuScore& bleu) {
  bleu.brevity_penalty = 1.0;
  if (bleu.hypothesis_length < bleu.reference_length) {
    bleu.brevity_penalty = bleu.hypothesis_length > 0
                               ? std::exp(1.0 - static_cast<double>(bleu.reference_length) /
                                                    static_cast<double>(bleu.hypothesis_length))
                               : 0.0;
  }
  bleu.precisions.fill(0.0);
  bleu.score = 0.0;
  // sacreBLEU stops early when no n-gram of any order matched, so even the smoothed precisions stay
  // 0 (its issue #141).
  if (std::all_of(bleu.matches.begin(), bleu.matches.end(), [](int64_t m) { return m == 0; })) {
    return;
  }
  double smoothing = 1.0;
  for (size_t n = 0; n < kBleuMaxOrder; ++n) {
    const auto total = static_cast<double>(bleu.totals[n]);
    if (total == 0) break;  // this and higher orders keep precision 0, the score becomes 0
    if (bleu.matches[n] == 0) {
      smoothing *= 2.0;
      bleu.precisions[n] = 100.0 / (smoothing * total);
    } else {
      bleu.precisions[n] = 100.0 * static_cast<double>(bleu.matches[n]) / total;
    }
  }
  double log_sum = 0.0;
  for (const double p : bleu.precisions) log_sum += FlooredLog(p);
  bleu.score = bleu.brevity_penalty * std::exp(log_sum / kBleuMaxOrder);
}

// The characters of a line as code points, whitespace dropped (''.join(line.split())).
std::u32string CodePointsWithoutSpaces(std::string_view line) {
  std::u32string out;
  out.reserve(line.size());
  char32_t c = 0;
  for (size_t i = 0; i < line.size();) {
    const int length = DecodeUtf8(line, i, &c);
    if (length == 0) {  // CheckCorpus has ruled this out; never loop forever on it anyway
      ++i;
      continue;
    }
    i += static_cast<size_t>(length);
    if (!IsPythonSpace(c)) out += c;
  }
  return out;
}

}  // namespace

std::string Tokenize13a(std::string_view line) {
  std::string text = ReplaceAll(line, "<skipped>", "");
  text = ReplaceAll(text, "-\n", "");
  text = ReplaceAll(text, "\n", " ");
  if (text.find('&') != std::string::npos) {
    text = ReplaceAll(text, "&quot;", "\"");
    text = ReplaceAll(text, "&amp;", "&");
    text = ReplaceAll(text, "&lt;", "<");
    text = ReplaceAll(text, "&gt;", ">");
  }
  // The surrounding spaces let the period/comma rules see a non-digit at both ends.
  return ApplyPunctuationRules(" " + text + " ");
}

BleuScore CorpusBleu(std::span<const std::string> hypotheses,
                     std::span<const std::string> references) {
  CheckCorpus(hypotheses, references, "BLEU");
  BleuScore bleu;
  NgramLists<std::string_view> ngrams;
  for (size_t s = 0; s < hypotheses.size(); ++s) {
    // sacreBLEU rstrips before tokenizing, so a trailing "-\n" is not a joined hyphenation.
    const Tokens hypothesis(Tokenize13a(StripTrailingSpaces(hypotheses[s])));
    const Tokens reference(Tokenize13a(StripTrailingSpaces(references[s])));
    bleu.hypothesis_length += hypothesis.size();
    bleu.reference_length += reference.size();
    for (size_t n = 1; n <= kBleuMaxOrder; ++n) {
      hypothesis.Ngrams(n, ngrams.hypothesis);
      reference.Ngrams(n, ngrams.reference);
      bleu.totals[n - 1] += static_cast<int64_t>(ngrams.hypothesis.size());
      bleu.matches[n - 1] += ngrams.ClippedMatches();
    }
  }
  ComputeBleu(bleu);
  return bleu;
}

ChrfScore CorpusChrf(std::span<const std::string> hypotheses,
                     std::span<const std::string> references) {
  CheckCorpus(hypotheses, references, "chrF");
  ChrfScore chrf;
  NgramLists<std::u32string_view> ngrams;
  for (size_t s = 0; s < hypotheses.size(); ++s) {
    const std::u32string hypothesis = CodePointsWithoutSpaces(hypotheses[s]);
    const std::u32string reference = CodePointsWithoutSpaces(references[s]);
    for (size_t n = 1; n <= kChrfCharOrder; ++n) {
      CharNgrams(reference, n, ngrams.reference);
      if (ngrams.reference.empty()) continue;  // sacreBLEU then counts no hypothesis n-grams
      CharNgrams(hypothesis, n, ngrams.hypothesis);
      chrf.reference_ngrams[n - 1] += static_cast<int64_t>(ngrams.reference.size());
      chrf.hypothesis_ngrams[n - 1] += static_cast<int64_t>(ngrams.hypothesis.size());
      chrf.matches[n - 1] += ngrams.ClippedMatches();
    }
  }

  // sacreBLEU's default (eps_smoothing=False): average precision and recall over the orders both
  // sides have n-grams of, then one F-beta of the averages.
  double precision_sum = 0.0, recall_sum = 0.0;
  for (size_t order = 0; order < kChrfCharOrder; ++order) {
    const int64_t hyp = chrf.hypothesis_ngrams[order], ref = chrf.reference_ngrams[order];
    if (hyp > 0 && ref > 0) {
      const auto matches = static_cast<double>(chrf.matches[order]);
      precision_sum += matches / static_cast<double>(hyp);
      recall_sum += matches / static_cast<double>(ref);
      ++chrf.effective_order;
    }
  }
  if (chrf.effective_order > 0) {
    chrf.precision = precision_sum / chrf.effective_order;
    chrf.recall = recall_sum / chrf.effective_order;
  }
  if (chrf.precision + chrf.recall != 0.0) {
    constexpr double kFactor = kChrfBeta * kChrfBeta;
    chrf.score = 100.0 * ((1.0 + kFactor) * chrf.precision * chrf.recall /
                          (kFactor * chrf.precision + chrf.recall));
  }
  return chrf;
}

}  // namespace qkv::eval
