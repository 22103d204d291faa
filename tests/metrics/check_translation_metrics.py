#!/usr/bin/env python3
"""Checks qkv's corpus BLEU and chrF (src/qkv/eval/translation_metrics.h) against an
independent implementation in this file.

    /usr/bin/python3 tests/metrics/check_translation_metrics.py --runner PATH/metrics_reference \
        [--work-dir DIR]

The reference below is written from sacreBLEU 2.x's definitions (sacrebleu/tokenizers/
tokenizer_13a.py and tokenizer_re.py, sacrebleu/metrics/bleu.py, chrf.py, helpers.py) with
sacreBLEU's defaults: BLEU with 13a tokenization, mixed case, smoothing "exp", no effective
order; chrF with 6 character orders, no word orders, beta 2, whitespace removed, no eps
smoothing. It uses Python's own `re`, `str.split()` and `str.rstrip()`, which are what
sacreBLEU runs on, so the C++ byte loops are compared with the actual regular expressions and
Python's notion of whitespace. The standard library is all it needs (there is no sacrebleu
package here); before comparing, it checks itself against values published in sacreBLEU's own
test suite (test/test_bleu.py, test/test_chrf.py) and against values derived by hand.

It then writes seeded random and adversarial corpora as TSV files (see metrics_reference.cc for
the escaping), runs the C++ runner on each, and requires every count to be equal, every 13a
tokenization to be identical and every real number to agree to 1e-9 (relative above 1).
Exit status 0 when all agree, 1 on the first disagreement (naming the corpus and the field),
2 on a usage error.
"""

import argparse
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
import re

TOLERANCE = 1e-9
BLEU_ORDER = 4
CHRF_ORDER = 6

# --- 13a tokenization -------------------------------------------------------------------------

# mteval-v13a's language-dependent rules, applied in order with re.sub.
_13A_RULES = [
    # every ASCII punctuation mark but . , - and ' (and the space itself)
    (re.compile(r"([\{-\~\[-\` -\&\(-\+\:-\@\/])"), r" \1 "),
    # period or comma unless preceded by a digit
    (re.compile(r"([^0-9])([\.,])"), r"\1 \2 "),
    # period or comma unless followed by a digit
    (re.compile(r"([\.,])([^0-9])"), r" \1 \2"),
    # dash after a digit
    (re.compile(r"([0-9])(-)"), r"\1 \2 "),
]

_ENTITIES = [("&quot;", '"'), ("&amp;", "&"), ("&lt;", "<"), ("&gt;", ">")]


def tokenize_13a(line):
    for old, new in [("<skipped>", ""), ("-\n", ""), ("\n", " ")] + _ENTITIES:
        line = line.replace(old, new)
    line = " " + line + " "
    for pattern, replacement in _13A_RULES:
        line = pattern.sub(replacement, line)
    return " ".join(line.split())


# --- BLEU -------------------------------------------------------------------------------------


def _word_ngrams(tokens, n):
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def bleu_statistics(hypotheses, reference_streams):
    """[hyp_len, ref_len, matches x4, totals x4] summed over the corpus; several reference
    streams are allowed (max clipping count, closest reference length, shorter on ties) only so
    that sacreBLEU's published multi-reference numbers can check this code."""
    hyp_len = ref_len = 0
    matches = [0] * BLEU_ORDER
    totals = [0] * BLEU_ORDER
    for index, hypothesis in enumerate(hypotheses):
        hyp_tokens = tokenize_13a(hypothesis.rstrip()).split()
        ref_tokens = [tokenize_13a(stream[index].rstrip()).split() for stream in reference_streams]
        hyp_len += len(hyp_tokens)
        lengths = sorted(len(r) for r in ref_tokens)
        ref_len += min(lengths, key=lambda length: abs(length - len(hyp_tokens)))
        for n in range(1, BLEU_ORDER + 1):
            hyp_counts = _word_ngrams(hyp_tokens, n)
            best = Counter()
            for tokens in ref_tokens:
                best |= _word_ngrams(tokens, n)  # elementwise max
            totals[n - 1] += sum(hyp_counts.values())
            matches[n - 1] += sum(min(count, best[g]) for g, count in hyp_counts.items())
    return hyp_len, ref_len, matches, totals


