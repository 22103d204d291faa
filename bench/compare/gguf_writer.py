#!/usr/bin/python3
"""Writes a Hugging Face LlamaForCausalLM directory (config.json, model.safetensors or a sharded
index, as qkv saves Llama-shaped models) as a GGUF file for llama.cpp, with F32 or F16 weights.

    gguf_writer.py MODEL_DIR OUT.gguf [--dtype f32|f16]

Written for bench/compare/llamacpp.sh from the published GGUF format (ggml's docs/gguf.md,
version 3) and llama.cpp's names for the "llama" architecture. What it has to get right:
  - dimensions are listed fastest-varying first: a PyTorch (out, in) matrix is [in, out];
  - llama.cpp's "llama" RoPE rotates adjacent pairs (2j, 2j+1) of each head while Hugging Face
    rotates (j, j + D/2) (rotate_half), so the rows of q_proj and k_proj are reordered per head;
  - norms stay F32 (llama.cpp reads them as F32 whatever the file type);
  - a vocabulary must be present: a SentencePiece-style one of placeholder pieces (<unk>, <s>,
    </s>, the 256 byte pieces, then "▁t<i>"), since the benchmark hands token ids to llama.cpp.
Exits 1 with a message naming the problem for a directory it cannot convert.
"""
import argparse
import json
import os
import struct
import sys

import numpy as np

ALIGNMENT = 32
GGML_F32, GGML_F16 = 0, 1
# gguf_metadata_value_type
U32, I32, F32, BOOL, STRING, ARRAY = 4, 5, 6, 7, 8, 9
# llama.cpp's token types
TOKEN_NORMAL, TOKEN_UNKNOWN, TOKEN_CONTROL, TOKEN_BYTE = 1, 2, 3, 6
SAFETENSORS_DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64}


def fail(message):
    print(f"gguf_writer: {message}", file=sys.stderr)
    sys.exit(1)


def read_safetensors(path):
    """name -> numpy array of one .safetensors file (F32/F16/F64)."""
    with open(path, "rb") as f:
        header_size = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(header_size))
        data = f.read()
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if entry["dtype"] not in SAFETENSORS_DTYPES:
            fail(f"{path}: tensor {name} has dtype {entry['dtype']}; F32, F16 or F64 expected")
        begin, end = entry["data_offsets"]
        tensors[name] = np.frombuffer(data[begin:end], dtype=SAFETENSORS_DTYPES[entry["dtype"]]
                                      ).reshape(entry["shape"]).astype(np.float32)
    return tensors


def read_model(model_dir):
    config_path = os.path.join(model_dir, "config.json")
    if not os.path.isfile(config_path):
        fail(f"{model_dir}: no config.json")
    config = json.load(open(config_path))
    if config.get("model_type") != "llama":
        fail(f"{config_path}: model_type is {config.get('model_type')!r}; 'llama' expected")
    if config.get("rope_scaling") not in (None, {}):
        fail(f"{config_path}: rope_scaling {config['rope_scaling']} is not written by this writer")
    index_path = os.path.join(model_dir, "model.safetensors.index.json")
    tensors = {}
    if os.path.isfile(index_path):
        for shard in sorted(set(json.load(open(index_path))["weight_map"].values())):
            tensors.update(read_safetensors(os.path.join(model_dir, shard)))
    else:
        tensors = read_safetensors(os.path.join(model_dir, "model.safetensors"))
    return config, tensors


