// Corpus-level translation metrics with sacreBLEU's default settings, so that a number printed
// by qkv can be put next to one printed by `sacrebleu` (2.x) on the same files:
//
//   BLEU: tokenizer 13a, case-sensitive, one reference, smoothing "exp", no effective order
//         (signature nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp).
//   chrF: character order 6, word order 0, beta 2, whitespace ignored, sacreBLEU's own
//         effective-order averaging rather than eps smoothing
//         (signature nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no).
//
// Statistics are summed over all sentences and the score is computed once from the sums, which
// is what "corpus" BLEU and chrF mean; it is not the mean of sentence scores.
//
// Lines are UTF-8 strings. sacreBLEU works on Python str, i.e. on code points, so chrF here
// counts code points and "whitespace" means what Python's str.split() splits on (ASCII
// whitespace, U+001C..U+001F, U+0085, U+00A0, U+1680, U+2000..U+200A, U+2028, U+2029,
// U+202F, U+205F, U+3000). tests/metrics/check_translation_metrics.py holds an independent
// Python implementation that these functions are checked against.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace qkv::eval {

// The largest n-gram order of BLEU-4.
inline constexpr int kBleuMaxOrder = 4;
// chrF's character n-gram orders run 1..kChrfCharOrder.
inline constexpr int kChrfCharOrder = 6;
// chrF's beta: recall weighs beta^2 = 4 times as much as precision.
inline constexpr int kChrfBeta = 2;

// sacreBLEU's "13a" tokenizer (mteval-v13a.pl, as used by WMT): drops "<skipped>", joins lines
// broken after a hyphen ("-\n"), turns other newlines into spaces, unescapes &quot; &amp; &lt; &gt;
// (in that order, so "&amp;lt;" becomes "<"), then splits off punctuation except '.', ',' (split
// only when not between digits: "3.14" and "1,000" stay whole), '-' (split only after a digit:
// "10-20" -> "10 - 20", "well-known" stays) and '\''. Returns the tokens joined by single spaces,
// with no leading or trailing space.
//
// This is the tokenizer alone; CorpusBleu also strips trailing whitespace before calling it, as
// sacreBLEU does. Bytes that are not valid UTF-8 are passed through as non-space characters.
std::string Tokenize13a(std::string_view line);

struct BleuScore {
  // BLEU on sacreBLEU's scale, 0..100: brevity_penalty times the geometric mean of precisions.
  double score = 0;
  // precisions[n - 1]: the (smoothed) n-gram precision in percent, 0..100, for n = 1..4:
  // 100 * matches / totals; when matches is 0 the "exp" smoothing uses 100 / (2^k * totals),
  // k counting the zero-match orders so far. All four are 0 when nothing matched at all, and
  // orders from the first with totals == 0 on are 0 (and the score is then 0).
  std::array<double, kBleuMaxOrder> precisions{};
  // exp(1 - reference_length / hypothesis_length) when the hypotheses are shorter in total, else 1;
  // 0 when every hypothesis is empty.
  double brevity_penalty = 0;
  // Number of 13a tokens in all hypotheses, and in all references.
  int64_t hypothesis_length = 0;
  int64_t reference_length = 0;
  // matches[n - 1]: hypothesis n-grams also in the reference of the same sentence, each counted at
  // most as often as the reference has it (clipped); summed over sentences.
  std::array<int64_t, kBleuMaxOrder> matches{};
  // totals[n - 1]: all hypothesis n-grams, summed over sentences (max(0, length - n + 1) each).
  std::array<int64_t, kBleuMaxOrder> totals{};
};

// Corpus BLEU-4 of hypotheses[i] against references[i]. Throws qkv::Error when the two sizes
// differ, are zero, or a line is not valid UTF-8.
BleuScore CorpusBleu(std::span<const std::string> hypotheses,
                     std::span<const std::string> references);

struct ChrfScore {
  // chrF2 on sacreBLEU's scale, 0..100: the F-beta of precision and recall below.
  double score = 0;
  // Mean over the effective orders of matches / hypothesis_ngrams, and of matches /
  // reference_ngrams; both in 0..1, both 0 when effective_order is 0.
  double precision = 0;
  double recall = 0;
  // How many of the orders 1..6 have hypothesis_ngrams > 0 and reference_ngrams > 0; only those
  // enter the means (corpora of short lines have fewer than 6).
  int effective_order = 0;
  // [n - 1]: character n-grams (whitespace removed) of order n, summed over sentences. A sentence
  // whose reference has no n-grams of order n (fewer than n characters) contributes 0 hypothesis
  // n-grams of that order, as in sacreBLEU.
  std::array<int64_t, kChrfCharOrder> hypothesis_ngrams{};
  std::array<int64_t, kChrfCharOrder> reference_ngrams{};
  // [n - 1]: clipped matches of order n, summed over sentences.
  std::array<int64_t, kChrfCharOrder> matches{};
};

// Corpus chrF of hypotheses[i] against references[i]. Throws qkv::Error when the two sizes differ,
// are zero, or a line is not valid UTF-8.
ChrfScore CorpusChrf(std::span<const std::string> hypotheses,
                     std::span<const std::string> references);

}  // namespace qkv::eval