def bleu_from_statistics(hyp_len, ref_len, matches, totals):
    if hyp_len >= ref_len:
        bp = 1.0
    elif hyp_len == 0:
        bp = 0.0
    else:
        bp = math.exp(1 - ref_len / hyp_len)
    precisions = [0.0] * BLEU_ORDER
    if sum(matches) == 0:  # sacreBLEU #141: no smoothing rescues a corpus without any match
        return 0.0, precisions, bp
    zero_orders = 0
    for n in range(BLEU_ORDER):
        if totals[n] == 0:
            break
        if matches[n] > 0:
            precisions[n] = 100.0 * matches[n] / totals[n]
        else:
            zero_orders += 1
            precisions[n] = 100.0 / (2.0**zero_orders * totals[n])
    # sacreBLEU's my_log floors log(0) at -9999999999, which sends exp() to exactly 0.
    logs = [math.log(p) if p > 0 else -9999999999 for p in precisions]
    return bp * math.exp(sum(logs) / BLEU_ORDER), precisions, bp


def corpus_bleu(hypotheses, references):
    stats = bleu_statistics(hypotheses, [references])
    score, precisions, bp = bleu_from_statistics(*stats)
    return {"bleu": score, "precisions": precisions, "bp": bp, "hyp_len": stats[0],
            "ref_len": stats[1], "matches": stats[2], "totals": stats[3]}


# --- chrF -------------------------------------------------------------------------------------


def corpus_chrf(hypotheses, references, beta=2):
    hyp_total = [0] * CHRF_ORDER
    ref_total = [0] * CHRF_ORDER
    match_total = [0] * CHRF_ORDER
    for hypothesis, reference in zip(hypotheses, references):
        hyp = "".join(hypothesis.split())
        ref = "".join(reference.split())
        for n in range(1, CHRF_ORDER + 1):
            hyp_counts = Counter(hyp[i:i + n] for i in range(len(hyp) - n + 1))
            ref_counts = Counter(ref[i:i + n] for i in range(len(ref) - n + 1))
            # sacreBLEU counts no hypothesis n-grams of an order the reference lacks.
            if ref_counts:
                hyp_total[n - 1] += sum(hyp_counts.values())
            ref_total[n - 1] += sum(ref_counts.values())
            match_total[n - 1] += sum((hyp_counts & ref_counts).values())
    effective = [n for n in range(CHRF_ORDER) if hyp_total[n] > 0 and ref_total[n] > 0]
    precision = recall = 0.0
    if effective:
        precision = sum(match_total[n] / hyp_total[n] for n in effective) / len(effective)
        recall = sum(match_total[n] / ref_total[n] for n in effective) / len(effective)
    factor = beta**2
    score = 0.0
    if precision + recall:
        score = 100 * ((1 + factor) * precision * recall / (factor * precision + recall))
    return {"chrf": score, "chrf_precision": precision, "chrf_recall": recall,
            "chrf_effective_order": len(effective), "chrf_hyp": hyp_total,
            "chrf_ref": ref_total, "chrf_matches": match_total}


# --- checks of the reference itself -----------------------------------------------------------


def _expect_close(what, got, want, tolerance):
    if abs(got - want) > tolerance:
        sys.exit(f"reference self-check failed: {what}: got {got!r}, expected {want!r}")


