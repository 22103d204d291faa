#!/usr/bin/env python3
"""Writes the seed corpus of every fuzz harness into tests/fuzz/corpus/<harness>/.

The seeds are small valid inputs of each format (and a few near misses), so that libFuzzer
starts from the structures the readers accept instead of discovering JSON and safetensors
from nothing. Deterministic; rerun after changing it and commit the result.
"""
import json
import os
import struct
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def write(harness, name, data):
    directory = os.path.join(ROOT, harness)
    os.makedirs(directory, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    with open(os.path.join(directory, name), "wb") as out:
        out.write(data)


def safetensors(tensors, metadata=None):
    """tensors: list of (name, dtype, shape, raw bytes), laid out in order."""
    header, blob = {}, b""
    if metadata:
        header["__metadata__"] = metadata
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [len(blob), len(blob) + len(raw)]}
        blob += raw
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - (8 + len(text)) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + blob


def floats(values):
    return struct.pack(f"<{len(values)}f", *values)


def safetensors_seeds():
    write("safetensors", "f32_two", safetensors(
        [("wte.weight", "F32", [2, 3], floats([0.5, -1, 2, 3, 4, 5])),
         ("ln_f.bias", "F32", [3], floats([0, 0.25, 1]))], {"format": "pt"}))
    write("safetensors", "f16_bf16", safetensors(
        [("a", "F16", [2], struct.pack("<2H", 0x3C00, 0x8001)),
         ("b", "BF16", [1, 2], struct.pack("<2H", 0x3F80, 0x7F80))]))
    write("safetensors", "i32_opaque", safetensors(
        [("ids", "I32", [3], struct.pack("<3i", 1, -2, 3)),
         ("h.0.attn.bias", "U8", [1, 1, 2, 2], b"\x01\x00\x01\x01"),
         ("steps", "I64", [1], struct.pack("<q", 7))]))
    write("safetensors", "scalar_and_empty", safetensors(
        [("s", "F32", [], floats([1.5])), ("e", "F32", [0, 4], b"")]))
    write("safetensors", "empty_header", safetensors([]))


TINY = {"model_type": "gpt2", "vocab_size": 7, "n_positions": 6, "n_ctx": 6, "n_layer": 2,
        "n_head": 2, "n_embd": 8, "n_inner": 12, "layer_norm_epsilon": 1e-5,
        "activation_function": "gelu_new", "resid_pdrop": 0.0, "embd_pdrop": 0.0,
        "attn_pdrop": 0.0, "tie_word_embeddings": True, "position_encoding": "learned",
        "norm": "layernorm", "norm_placement": "pre", "ffn": "gelu-tanh", "bias": True}


def model_config_seeds():
    write("model_config", "tiny", json.dumps(TINY, indent=2))
    write("model_config", "gpt2_hf", json.dumps(
        {"n_layer": 12, "n_head": 12, "n_embd": 768, "n_positions": 1024, "vocab_size": 50257,
         "layer_norm_epsilon": 1e-5, "activation_function": "gelu_new", "n_inner": None}))
    write("model_config", "rope_yarn", json.dumps(dict(
        TINY, position_encoding="rope", rope_theta=500.0, rope_style="interleaved",
        rope_scaling={"rope_type": "yarn", "factor": 4.0,
                      "original_max_position_embeddings": 6})))
    write("model_config", "swiglu_rms_post", json.dumps(dict(
        TINY, norm="rmsnorm", ffn="swiglu", bias=False, norm_placement="post",
        position_encoding="alibi")))
    write("model_config", "huge_positions", json.dumps(dict(TINY, n_positions=10**12)))


def char_entry(text):
    return {"type": "char", "characters": sorted(set(text))}


def tokenizer_config_seeds():
    write("tokenizer_config", "char", json.dumps(
        dict(TINY, tokenizer=char_entry("\nhello, world! ÄÖ 東京"))))
    write("tokenizer_config", "byte", json.dumps({"tokenizer": {"type": "byte"}}))
    write("tokenizer_config", "bpe", json.dumps(
        {"tokenizer": {"type": "bpe", "vocab_file": "vocab.json", "merges_file": "merges.txt"}}))
    write("tokenizer_config", "char_bad", json.dumps(
        {"tokenizer": {"type": "char", "characters": ["ab", "a"]}}))


def bytes_to_unicode():
    printable = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
                 + list(range(ord("®"), ord("ÿ") + 1)))
    chars, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            chars[byte] = chr(byte)
        else:
            chars[byte] = chr(256 + extra)
            extra += 1
    order = printable + [b for b in range(256) if b not in printable]
    return chars, order


def bpe_seeds():
    chars, order = bytes_to_unicode()
    tokens = [chars[b] for b in order]
    merges = [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("i", "n"), ("Ġ", "a")]
    for left, right in merges:
        tokens.append(left + right)
    tokens.append("<|endoftext|>")
    vocab = json.dumps({token: i for i, token in enumerate(tokens)}, ensure_ascii=False)
    merges_text = "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges)
    write("bpe_files", "gpt2_like", vocab + "\0" + merges_text)
    write("bpe_files", "bytes_only", json.dumps({chars[b]: i for i, b in enumerate(order)},
                                                ensure_ascii=False) + "\0#version: 0.2\n")
    write("bpe_files", "bad_merge", vocab + "\0#version: 0.2\nx y\n")


def text_seeds():
    write("text_roundtrip", "ascii", "The quick brown fox jumps over the lazy dog.\n")
    write("text_roundtrip", "contractions", "I'm sure they've said it's 'quoted' we'll see\n")
    write("text_roundtrip", "unicode", "naïve café 東京 🦊 \u00a0\u2028 x\u0301\n\n  \t end")
    write("text_roundtrip", "invalid_utf8", b"ok \xff\xfe bad \xc3( \xed\xa0\x80 \xf4\x90\x80\x80")
    write("text_roundtrip", "special", "<|endoftext|>hello<|endoftext|>")
    write("text_roundtrip", "whitespace", "   \n\n\n \t \r\n x  ")


def main():
    safetensors_seeds()
    model_config_seeds()
    tokenizer_config_seeds()
    bpe_seeds()
    text_seeds()
    print(f"corpus written under {ROOT}", file=sys.stderr)


if __name__ == "__main__":
    main()
