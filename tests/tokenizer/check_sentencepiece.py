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
  * `qkv tokenize --model DIR` prints the same ids, decodes them, and rejects invalid UTF-8;
  * `qkv info`, `qkv eval` and `qkv sample` read a Llama directory whose tokenizer is only its
    tokenizer.model, with an embedding padded past the tokenizer (never sampled).

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


def write_llama_model(model_dir, vocab_size, seed=5):
    """A small random LlamaForCausalLM (Hugging Face's config keys and tensor names) whose
    embedding has vocab_size rows, into model_dir/config.json and model.safetensors."""
    import numpy as np
    hidden, layers, heads, kv_heads, ffn = 32, 2, 4, 2, 64
    head_dim = hidden // heads
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama",
              "hidden_size": hidden, "intermediate_size": ffn, "num_hidden_layers": layers,
              "num_attention_heads": heads, "num_key_value_heads": kv_heads,
              "max_position_embeddings": 64, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
              "vocab_size": vocab_size, "tie_word_embeddings": False, "hidden_act": "silu"}
    rng = np.random.default_rng(seed)
    shapes = {"model.embed_tokens.weight": (vocab_size, hidden), "model.norm.weight": (hidden,),
              "lm_head.weight": (vocab_size, hidden)}
    for i in range(layers):
        p = f"model.layers.{i}."
        shapes.update({p + "input_layernorm.weight": (hidden,),
                       p + "post_attention_layernorm.weight": (hidden,),
                       p + "self_attn.q_proj.weight": (heads * head_dim, hidden),
                       p + "self_attn.k_proj.weight": (kv_heads * head_dim, hidden),
                       p + "self_attn.v_proj.weight": (kv_heads * head_dim, hidden),
                       p + "self_attn.o_proj.weight": (hidden, heads * head_dim),
                       p + "mlp.gate_proj.weight": (ffn, hidden),
                       p + "mlp.up_proj.weight": (ffn, hidden),
                       p + "mlp.down_proj.weight": (hidden, ffn)})
    header, blobs, offset = {}, [], 0
    for name, shape in shapes.items():
        values = (np.ones(shape) if len(shape) == 1 else rng.normal(0, 0.2, shape))
        blob = values.astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(shape),
                        "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    header_bytes = json.dumps(header).encode()
    header_bytes += b" " * ((-len(header_bytes)) % 8)
    with open(os.path.join(model_dir, "model.safetensors"), "wb") as f:
        f.write(len(header_bytes).to_bytes(8, "little") + header_bytes + b"".join(blobs))
    with open(os.path.join(model_dir, "config.json"), "w") as f:
        json.dump(config, f)


def check_model_commands(args, texts):
    """qkv info, eval and sample on a Hugging Face Llama directory whose tokenizer is only its
    tokenizer.model, with an embedding padded past the tokenizer's vocabulary (as Qwen2's)."""
    failures = []
    name, options = MODELS[0][0], MODELS[0][1]
    model_dir = os.path.join(args.work_dir, name + "_llama")
    shutil.copytree(os.path.join(args.work_dir, name), model_dir)
    padding = 7
    write_llama_model(model_dir, options["vocab_size"] + padding)
    result = run([args.cli, "info", "--json", model_dir])
    info = json.loads(result.stdout) if result.returncode == 0 else {}
    if info.get("tokenizer") != {"type": "sentencepiece", "vocab_size": options["vocab_size"]}:
        failures.append(f"qkv info {model_dir}: exit {result.returncode}, tokenizer "
                        f"{info.get('tokenizer')}, {result.stderr.decode(errors='replace')}")
    data_path = os.path.join(args.work_dir, "eval.txt")
    with open(data_path, "w", encoding="utf-8") as f:
        f.write(" ".join(texts) * 3)
    result = run([args.cli, "eval", "--model", model_dir, "--data", data_path, "--json",
                  "--quiet", "--context", "32"])
    if result.returncode != 0 or "loss" not in json.loads(result.stdout or b"{}"):
        failures.append(f"qkv eval on {model_dir} (tokenizer.model only): exit "
                        f"{result.returncode}, {result.stderr.decode(errors='replace')}")
    # Hot sampling reaches every id with about equal chance: a padding row, which no token
    # stands for, would fail to decode (exit 1). An empty prompt starts from BOS.
    for prompt in ["", "Hello"]:
        result = run([args.cli, "sample", "--model", model_dir, "--prompt", prompt, "--tokens",
                      "300", "--temperature", "50", "--seed", "2"])
        if result.returncode != 0:
            failures.append(f"qkv sample --prompt {prompt!r} on a padded vocabulary: exit "
                            f"{result.returncode}, {result.stderr.decode(errors='replace')}")
    return failures


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

    failures += check_model_commands(args, texts)

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