def self_check():
    # sacreBLEU test/test_bleu.py: default corpus BLEU with two reference streams, 13a.
    hyps = ["The dog bit the man.", "It wasn't surprising.", "The man had just bitten him."]
    refs = [["The dog bit the man.", "It was not unexpected.", "The man bit him first."],
            ["The dog had bit the man.", "No one was surprised.", "The man had bitten the dog."]]
    score = bleu_from_statistics(*bleu_statistics(hyps, refs))[0]
    _expect_close("sacreBLEU README corpus", score, 48.530827, 1e-6)
    _expect_close("sacreBLEU empty hypotheses",
                  bleu_from_statistics(*bleu_statistics(["", "", ""], refs))[0], 0.0, 0)
    # test_case_statistics (no punctuation, so 13a equals 'none' there)
    stats = bleu_statistics(["am I am a character sequence"],
                            [["I am a symbol string sequence a a"]])
    if stats[2:] != ([4, 2, 1, 0], [6, 5, 4, 3]):
        sys.exit(f"reference self-check failed: sacreBLEU statistics case gave {stats}")
    # test_case_scoring (no zero counts: exp smoothing and none agree)
    _expect_close("sacreBLEU scoring case",
                  bleu_from_statistics(11, 11, [9, 7, 5, 3], [10, 8, 6, 4])[0] / 100,
                  0.8375922397, 1e-8)
    # test/test_chrf.py, eps_smoothing=False (the default), beta=3
    for hyp, ref, want in [(["a"], ["a"], 100.0), ([""], ["reference"], 0.0),
                           (["a b c"], ["a b c"], 100.0), (["a b c"], ["abc"], 100.0),
                           ([""], ["c"], 0.0), (["a", "b"], ["a", "c"], 50.0),
                           (["aa"], ["ab"], 25.0)]:
        _expect_close(f"sacreBLEU chrF case {hyp} {ref}", corpus_chrf(hyp, ref, beta=3)["chrf"],
                      want, 1e-4)
    # Hand-derived, as in src/qkv/eval/translation_metrics_test.cc.
    geo = math.exp((math.log(500 / 6) + math.log(60) + math.log(25) + math.log(100 / 6)) / 4)
    cat = corpus_bleu(["the cat sat on the mat"], ["the cat is on the mat"])
    _expect_close("cat/mat", cat["bleu"], geo, 1e-12)
    _expect_close("brevity", corpus_bleu(["a b c d", "x y"], ["a b c d e", "x y z"])["bleu"],
                  100 * math.exp(-1 / 3), 1e-10)
    _expect_close("chrF sums", corpus_chrf(["abc", "xyz"], ["ab", "xyz"])["chrf"], 96.875, 1e-12)
    _expect_close("chrF niño", corpus_chrf(["niño"], ["nino"])["chrf"], 100 * 13 / 48, 1e-12)
    for line, want in [("It costs 3.14 dollars.", "It costs 3.14 dollars ."),
                       ("1,000 people, 2.5 km.", "1,000 people , 2.5 km ."),
                       ("pages 10-20 well-known", "pages 10 - 20 well-known"),
                       ("&amp;lt; &amp;amp;", "< & amp ;"), ("hyphen-\nated", "hyphenated")]:
        if tokenize_13a(line) != want:
            sys.exit(f"reference self-check failed: 13a({line!r}) = {tokenize_13a(line)!r}")


# --- corpora ----------------------------------------------------------------------------------

WORDS = ("the cat sat on a mat dog bit man it was not surprising El niño comió manzanas café "
         "über canción pingüino piña Straße façade 東京 日本語 😀 👍🏽 don't U.S. e.g. "
         "well-known state-of-the-art 3.14 1,000 10 2-3 1.5-2 .5 5. 50% $5 a/b (x) [y] {z} "
         "\"q\" 'a' -- - ... . , ; : ! ? ¿ ¡ & &amp; &quot; &lt; &gt; &amp;lt; &amp;quot; "
         "<skipped> <b> @user #tag x+y a=b ^ _ ` | ~ \\ AT&T").split(" ")
# Pieces that join words: mostly a space, sometimes nothing, Unicode spaces, or the newline
# forms 13a rewrites.
GLUE = [" "] * 12 + ["", "", "  ", "\t", "\u00a0", "\u3000", "\u2009", "\x1c", "\r", "\n",
                     "-\n", "\u2028", "\x85"]
CHARS = list("abcdeáéñüß ,.-0123456789") + ["😀", "\u00a0"]


def random_line(rng, max_words):
    pieces = []
    for _ in range(rng.randint(0, max_words)):
        if pieces:
            pieces.append(rng.choice(GLUE))
        pieces.append(rng.choice(WORDS))
    line = "".join(pieces)
    if rng.random() < 0.1:
        line = rng.choice(GLUE) + line
    if rng.random() < 0.1:
        line += rng.choice(GLUE)
    return line


