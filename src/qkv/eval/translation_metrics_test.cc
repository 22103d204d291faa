#include "qkv/eval/translation_metrics.h"

#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "qkv/core/check.h"

// Every expected value below is derived by hand in the comment beside it. Random and adversarial
// corpora are checked against an independent Python implementation by
// tests/metrics/check_translation_metrics.py.

namespace qkv::eval {
namespace {

using Lines = std::vector<std::string>;

BleuScore Bleu(const Lines& hypotheses, const Lines& references) {
  return CorpusBleu(hypotheses, references);
}

ChrfScore Chrf(const Lines& hypotheses, const Lines& references) {
  return CorpusChrf(hypotheses, references);
}

// The message of the qkv::Error that `call` throws, or "" when it throws none.
template <typename Call>
std::string ErrorMessage(Call call) {
  try {
    call();
  } catch (const Error& error) {
    return error.what();
  }
  return "";
}

// The geometric mean of four percentages: what BLEU is when the brevity penalty is 1.
double GeometricMean(double p1, double p2, double p3, double p4) {
  return std::exp((std::log(p1) + std::log(p2) + std::log(p3) + std::log(p4)) / 4);
}

TEST(Tokenize13aTest, SplitsPunctuationButKeepsNumbersWhole) {
  EXPECT_EQ(Tokenize13a("Hello, world!"), "Hello , world !");
  // A period or comma stays inside a number only when digits stand on both sides.
  EXPECT_EQ(Tokenize13a("It costs 3.14 dollars."), "It costs 3.14 dollars .");
  EXPECT_EQ(Tokenize13a("1,000 people, 2.5 km."), "1,000 people , 2.5 km .");
  EXPECT_EQ(Tokenize13a("3.14."), "3.14 .");
  EXPECT_EQ(Tokenize13a("5, 6"), "5 , 6");
  EXPECT_EQ(Tokenize13a("1,a"), "1 , a");
  // ([^0-9])([\.,]) fires on " ." before any digit is looked at: ".5" splits, "0.5" does not.
  EXPECT_EQ(Tokenize13a("costs .5 or 0.5"), "costs . 5 or 0.5");
  EXPECT_EQ(Tokenize13a("U.S.A."), "U . S . A .");
  // "a..b": rule 2 splits "a." (the second '.' is followed by 'b', not by '.' or ','), then
  // rule 3 splits ".b".
  EXPECT_EQ(Tokenize13a("a..b"), "a . . b");
  EXPECT_EQ(Tokenize13a("$5,000.00!"), "$ 5,000.00 !");
}

TEST(Tokenize13aTest, SplitsHyphensOnlyAfterDigits) {
  EXPECT_EQ(Tokenize13a("a well-known fact"), "a well-known fact");
  EXPECT_EQ(Tokenize13a("pages 10-20"), "pages 10 - 20");
  EXPECT_EQ(Tokenize13a("x-1 and 3-"), "x-1 and 3 -");
  EXPECT_EQ(Tokenize13a("don't stop"), "don't stop");  // the apostrophe is never split
}

TEST(Tokenize13aTest, SplitsEveryOtherAsciiPunctuationMark) {
  EXPECT_EQ(Tokenize13a("(a) [b] {c} d/e f+g h=i j@k l#m n*o p~q r|s t^u v_w x`y z\\0 %&"),
            "( a ) [ b ] { c } d / e f + g h = i j @ k l # m n * o p ~ q r | s t ^ u v _ w x ` "
            "y z \\ 0 % &");
  EXPECT_EQ(Tokenize13a("\"quoted\": yes; <tag>?"), "\" quoted \" : yes ; < tag > ?");
}

TEST(Tokenize13aTest, UnescapesEntitiesInSacrebleuOrder) {
  EXPECT_EQ(Tokenize13a("Tom &amp; Jerry &quot;cartoon&quot; &lt;b&gt;"),
            "Tom & Jerry \" cartoon \" < b >");
  // &amp; is replaced after &quot; and before &lt;, each in a single pass: "&amp;lt;" ->
  // "&lt;" -> "<", but "&amp;quot;" -> "&quot;" (too late for its rule) and "&amp;amp;" ->
  // "&amp;", which then split as '&' "quot" ';' and '&' "amp" ';'.
  EXPECT_EQ(Tokenize13a("&amp;lt;"), "<");
  EXPECT_EQ(Tokenize13a("&amp;quot;"), "& quot ;");
  EXPECT_EQ(Tokenize13a("&amp;amp;"), "& amp ;");
  EXPECT_EQ(Tokenize13a("AT&T"), "AT & T");
}

TEST(Tokenize13aTest, HandlesSkippedMarkersAndNewlines) {
  EXPECT_EQ(Tokenize13a("a <skipped> b"), "a b");
  EXPECT_EQ(Tokenize13a("hyphen-\nated"), "hyphenated");
  EXPECT_EQ(Tokenize13a("two\nlines"), "two lines");
  EXPECT_EQ(Tokenize13a("a -<skipped>\nb"), "a b");  // "<skipped>" goes first, then "-\n"
}

TEST(Tokenize13aTest, CollapsesUnicodeWhitespaceAndKeepsOtherCharacters) {
  EXPECT_EQ(Tokenize13a(""), "");
  EXPECT_EQ(Tokenize13a(" \t \r\n "), "");
  // U+00A0, U+3000, U+2009 and U+001C are whitespace to Python's str.split().
  EXPECT_EQ(Tokenize13a("a\xC2\xA0"
                        "b\xE3\x80\x80"
                        "c\xE2\x80\x89"
                        "d\x1C"
                        "e\tf"),
            "a b c d e f");
  // Non-ASCII letters and marks are never split off; ',' and '?' next to them are.
  EXPECT_EQ(Tokenize13a("el ni\xC3\xB1o, \xC2\xBFqu\xC3\xA9?"),
            "el ni\xC3\xB1o , \xC2\xBFqu\xC3\xA9 ?");
  EXPECT_EQ(Tokenize13a("caf\xC3\xA9,bar caf\xC3\xA9."), "caf\xC3\xA9 , bar caf\xC3\xA9 .");
}

TEST(CorpusBleuTest, OneSentenceByHand) {
  // hyp: the cat sat on the mat    ref: the cat is on the mat    (6 tokens each, BP = 1)
  // 1-grams: the x2, cat, on, mat match                      -> 5/6
  // 2-grams: "the cat", "on the", "the mat" match            -> 3/5
  // 3-grams: "on the mat" matches                            -> 1/4
  // 4-grams: none of 3 match; exp smoothing: 100 / (2 * 3)   -> 16.67%
  const BleuScore bleu = Bleu({"the cat sat on the mat"}, {"the cat is on the mat"});
  EXPECT_EQ(bleu.hypothesis_length, 6);
  EXPECT_EQ(bleu.reference_length, 6);
  EXPECT_EQ(bleu.matches, (std::array<int64_t, 4>{5, 3, 1, 0}));
  EXPECT_EQ(bleu.totals, (std::array<int64_t, 4>{6, 5, 4, 3}));
  EXPECT_DOUBLE_EQ(bleu.precisions[0], 500.0 / 6);
  EXPECT_DOUBLE_EQ(bleu.precisions[1], 60.0);
  EXPECT_DOUBLE_EQ(bleu.precisions[2], 25.0);
  EXPECT_DOUBLE_EQ(bleu.precisions[3], 100.0 / 6);
  EXPECT_DOUBLE_EQ(bleu.brevity_penalty, 1.0);
  // (83.33 * 60 * 25 * 16.67)^(1/4) = 2083333.3^(1/4) = 37.99
  EXPECT_NEAR(bleu.score, GeometricMean(500.0 / 6, 60, 25, 100.0 / 6), 1e-12);
  EXPECT_NEAR(bleu.score, 37.9917, 1e-4);
}

TEST(CorpusBleuTest, SumsStatisticsOverSentencesAndPenalisesBrevity) {
  // hyp 1: a b c d   (ref a b c d e)    hyp 2: x y   (ref x y z)
  // Hypothesis length 4 + 2 = 6, reference length 5 + 3 = 8, BP = exp(1 - 8/6) = exp(-1/3).
  // Every hypothesis n-gram matches: 1-grams 4 + 2 = 6/6, 2-grams 3 + 1 = 4/4, 3-grams
  // 2 + 0 = 2/2, 4-grams 1 + 0 = 1/1. Sentence 2 alone has no 3-grams, but the corpus has: the
  // score is computed from the sums, so it is 100 * exp(-1/3) = 71.65.
  const BleuScore bleu = Bleu({"a b c d", "x y"}, {"a b c d e", "x y z"});
  EXPECT_EQ(bleu.hypothesis_length, 6);
  EXPECT_EQ(bleu.reference_length, 8);
  EXPECT_EQ(bleu.matches, (std::array<int64_t, 4>{6, 4, 2, 1}));
  EXPECT_EQ(bleu.totals, (std::array<int64_t, 4>{6, 4, 2, 1}));
  for (const double p : bleu.precisions) EXPECT_DOUBLE_EQ(p, 100.0);
  EXPECT_DOUBLE_EQ(bleu.brevity_penalty, std::exp(-1.0 / 3));
  EXPECT_NEAR(bleu.score, 100 * std::exp(-1.0 / 3), 1e-10);
}

TEST(CorpusBleuTest, IdenticalCorpusScoresOneHundred) {
  const Lines lines = {"The quick brown fox jumps over the lazy dog.",
                       "El ni\xC3\xB1o comi\xC3\xB3 3.5 manzanas, \xC2\xBFverdad?"};
  const BleuScore bleu = Bleu(lines, lines);
  EXPECT_NEAR(bleu.score, 100.0, 1e-10);
  EXPECT_EQ(bleu.matches, bleu.totals);
  EXPECT_DOUBLE_EQ(bleu.brevity_penalty, 1.0);
}

TEST(CorpusBleuTest, SmoothsEachZeroOrderWithTheNextPowerOfTwo) {
  // hyp: a b c d    ref: a b d c
  // 1-grams 4/4; 2-grams "a b" of {a b, b c, c d} -> 1/3; 3-grams 0/2 -> 100 / (2 * 2) = 25;
  // 4-grams 0/1 -> 100 / (4 * 1) = 25 (the factor doubles at each zero order).
  const BleuScore bleu = Bleu({"a b c d"}, {"a b d c"});
  EXPECT_EQ(bleu.matches, (std::array<int64_t, 4>{4, 1, 0, 0}));
  EXPECT_DOUBLE_EQ(bleu.precisions[1], 100.0 / 3);
  EXPECT_DOUBLE_EQ(bleu.precisions[2], 25.0);
  EXPECT_DOUBLE_EQ(bleu.precisions[3], 25.0);
  EXPECT_NEAR(bleu.score, GeometricMean(100, 100.0 / 3, 25, 25), 1e-12);
}

TEST(CorpusBleuTest, ClipsRepeatedWords) {
  // hyp: the the the the    ref: the cat
  // 1-grams: "the" 4 times in the hypothesis, once in the reference -> 1/4 = 25%
  // 2-grams 0/3 -> 100/(2*3); 3-grams 0/2 -> 100/(4*2); 4-grams 0/1 -> 100/(8*1).
  // BP = 1 (the hypothesis is the longer).
  const BleuScore bleu = Bleu({"the the the the"}, {"the cat"});
  EXPECT_EQ(bleu.matches, (std::array<int64_t, 4>{1, 0, 0, 0}));
  EXPECT_DOUBLE_EQ(bleu.brevity_penalty, 1.0);
  EXPECT_NEAR(bleu.score, GeometricMean(25, 100.0 / 6, 12.5, 12.5), 1e-12);
}

TEST(CorpusBleuTest, NoMatchAtAllGivesZeroPrecisionsEvenSmoothed) {
  const BleuScore bleu = Bleu({"w x y z"}, {"a b c d"});
  EXPECT_EQ(bleu.score, 0.0);
  EXPECT_EQ(bleu.totals, (std::array<int64_t, 4>{4, 3, 2, 1}));
  for (const double p : bleu.precisions) EXPECT_EQ(p, 0.0);
  EXPECT_DOUBLE_EQ(bleu.brevity_penalty, 1.0);
}

TEST(CorpusBleuTest, CorpusWithoutFourGramsScoresZero) {
  // Three and two tokens: every 1- to 3-gram matches, but the corpus has no 4-gram. Without
  // effective order (sacreBLEU's corpus default) the missing order counts as log(0).
  const BleuScore bleu = Bleu({"a b c", "d e"}, {"a b c", "d e"});
  EXPECT_EQ(bleu.totals, (std::array<int64_t, 4>{5, 3, 1, 0}));
  EXPECT_DOUBLE_EQ(bleu.precisions[2], 100.0);
  EXPECT_EQ(bleu.precisions[3], 0.0);
  EXPECT_EQ(bleu.score, 0.0);
}

TEST(CorpusBleuTest, EmptyHypothesesHaveZeroBrevityPenalty) {
  const BleuScore empty = Bleu({""}, {"a b c d"});
  EXPECT_EQ(empty.hypothesis_length, 0);
  EXPECT_EQ(empty.brevity_penalty, 0.0);
  EXPECT_EQ(empty.score, 0.0);
  // An empty line in a corpus only shortens it: hypotheses 4 + 0 tokens, references 4 + 2.
  // All 4 + 3 + 2 + 1 hypothesis n-grams match; BP = exp(1 - 6/4) = exp(-0.5).
  const BleuScore mixed = Bleu({"a b c d", ""}, {"a b c d", "e f"});
  EXPECT_DOUBLE_EQ(mixed.brevity_penalty, std::exp(-0.5));
  EXPECT_NEAR(mixed.score, 100 * std::exp(-0.5), 1e-10);
  EXPECT_EQ(Bleu({""}, {""}).score, 0.0);
}

TEST(CorpusBleuTest, CountsPunctuationTokensAndStripsTrailingSpaceFirst) {
  // hyp tokens: Hello , world !  (4)    ref tokens: Hello world !  (3)
  // 1-grams: Hello, world, ! -> 3/4; 2-grams: "world !" -> 1/3; 3-grams 0/2 -> 100/(2*2);
  // 4-grams 0/1 -> 100/(4*1).
  const BleuScore bleu = Bleu({"Hello, world!"}, {"Hello world!"});
  EXPECT_EQ(bleu.matches, (std::array<int64_t, 4>{3, 1, 0, 0}));
  EXPECT_NEAR(bleu.score, GeometricMean(75, 100.0 / 3, 25, 25), 1e-12);
  // sacreBLEU rstrips each line before 13a, so a trailing "-\n" leaves "d-", a token of its
  // own that does not match "d" (3/4, 2/3, 1/2, 0/1); Tokenize13a alone joins it away.
  EXPECT_EQ(Tokenize13a("a b c d-\n"), "a b c d");
  const BleuScore stripped = Bleu({"a b c d-\n"}, {"a b c d"});
  EXPECT_EQ(stripped.matches, (std::array<int64_t, 4>{3, 2, 1, 0}));
}

TEST(CorpusBleuTest, RejectsMismatchedEmptyAndInvalidCorpora) {
  EXPECT_NE(ErrorMessage([] {
              Bleu({"a", "b"}, {"a"});
            }).find("2 hypotheses but 1 references"),
            std::string::npos);
  EXPECT_NE(ErrorMessage([] { Bleu({}, {}); }).find("the corpus is empty"), std::string::npos);
  EXPECT_NE(ErrorMessage([] {
              Bleu({"ok", "ok"}, {"ok", "bad \xC3"});
            }).find("reference 1 is not valid UTF-8 (byte 4 of 5)"),
            std::string::npos);
}

TEST(CorpusChrfTest, IdenticalAndShortLinesByHand) {
  // hyp = ref = "ab": order 1 {a, b} 2/2, order 2 {ab} 1/1; orders 3-6 have no n-grams and drop
  // out of the averages (effective order 2): precision = recall = 1 -> 100.
  const ChrfScore same = Chrf({"ab"}, {"ab"});
  EXPECT_EQ(same.effective_order, 2);
  EXPECT_DOUBLE_EQ(same.score, 100.0);

  // hyp "abc", ref "abd": order 1: a, b of 3 match (2/3 both ways); order 2: "ab" of {ab, bc}
  // (1/2); order 3: abc vs abd (0/1). Precision = recall = (2/3 + 1/2 + 0) / 3 = 7/18, and the
  // F-beta of equal P and R is that value: 38.89.
  const ChrfScore close = Chrf({"abc"}, {"abd"});
  EXPECT_EQ(close.matches, (std::array<int64_t, 6>{2, 1, 0, 0, 0, 0}));
  EXPECT_EQ(close.hypothesis_ngrams, (std::array<int64_t, 6>{3, 2, 1, 0, 0, 0}));
  EXPECT_EQ(close.effective_order, 3);
  EXPECT_DOUBLE_EQ(close.precision, 7.0 / 18);
  EXPECT_DOUBLE_EQ(close.recall, 7.0 / 18);
  EXPECT_NEAR(close.score, 100 * 7.0 / 18, 1e-12);
}

TEST(CorpusChrfTest, WeighsRecallFourTimesAsMuchAsPrecision) {
  // hyp "ab", ref "abc": order 1: P = 2/2, R = 2/3; order 2: "ab" -> P = 1/1, R = 1/2;
  // order 3: the hypothesis has no 3-gram -> not effective. P = 1, R = (2/3 + 1/2) / 2 = 7/12.
  // F2 = 5PR / (4P + R) = (35/12) / (55/12) = 7/11 = 63.64.
  const ChrfScore chrf = Chrf({"ab"}, {"abc"});
  EXPECT_EQ(chrf.effective_order, 2);
  EXPECT_DOUBLE_EQ(chrf.precision, 1.0);
  EXPECT_DOUBLE_EQ(chrf.recall, 7.0 / 12);
  EXPECT_NEAR(chrf.score, 100 * 7.0 / 11, 1e-12);
}

TEST(CorpusChrfTest, SumsStatisticsAndDropsOrdersTheReferenceLacks) {
  // Sentence 1: hyp "abc", ref "ab". (hyp, ref, match) per order: 1: (3, 2, 2), 2: (2, 1, 1),
  //   3: the reference has no 3-gram, so sacreBLEU counts (0, 0, 0), not (1, 0, 0).
  // Sentence 2: hyp = ref = "xyz": 1: (3, 3, 3), 2: (2, 2, 2), 3: (1, 1, 1).
  // Sums: 1: (6, 5, 5), 2: (4, 3, 3), 3: (1, 1, 1).
  // P = (5/6 + 3/4 + 1) / 3 = 31/36, R = 1; F2 = 5 * 31/36 / (4 * 31/36 + 1) = 155/160.
  const ChrfScore chrf = Chrf({"abc", "xyz"}, {"ab", "xyz"});
  EXPECT_EQ(chrf.hypothesis_ngrams, (std::array<int64_t, 6>{6, 4, 1, 0, 0, 0}));
  EXPECT_EQ(chrf.reference_ngrams, (std::array<int64_t, 6>{5, 3, 1, 0, 0, 0}));
  EXPECT_EQ(chrf.matches, (std::array<int64_t, 6>{5, 3, 1, 0, 0, 0}));
  EXPECT_DOUBLE_EQ(chrf.precision, 31.0 / 36);
  EXPECT_DOUBLE_EQ(chrf.recall, 1.0);
  EXPECT_NEAR(chrf.score, 100 * 155.0 / 160, 1e-12);
}

TEST(CorpusChrfTest, CountsCodePointsNotBytes) {
  // "niño" vs "nino", 4 characters each (5 bytes and 4): order 1: n, i, o match (the
  // reference's second 'n' has no partner) -> 3/4; order 2: "ni" of {ni, iñ, ño} -> 1/3;
  // orders 3 (2 each) and 4 (1 each) match nothing; 5 and 6 do not exist.
  // P = R = (3/4 + 1/3 + 0 + 0) / 4 = 13/48.
  const ChrfScore accents = Chrf({"ni\xC3\xB1o"}, {"nino"});
  EXPECT_EQ(accents.hypothesis_ngrams, (std::array<int64_t, 6>{4, 3, 2, 1, 0, 0}));
  EXPECT_EQ(accents.effective_order, 4);
  EXPECT_NEAR(accents.score, 100 * 13.0 / 48, 1e-12);
  // A 4-byte character is one character too: "😀b" vs "😀a" -> order 1: 1/2, order 2: 0/1;
  // P = R = 1/4.
  const ChrfScore emoji = Chrf({"\xF0\x9F\x98\x80"
                                "b"},
                               {"\xF0\x9F\x98\x80"
                                "a"});
  EXPECT_EQ(emoji.hypothesis_ngrams, (std::array<int64_t, 6>{2, 1, 0, 0, 0, 0}));
  EXPECT_NEAR(emoji.score, 25.0, 1e-12);
  // Spanish with accents against itself.
  const Lines spanish = {
      "\xC2\xBF"
      "D\xC3\xB3nde est\xC3\xA1 la estaci\xC3\xB3n?",
      "El ping\xC3\xBCino come pi\xC3\xB1"
      "a."};
  EXPECT_DOUBLE_EQ(Chrf(spanish, spanish).score, 100.0);
}

TEST(CorpusChrfTest, IgnoresAllWhitespace) {
  // Whitespace, Unicode no-break and ideographic spaces included, is removed before n-grams are
  // cut, so these compare "abc" with "abc".
  EXPECT_DOUBLE_EQ(Chrf({"a b\tc"}, {"abc"}).score, 100.0);
  EXPECT_DOUBLE_EQ(Chrf({"a\xC2\xA0"
                         "b\xE3\x80\x80"
                         "c"},
                        {" abc\n"})
                       .score,
                   100.0);
}

TEST(CorpusChrfTest, EmptyLinesScoreZero) {
  // With no hypothesis characters no order is effective.
  const ChrfScore empty = Chrf({""}, {"abc"});
  EXPECT_EQ(empty.effective_order, 0);
  EXPECT_EQ(empty.reference_ngrams, (std::array<int64_t, 6>{3, 2, 1, 0, 0, 0}));
  EXPECT_EQ(empty.score, 0.0);
  EXPECT_EQ(Chrf({"abc"}, {""}).score, 0.0);
  EXPECT_EQ(Chrf({""}, {""}).score, 0.0);
  EXPECT_EQ(Chrf({"abc"}, {"xyz"}).score, 0.0);  // effective, but nothing matches
}

TEST(CorpusChrfTest, RejectsMismatchedEmptyAndInvalidCorpora) {
  EXPECT_NE(ErrorMessage([] {
              Chrf({"a"}, {"a", "b"});
            }).find("1 hypotheses but 2 references"),
            std::string::npos);
  EXPECT_NE(ErrorMessage([] { Chrf({}, {}); }).find("the corpus is empty"), std::string::npos);
  // An overlong '/' and a lone surrogate are both invalid, as Python would refuse them.
  EXPECT_NE(ErrorMessage([] {
              Chrf({"\xC0\xAF"}, {"a"});
            }).find("hypothesis 0 is not valid UTF-8 (byte 0 of 2)"),
            std::string::npos);
  EXPECT_NE(ErrorMessage([] { Chrf({"a"}, {"x\xED\xA0\x80"}); }).find("reference 0"),
            std::string::npos);
}

}  // namespace
}  // namespace qkv::eval
