#!/usr/bin/python3
"""qkv's SentencePiece tokenizer (a model directory's tokenizer.model) against the sentencepiece
Python module (Debian's python3-sentencepiece).

Trains small models with spm.SentencePieceTrainer (BPE and unigram, byte fallback, vocabularies
of 400-600) on text written here, into model directories the way Hugging Face lays them out
(config.json without a qkv "tokenizer" entry, tokenizer.model, sometimes tokenizer_config.json),
and requires for a varied corpus (ASCII, accents, CJK, emoji through byte fallback, whitespace
runs, newlines, the empty string, random mixtures):
  * qkv's ids == [BOS] + sp.encode(text) (+ [EOS] where tokenizer_config.json asks for it);
  * qkv's Decode == sp.decode, and == the text itself for the models that do not normalise;
  * the concatenated TokenBytes == " " + text (the dummy prefix) for those models;
  * Save + load gives the same ids; special-token text with allow_special;
  * `qkv tokenize --model DIR` prints the same ids, decodes them, and rejects invalid UTF-8.

Usage: check_sentencepiece.py --runner qkv_tokenizer_reference --cli qkv --work-dir DIR
                              [--shakespeare FILE]
Exit status 0 all agree, 1 a difference, 77 (ctest's "skipped") without the sentencepiece module.
"""

import argparse
import json
import os
import random
import shutil
import subprocess
import sys

SKIPPED = 77

try:
    import sentencepiece as spm
except ImportError:
    print("SKIPPED: the sentencepiece Python module is missing; run scripts/setup.sh "
          "(Debian: python3-sentencepiece)")
    sys.exit(SKIPPED)

MULTILINGUAL = [
    "Héllo wörld, naïve café — façade, Ångström, Œuvre, señor, crème brûlée.",
    "日本語のテキストです。東京は大きい都市です。中文字符，你好世界。",
    "Ελληνικά κείμενα, русский текст, עברית, العربية, हिन्दी.",
    "Numbers: 3.14159, 2,718, 1234567890, 42nd street, 007.",
]


def training_text(shakespeare):
    rng = random.Random(7)
    parts = []
    if shakespeare and os.path.exists(shakespeare):
        with open(shakespeare, encoding="utf-8") as f:
            parts.append(f.read()[:300_000])
    words = ("the cat sat on the mat and then they went home while it was raining "
             "I'm sure you're right we can't won't shouldn't").split()
    # Made-up words too, so that the vocabularies fill up without tinyshakespeare.
    syllables = "ka lo mi ne ru sa te vo pi da ge fu zo ba re ti mo".split()
    words += ["".join(rng.choice(syllables) for _ in range(rng.randint(1, 4)))
              for _ in range(1500)]
    for _ in range(3000):
        parts.append(" ".join(rng.choice(words) for _ in range(rng.randint(3, 12))))
    parts.extend(MULTILINGUAL * 30)
    return "\n".join(parts) + "\n"


def corpus():
    texts = [
        "", "Hello world", "hello world.", " leading space", "trailing space ", "   ", "\n",
        "\n\n\n", "a  b   c    d", "tabs\tand\t\ttabs", "line one\nline two\r\nline three\n",
        "  indented\n    more\n", "I'm sure you're right: we can't, WON'T, I'LL.",
        "café naïve Ångström façade", "日本語のテキスト", "中文字符，你好世界。", "한국어 텍스트",
        "I \u2764\ufe0f \U0001f355 and \U0001f469\u200d\U0001f469\u200d\U0001f467 family!! "
        "\U0001f1fa\U0001f1f8 \U0001f600\U0001f44d\U0001f3fd",
        "e\u0301 a\u0308 n\u0303 (combining)", "12345678901234567890 3.14159 -42 +7 1,000,000",
        "\u00a0nbsp\u3000ideographic\u2009thin", "nul\x00here \x01\x1f\x7f end",
        "x" * 300, "!!!???...,,,;;; ((([[[{{{", "<s> and </s> as plain text",
        "# code\ndef f(x):\n    return x ** 2  # square\n", "\U0001d400\U0001d401 \U00010348",
        "\u2028\u2029 separators",
    ]
    texts.extend(MULTILINGUAL)
    pools = [
        list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,;:!?'\"-()"),
        [" ", " ", " ", "  ", "\t", "\n", "\r\n", "\u00a0", "\u3000"],
        list("éèüñßÅœćłž"), list("日本語中文字한국어αβжыאاक"),
        ["\U0001f600", "\U0001f44d", "\u2764", "\U0001f3fd", "\u200d", "\U0001f1fa", "\u20ac", "\u2014"],
        list("0123456789"), ["'s", "'t", "'re", "'ll", "'D", "'VE"],
    ]
    rng = random.Random(20240501)
    for _ in range(200):
        texts.append("".join(rng.choice(rng.choice(pools)) for _ in range(rng.randint(1, 80))))
    return texts