def rows_to_adjacent_pairs(weight, heads):
    """(heads*D, C) rows in rotate_half order -> rows in adjacent-pair order, per head."""
    rows, columns = weight.shape
    head_dim = rows // heads
    return (weight.reshape(heads, 2, head_dim // 2, columns).swapaxes(1, 2)
            .reshape(rows, columns))


def gguf_tensors(config, tensors, dtype):
    heads = config["num_attention_heads"]
    kv_heads = config.get("num_key_value_heads", heads)
    matrix_type = GGML_F16 if dtype == "f16" else GGML_F32

    def take(name):
        if name not in tensors:
            fail(f"the model has no tensor {name}")
        return tensors[name]

    out = [("token_embd.weight", take("model.embed_tokens.weight"), matrix_type)]
    for i in range(config["num_hidden_layers"]):
        hf, blk = f"model.layers.{i}.", f"blk.{i}."
        out += [
            (blk + "attn_norm.weight", take(hf + "input_layernorm.weight"), GGML_F32),
            (blk + "attn_q.weight",
             rows_to_adjacent_pairs(take(hf + "self_attn.q_proj.weight"), heads), matrix_type),
            (blk + "attn_k.weight",
             rows_to_adjacent_pairs(take(hf + "self_attn.k_proj.weight"), kv_heads), matrix_type),
            (blk + "attn_v.weight", take(hf + "self_attn.v_proj.weight"), matrix_type),
            (blk + "attn_output.weight", take(hf + "self_attn.o_proj.weight"), matrix_type),
            (blk + "ffn_norm.weight", take(hf + "post_attention_layernorm.weight"), GGML_F32),
            (blk + "ffn_gate.weight", take(hf + "mlp.gate_proj.weight"), matrix_type),
            (blk + "ffn_up.weight", take(hf + "mlp.up_proj.weight"), matrix_type),
            (blk + "ffn_down.weight", take(hf + "mlp.down_proj.weight"), matrix_type),
        ]
    out.append(("output_norm.weight", take("model.norm.weight"), GGML_F32))
    if "lm_head.weight" in tensors:
        out.append(("output.weight", tensors["lm_head.weight"], matrix_type))
    elif not config.get("tie_word_embeddings", False):
        fail("the model has no lm_head.weight and tie_word_embeddings is false")
    return out


def placeholder_vocabulary(vocab_size):
    if vocab_size < 259:
        fail(f"vocab_size {vocab_size} < 259: no room for <unk>, <s>, </s> and 256 byte pieces")
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    types = [TOKEN_UNKNOWN, TOKEN_CONTROL, TOKEN_CONTROL] + [TOKEN_BYTE] * 256
    tokens += [f"\u2581t{i}" for i in range(len(tokens), vocab_size)]
    types += [TOKEN_NORMAL] * (vocab_size - len(types))
    scores = [0.0] * 3 + [0.0] * 256 + [-float(i) for i in range(vocab_size - 259)]
    return tokens, scores, types


class Writer:
    def __init__(self):
        self.parts = []

    def raw(self, fmt, *values):
        self.parts.append(struct.pack("<" + fmt, *values))

    def string(self, text):
        data = text.encode("utf-8")
        self.raw("Q", len(data))
        self.parts.append(data)

    def value(self, kind, value):
        if kind == U32:
            self.raw("I", value)
        elif kind == I32:
            self.raw("i", value)
        elif kind == F32:
            self.raw("f", value)
        elif kind == BOOL:
            self.raw("B", 1 if value else 0)
        elif kind == STRING:
            self.string(value)
        else:
            raise ValueError(kind)

    def key_value(self, key, kind, value, element_kind=None):
        self.string(key)
        self.raw("I", kind)
        if kind == ARRAY:
            self.raw("IQ", element_kind, len(value))
            for element in value:
                self.value(element_kind, element)
        else:
            self.value(kind, value)

    def bytes(self):
        return b"".join(self.parts)


def padding(size):
    return (-size) % ALIGNMENT


def write_gguf(config, tensors, dtype, out_path):
    heads = config["num_attention_heads"]
    hidden = config["hidden_size"]
    head_dim = config.get("head_dim") or hidden // heads
    vocab = config["vocab_size"]
    tokens, scores, types = placeholder_vocabulary(vocab)
    metadata = [
        ("general.architecture", STRING, "llama"),
        ("general.name", STRING, "qkv benchmark model"),
        ("general.file_type", U32, 1 if dtype == "f16" else 0),
        ("general.alignment", U32, ALIGNMENT),
        ("llama.context_length", U32, config["max_position_embeddings"]),
        ("llama.embedding_length", U32, hidden),
        ("llama.block_count", U32, config["num_hidden_layers"]),
        ("llama.feed_forward_length", U32, config["intermediate_size"]),
        ("llama.attention.head_count", U32, heads),
        ("llama.attention.head_count_kv", U32, config.get("num_key_value_heads", heads)),
        ("llama.attention.key_length", U32, head_dim),
        ("llama.attention.value_length", U32, head_dim),
        ("llama.attention.layer_norm_rms_epsilon", F32, config["rms_norm_eps"]),
        ("llama.rope.freq_base", F32, config.get("rope_theta", 10000.0)),
        ("llama.rope.dimension_count", U32, head_dim),
        ("llama.vocab_size", U32, vocab),
        ("tokenizer.ggml.model", STRING, "llama"),
        ("tokenizer.ggml.tokens", ARRAY, tokens, STRING),
        ("tokenizer.ggml.scores", ARRAY, scores, F32),
        ("tokenizer.ggml.token_type", ARRAY, types, I32),
        ("tokenizer.ggml.unknown_token_id", U32, 0),
        ("tokenizer.ggml.bos_token_id", U32, 1),
        ("tokenizer.ggml.eos_token_id", U32, 2),
        ("tokenizer.ggml.add_bos_token", BOOL, False),
    ]
    entries = gguf_tensors(config, tensors, dtype)
    header = Writer()
    header.raw("4sIQQ", b"GGUF", 3, len(entries), len(metadata))
    for item in metadata:
        header.key_value(*item)
    blobs, offset = [], 0
    for name, array, kind in entries:
        data = np.ascontiguousarray(array, dtype=np.float16 if kind == GGML_F16 else np.float32)
        header.string(name)
        header.raw("I", data.ndim)
        for dim in reversed(data.shape):  # fastest-varying first
            header.raw("Q", dim)
        header.raw("IQ", kind, offset)
        blob = data.tobytes()
        blobs.append(blob + b"\0" * padding(len(blob)))
        offset += len(blobs[-1])
    head = header.bytes()
    temporary = out_path + ".partial"
    with open(temporary, "wb") as f:
        f.write(head + b"\0" * padding(len(head)))
        for blob in blobs:
            f.write(blob)
    os.replace(temporary, out_path)  # never a half-written file under the final name


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir")
    parser.add_argument("out")
    parser.add_argument("--dtype", choices=["f32", "f16"], default="f32")
    args = parser.parse_args()
    config, tensors = read_model(args.model_dir)
    write_gguf(config, tensors, args.dtype, args.out)
    print(f"gguf_writer: wrote {args.out} ({args.dtype})", file=sys.stderr)


if __name__ == "__main__":
    main()