def perturb(rng, line):
    """A reference close to the hypothesis, so that high-order n-grams match too."""
    # Per line, either mostly shorter or mostly longer, so both sides of the brevity penalty
    # come up.
    drop, insert = rng.choice([(0.15, 0.03), (0.05, 0.2)])
    out = []
    for word in line.split(" "):
        roll = rng.random()
        if roll < drop:
            continue
        if roll < drop + 0.1:
            out.append(rng.choice(WORDS))
        else:
            out.append(word)
        if rng.random() < insert:
            out.append(rng.choice(WORDS))
    if len(out) > 2 and rng.random() < 0.3:
        i = rng.randrange(len(out) - 1)
        out[i], out[i + 1] = out[i + 1], out[i]
    return " ".join(out)


def random_corpus(rng, lines, max_words, related=0.8):
    corpus = []
    for _ in range(lines):
        hypothesis = random_line(rng, max_words)
        if rng.random() < related:
            reference = perturb(rng, hypothesis)
        else:
            reference = random_line(rng, max_words)
        corpus.append((hypothesis, reference))
    return corpus


def char_corpus(rng, lines, max_chars):
    def line():
        return "".join(rng.choice(CHARS) for _ in range(rng.randint(0, max_chars)))
    return [(line(), line()) for _ in range(lines)]


TRICKY = [
    ("Hello, world!", "Hello world!"),
    ("It costs 3.14 dollars.", "It costs 3,14 dollars."),
    ("1,000 people; 2.5 km.", "1,000 people, 2.5 km"),
    ("costs .5 or 0.5, 5. or 5,", "costs 0.5 or .5"),
    ("U.S.A. e.g., a..b ...", "U.S.A e.g. a . . b"),
    ("pages 10-20, 1.5-2 and x-1", "pages 10 - 20 and x - 1"),
    ("a well-known state-of-the-art fact", "a well known state of the art fact"),
    ("Tom &amp; Jerry &quot;cartoon&quot; &lt;b&gt;", 'Tom & Jerry "cartoon" <b>'),
    ("&amp;lt; &amp;amp; &amp;quot; &AMP; &amp", "< &amp; &quot; & amp"),
    ("a <skipped> b hyphen-\nated two\nlines", "a b hyphenated two lines"),
    ("trailing hyphen-\n", "trailing hyphen"),
    ("trailing -\n\n", "trailing -"),
    # rstrip() takes Unicode spaces too, so the "-\n" stays and is not joined away
    ("end hyphen-\n\u00a0", "end hyphen-"),
    ("end-\n\u3000\u2028", "end"),
    ("el niño, ¿qué? café,bar café.", "el nino, que? cafe, bar cafe."),
    ("Straße façade pingüino piña", "Strasse facade pinguino pina"),
    ("東京は日本の首都です。", "東京は日本の首都である。"),
    ("😀 👍🏽 😀👍", "😀👍🏽 😀 👍"),
    ("a\u00a0b\u3000c\u2009d\x1ce\x85f\u2028g", "a b c d e f g"),
    ("tab\tseparated\tand\rcarriage", "tab separated and carriage"),
    ("back\\slash \\t \\n", "back \\ slash"),
    ("nul\x00byte and \x01 controls \x7f", "nul byte and controls"),
    ("", "nonempty reference"),
    ("nonempty hypothesis", ""),
    ("", ""),
    ("   ", "\t"),
    ("a", "a"),
    ("ab", "abc"),
    ("abc", "ab"),
    ("x", "y"),
    ("(hi) [there] {you} a/b a+b a=b a@b a#b a*b a~b a|b a^b a_b a`b %&$", "(hi) there you"),
    ("$5,000.00! 50% off", "$ 5,000.00 ! 50 % off"),
]