# name, trainer options, tokenizer_config.json (None: none), whether the model normalises
MODELS = [
    ("bpe_llama_like", dict(model_type="bpe", vocab_size=600, normalization_rule_name="identity",
                            remove_extra_whitespaces=False, split_digits=True,
                            allow_whitespace_only_pieces=True), None, False),
    ("unigram_identity", dict(model_type="unigram", vocab_size=500,
                              normalization_rule_name="identity", remove_extra_whitespaces=False,
                              user_defined_symbols=["<sep>"]),
     {"add_bos_token": False, "add_eos_token": True}, False),
    ("unigram_nfkc", dict(model_type="unigram", vocab_size=400), {"add_bos_token": True}, True),
]


def run(command, **kwargs):
    return subprocess.run(command, capture_output=True, check=False, **kwargs)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runner", required=True)
    parser.add_argument("--cli", required=True)
    parser.add_argument("--work-dir", required=True)
    parser.add_argument("--shakespeare", default="")
    args = parser.parse_args()

    shutil.rmtree(args.work_dir, ignore_errors=True)
    os.makedirs(args.work_dir)
    train_path = os.path.join(args.work_dir, "train.txt")
    with open(train_path, "w", encoding="utf-8") as f:
        f.write(training_text(args.shakespeare))
    texts = corpus()
    input_path = os.path.join(args.work_dir, "texts.json")
    with open(input_path, "w", encoding="utf-8") as f:
        json.dump(texts, f)

    failures = []
    checked = 0
    for name, options, tokenizer_config, normalises in MODELS:
        model_dir = os.path.join(args.work_dir, name)
        os.makedirs(model_dir)
        spm.SentencePieceTrainer.train(
            input=train_path, model_prefix=os.path.join(model_dir, "tokenizer"),
            byte_fallback=True, minloglevel=2, num_threads=1, **options)
        os.remove(os.path.join(model_dir, "tokenizer.vocab"))
        with open(os.path.join(model_dir, "config.json"), "w") as f:
            json.dump({"model_type": "llama", "vocab_size": options["vocab_size"]}, f)
        if tokenizer_config is not None:
            with open(os.path.join(model_dir, "tokenizer_config.json"), "w") as f:
                json.dump(dict(tokenizer_config, tokenizer_class="LlamaTokenizer"), f)
        add_bos = (tokenizer_config or {}).get("add_bos_token", True)
        add_eos = (tokenizer_config or {}).get("add_eos_token", False)
        sp = spm.SentencePieceProcessor(model_file=os.path.join(model_dir, "tokenizer.model"))

        def expected_ids(text):
            return (([sp.bos_id()] if add_bos else []) + sp.encode(text) +
                    ([sp.eos_id()] if add_eos else []))

        output_path = os.path.join(args.work_dir, name + "_qkv.json")
        result = run([args.runner, "--model", model_dir, "--input", input_path, "--output",
                      output_path, "--save-dir", model_dir + "_saved"])
        if result.returncode != 0:
            failures.append(f"{name}: the runner failed: {result.stderr.decode(errors='replace')}")
            continue
        with open(output_path, encoding="utf-8") as f:
            qkv = json.load(f)
        if qkv["name"] != "sentencepiece" or qkv["vocab_size"] != sp.get_piece_size():
            failures.append(f"{name}: loaded as {qkv['name']} with {qkv['vocab_size']} tokens, "
                            f"expected sentencepiece with {sp.get_piece_size()}")
        for i, text in enumerate(texts):
            want = expected_ids(text)
            got = qkv["ids"][i]
            checked += 1
            if got != want:
                first = next((k for k in range(min(len(got), len(want))) if got[k] != want[k]),
                             min(len(got), len(want)))
                failures.append(
                    f"{name}: text {i} {text[:60]!r}: ids differ at {first}: qkv "
                    f"{got[first:first + 6]} ({[sp.id_to_piece(t) for t in got[first:first + 6]]}), "
                    f"sentencepiece {want[first:first + 6]} "
                    f"({[sp.id_to_piece(t) for t in want[first:first + 6]]})")
                continue
            if qkv["decoded"][i] != sp.decode(sp.encode(text)):
                failures.append(f"{name}: text {i} {text[:60]!r}: qkv decodes to "
                                f"{qkv['decoded'][i][:60]!r}, sentencepiece to "
                                f"{sp.decode(sp.encode(text))[:60]!r}")
            if not normalises:
                if qkv["decoded"][i] != text:
                    failures.append(f"{name}: text {i} {text[:60]!r} does not round-trip: "
                                    f"{qkv['decoded'][i][:60]!r}")
                stream = bytes.fromhex(qkv["token_bytes"][i])
                if stream != ((" " + text).encode() if text else b""):
                    failures.append(f"{name}: text {i} {text[:60]!r}: TokenBytes give "
                                    f"{stream[:60]!r}")
        saved = qkv.get("saved", {})
        expected_entry = {"type": "sentencepiece", "file": "tokenizer.model", "add_bos": add_bos,
                          "add_eos": add_eos}
        if saved.get("entry") != expected_entry or not saved.get("same_ids"):
            failures.append(f"{name}: save and load: {saved}, expected entry {expected_entry}")

        # Control-token text becomes those ids with allow_special; the parts between are
        # encoded one by one (LlamaTokenizer).
        special_text = "Hello<s>world</s> again"
        special_input = os.path.join(args.work_dir, name + "_special.json")
        with open(special_input, "w") as f:
            json.dump([special_text], f)
        special_output = os.path.join(args.work_dir, name + "_special_qkv.json")
        result = run([args.runner, "--model", model_dir, "--input", special_input, "--output",
                      special_output, "--allow-special"])
        with open(special_output, encoding="utf-8") as f:
            got = json.load(f)["ids"][0] if result.returncode == 0 else None
        want = (([sp.bos_id()] if add_bos else []) + sp.encode("Hello") + [sp.bos_id()] +
                sp.encode("world") + [sp.eos_id()] + sp.encode(" again") +
                ([sp.eos_id()] if add_eos else []))
        if got != want:
            failures.append(f"{name}: allow_special on {special_text!r}: qkv {got}, expected {want}")

        # The command line on the same directory.
        for text in ["Hello world, café 日本 \U0001f600", ""]:
            result = run([args.cli, "tokenize", "--model", model_dir], input=text.encode())
            want = " ".join(map(str, expected_ids(text)))
            if result.returncode != 0 or result.stdout.decode().strip() != want:
                failures.append(f"{name}: qkv tokenize on {text!r}: exit {result.returncode}, "
                                f"{result.stdout.decode()!r} {result.stderr.decode()!r}, "
                                f"expected {want!r}")
            result = run([args.cli, "tokenize", "--model", model_dir, "--decode"],
                         input=want.encode())
            if result.returncode != 0 or result.stdout.decode() != sp.decode(sp.encode(text)):
                failures.append(f"{name}: qkv tokenize --decode of {want!r}: exit "
                                f"{result.returncode}, {result.stdout!r} {result.stderr!r}")
        result = run([args.cli, "tokenize", "--model", model_dir], input=b"bad \xff byte")
        if result.returncode != 1 or b"not valid UTF-8 at byte 4" not in result.stderr:
            failures.append(f"{name}: qkv tokenize on invalid UTF-8: exit {result.returncode}, "
                            f"{result.stderr!r}")

    for failure in failures[:30]:
        print("FAILED:", failure)
    if failures:
        print(f"{len(failures)} failures")
        return 1
    print(f"OK: {len(MODELS)} SentencePiece models, {checked} encodings identical to the "
          "sentencepiece module's")
    return 0


if __name__ == "__main__":
    sys.exit(main())