def corpora():
    rng = random.Random(20240513)
    yield "tricky", TRICKY
    for i, (hyp, ref) in enumerate(TRICKY):
        yield f"tricky[{i}] alone", [(hyp, ref)]
    yield "identical", [(h, h) for h, _ in TRICKY if h.strip()]
    yield "disjoint", [("alpha beta gamma delta", "one two three four")] * 3
    yield "all empty hypotheses", [("", r) for _, r in TRICKY]
    yield "no 4-grams", [("a b c", "a b c"), ("d e", "d e")]
    for i in range(12):
        yield f"random short {i}", random_corpus(rng, rng.randint(1, 5), 4)
    for i in range(12):
        yield f"random medium {i}", random_corpus(rng, rng.randint(10, 60), 25)
    yield "random large", random_corpus(rng, 3000, 40)
    yield "random unrelated", random_corpus(rng, 300, 20, related=0.0)
    for i in range(8):
        yield f"characters {i}", char_corpus(rng, rng.randint(1, 40), rng.choice([3, 8, 30]))


# --- comparison -------------------------------------------------------------------------------


def escape(field):
    return (field.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
            .replace("\r", "\\r"))


def expected(corpus):
    hyps = [h for h, _ in corpus]
    refs = [r for _, r in corpus]
    want = corpus_bleu(hyps, refs)
    want.update(corpus_chrf(hyps, refs))
    want["hyp_13a"] = [tokenize_13a(h) for h in hyps]
    want["ref_13a"] = [tokenize_13a(r) for r in refs]
    return want


def differences(got, want):
    for key, value in want.items():
        if key not in got:
            yield f"{key}: missing from the runner's output"
            continue
        actual = got[key]
        pairs = zip(actual, value) if isinstance(value, list) else [(actual, value)]
        if isinstance(value, list) and len(actual) != len(value):
            yield f"{key}: {len(actual)} entries, expected {len(value)}"
            continue
        for i, (a, w) in enumerate(pairs):
            where = f"{key}[{i}]" if isinstance(value, list) else key
            if isinstance(w, float):
                if not abs(a - w) <= TOLERANCE * max(1.0, abs(w)):
                    yield f"{where}: C++ {a!r}, Python {w!r} (difference {a - w:.3g})"
            elif a != w:
                yield f"{where}: C++ {a!r}, Python {w!r}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runner", required=True, help="the metrics_reference binary")
    parser.add_argument("--work-dir", help="where to write the TSV files (default: a temporary "
                        "directory, removed when everything agrees)")
    args = parser.parse_args()
    if not os.access(args.runner, os.X_OK):
        print(f"--runner {args.runner}: not an executable file", file=sys.stderr)
        return 2

    self_check()
    # A temporary directory is removed on success only, so that a failure's TSV can be rerun.
    directory = args.work_dir or tempfile.mkdtemp(prefix="qkv_metrics_")
    os.makedirs(directory, exist_ok=True)
    checked = 0
    for number, (name, corpus) in enumerate(corpora()):
        path = os.path.join(directory, f"corpus_{number:03d}.tsv")
        with open(path, "w", encoding="utf-8", newline="") as file:
            for hyp, ref in corpus:
                file.write(f"{escape(hyp)}\t{escape(ref)}\n")
        run = subprocess.run([args.runner, path], capture_output=True, text=True, encoding="utf-8")
        if run.returncode != 0:
            print(f"FAIL {name} ({path}): runner exited {run.returncode}: {run.stderr.strip()}")
            return 1
        try:
            got = json.loads(run.stdout)
        except json.JSONDecodeError as error:
            print(f"FAIL {name} ({path}): the runner's output is not JSON ({error}): "
                  f"{run.stdout[:300]!r}")
            return 1
        problems = list(differences(got, expected(corpus)))
        if problems:
            print(f"FAIL {name} ({path}, {len(corpus)} lines): C++ and Python disagree:")
            for problem in problems[:20]:
                print(f"  {problem}")
            return 1
        checked += 1
    if not args.work_dir:
        shutil.rmtree(directory)
    print(f"ok: {checked} corpora, C++ and the independent Python reference agree "
          f"(counts and 13a tokens exactly, scores to {TOLERANCE:g})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
