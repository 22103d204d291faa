#!/usr/bin/python3
"""Hugging Face MarianMTModel directories in qkv, both ways, against a plain-PyTorch float64
reference.

The reference is written from transformers' semantics (modeling_marian.py and
configuration_marian.py, transformers 4.x; transformers itself is not needed), with its exact
tensor names and config.json keys, and computes in float64 on the weights as stored:

  encoder: x = shared[source] * embed_scale + embed_positions[0..S)   (embed_scale = sqrt(d)
           when scale_embedding, else 1); per layer (post-norm, as MarianEncoderLayer)
             x = self_attn_layer_norm(x + out_proj(attention(x, padded source keys masked)))
             x = final_layer_norm(x + fc2(act(fc1(x))))
  decoder: y = shared[decoder_input] * embed_scale + embed_positions[0..T); per layer
             y = self_attn_layer_norm(y + self_attn(y, causal))
             y = encoder_attn_layer_norm(y + encoder_attn(y, memory x, padded keys masked))
             y = final_layer_norm(y + fc2(act(fc1(y))))
  logits = y shared^T + final_logits_bias                       (lm_head tied to shared)
  attention: q = q_proj(h) * head_dim^-0.5, k = k_proj, v = v_proj per head; masked keys get
  torch.finfo.min added before the softmax; LayerNorm eps 1e-5 (nn.LayerNorm's default).
  embed_positions: MarianSinusoidalPositionalEmbedding's table (angle p / 10000^(2i/d) computed
  in float64, rounded to float32; sines in columns [0, ceil(d/2)), cosines after them), which
  older transformers versions also stored in the file (newer ones leave it out).
qkv's own options (SPEC section 4) extend it: "normalize_before" (x + Sublayer(LayerNorm(x)),
the stacks ending with model.{encoder,decoder}.layer_norm) and "position_encoding" ("learned":
the stored embed_positions tables; "none").

Checks, through qkv_model_reference (--runner):
  marian-logits MODEL_DIR BATCH OUT   a directory written here as transformers writes it
                                      (F32 with and without the sinusoidal tables and tied
                                      copies, F16, BF16, OPUS-MT's ids: eos 0, pad V-1):
                                      max|qkv - ref| / max|ref| <= 1e-5 and the label
                                      cross-entropy (padding ignored) <= 1e-5 relative
  marian-save OUT_DIR --config JSON   a model qkv saves reads here as transformers would: its
                                      config.json keys, exactly MarianMTModel's tensor names
                                      and shapes, its sinusoidal tables equal to Marian's; and
                                      the reference's logits on it equal qkv's
  bad directories                     exit status 1, a message naming the key or tensor, no
                                      output file
Prints a table of the worst errors per case; exits 1 on any failure.
"""
import argparse
import json
import math
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from check_model import (Report, read_safetensors, relative_error,  # noqa: E402
                         write_safetensors)

LOGITS_TOLERANCE = 1e-5
LOSS_TOLERANCE = 1e-5
TABLE_TOLERANCE = 1e-6
BATCH, SOURCE_LEN, TARGET_LEN = 3, 7, 6
LAYER_NORM_EPS = 1e-5


def marian_config(**overrides):
    """config.json as MarianConfig.save_pretrained writes it for an OPUS-MT-like model
    (transformers 4.x keys; eos 0, pad = decoder start = the last id, as OPUS-MT's)."""
    vocab = overrides.get("vocab_size", 19)
    config = {
        "_name_or_path": "", "architectures": ["MarianMTModel"], "model_type": "marian",
        "vocab_size": vocab, "decoder_vocab_size": vocab, "d_model": 16,
        "encoder_layers": 2, "decoder_layers": 2, "encoder_attention_heads": 4,
        "decoder_attention_heads": 4, "encoder_ffn_dim": 24, "decoder_ffn_dim": 24,
        "activation_function": "relu", "max_position_embeddings": 12, "scale_embedding": True,
        "pad_token_id": vocab - 1, "eos_token_id": 0, "decoder_start_token_id": vocab - 1,
        "bos_token_id": 0, "forced_eos_token_id": 0, "bad_words_ids": [[vocab - 1]],
        "share_encoder_decoder_embeddings": True, "is_encoder_decoder": True,
        "static_position_embeddings": True, "normalize_embedding": False,
        "dropout": 0.1, "attention_dropout": 0.0, "activation_dropout": 0.0,
        "classifier_dropout": 0.0, "encoder_layerdrop": 0.0, "decoder_layerdrop": 0.0,
        "init_std": 0.02, "num_hidden_layers": 2, "max_length": 512, "num_beams": 4,
        "use_cache": True, "torch_dtype": "float32", "transformers_version": "4.40.0",
    }
    config.update(overrides)
    config["decoder_vocab_size"] = config["vocab_size"]
    config["num_hidden_layers"] = config["encoder_layers"]
    return config


# ---------------------------------------------------------------------------------------------
# The reference model, float64.


def marian_sinusoidal(positions, dim):
    """MarianSinusoidalPositionalEmbedding's table (positions, dim) as float32: column j of
    XLM's table has angle p / 10000^(2 (j // 2) / dim); the even columns' sines come first,
    then the odd columns' cosines."""
    angle = np.array([[p / np.power(10000, 2 * (j // 2) / dim) for j in range(dim)]
                      for p in range(positions)], dtype=np.float64)
    sines = (dim + 1) // 2
    table = np.empty((positions, dim), dtype=np.float64)
    table[:, :sines] = np.sin(angle[:, 0::2])
    table[:, sines:] = np.cos(angle[:, 1::2])
    return torch.from_numpy(table.astype(np.float32))


ACTIVATIONS = {
    "relu": torch.relu,
    "gelu": F.gelu,
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
    "swish": F.silu,
    "swish": F.silu,
}


def layer_norm(p, name, x):
    return F.layer_norm(x, x.shape[-1:], p[name + ".weight"], p[name + ".bias"], LAYER_NORM_EPS)


def linear(p, name, x):
    return x @ p[name + ".weight"].T + p[name + ".bias"]


def attention(p, prefix, heads, h, memory, key_padding, causal):
    """MarianAttention: h (B, T, d) queries; memory (B, S, d) keys/values (h itself for
    self-attention); key_padding (B, S) True at masked keys, or None."""
    batch, t, d = h.shape
    kv = h if memory is None else memory
    s = kv.shape[1]
    head_dim = d // heads
    q = (linear(p, prefix + ".q_proj", h) * head_dim ** -0.5).view(batch, t, heads, head_dim)
    k = linear(p, prefix + ".k_proj", kv).view(batch, s, heads, head_dim)
    v = linear(p, prefix + ".v_proj", kv).view(batch, s, heads, head_dim)
    scores = q.transpose(1, 2) @ k.transpose(1, 2).transpose(-1, -2)  # (B, H, T, S)
    masked = torch.zeros(batch, 1, t, s, dtype=torch.bool)
    if key_padding is not None:
        masked = masked | key_padding[:, None, None, :]
    if causal:
        masked = masked | torch.ones(t, s, dtype=torch.bool).triu(1)
    scores = scores.masked_fill(masked, torch.finfo(scores.dtype).min)
    out = (scores.softmax(-1) @ v.transpose(1, 2)).transpose(1, 2).reshape(batch, t, d)
    return linear(p, prefix + ".out_proj", out)


def sublayer(config, p, norm_name, x, function):
    if config.get("normalize_before", False):
        return x + function(layer_norm(p, norm_name, x))
    return layer_norm(p, norm_name, x + function(x))


def positions(config, p, stack, length):
    """The position rows added to a stack's embeddings. Sinusoidal: the float32 table
    MarianSinusoidalPositionalEmbedding builds, also when the file stores a copy. (qkv checks a
    stored copy, to the rounding of its dtype, and adds the table it computes; transformers
    would add an F16/BF16 file's rounded copy, which moves these logits by about 1e-4.)"""
    kind = config.get("position_encoding", "sinusoidal")
    if kind == "none":
        return 0.0
    if kind == "sinusoidal":
        return marian_sinusoidal(config["max_position_embeddings"],
                                 config["d_model"])[:length].double()
    return p[f"model.{stack}.embed_positions.weight"][:length]


def marian_logits(config, p, source, decoder_input):
    """source (B, S), decoder_input (B, T) int64 -> logits (B, T, V) float64; p: {HF name:
    float64 tensor}. The encoder's attention_mask is source != pad, as the tokenizer makes it;
    the decoder gets none (transformers' default: causal only)."""
    heads = config["encoder_attention_heads"]
    scale = math.sqrt(config["d_model"]) if config.get("scale_embedding", False) else 1.0
    act = ACTIVATIONS[config["activation_function"]]
    pre_norm = config.get("normalize_before", False)
    padding = source == config["pad_token_id"]
    shared = p["model.shared.weight"]

    x = shared[source] * scale + positions(config, p, "encoder", source.shape[1])
    for layer in range(config["encoder_layers"]):
        n = f"model.encoder.layers.{layer}"
        x = sublayer(config, p, n + ".self_attn_layer_norm", x, lambda h: attention(
            p, n + ".self_attn", heads, h, None, padding, causal=False))
        x = sublayer(config, p, n + ".final_layer_norm", x,
                     lambda h: linear(p, n + ".fc2", act(linear(p, n + ".fc1", h))))
    if pre_norm:
        x = layer_norm(p, "model.encoder.layer_norm", x)

    y = shared[decoder_input] * scale + positions(config, p, "decoder", decoder_input.shape[1])
    for layer in range(config["decoder_layers"]):
        n = f"model.decoder.layers.{layer}"
        y = sublayer(config, p, n + ".self_attn_layer_norm", y, lambda h: attention(
            p, n + ".self_attn", heads, h, None, None, causal=True))
        y = sublayer(config, p, n + ".encoder_attn_layer_norm", y, lambda h: attention(
            p, n + ".encoder_attn", heads, h, x, padding, causal=False))
        y = sublayer(config, p, n + ".final_layer_norm", y,
                     lambda h: linear(p, n + ".fc2", act(linear(p, n + ".fc1", h))))
    if pre_norm:
        y = layer_norm(p, "model.decoder.layer_norm", y)
    return y @ shared.T + p["final_logits_bias"][0]


def label_loss(logits, labels, ignore):
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).double(),
                           labels.reshape(-1).long(), ignore_index=ignore).item()


# ---------------------------------------------------------------------------------------------
# Directories as transformers writes them.


def parameter_shapes(config):
    """{HF name: shape} of every parameter MarianMTModel's state_dict holds once (no tied copies,
    no sinusoidal tables), with qkv's extensions."""
    v, d = config["vocab_size"], config["d_model"]
    f = config["encoder_ffn_dim"]
    shapes = {"model.shared.weight": (v, d), "final_logits_bias": (1, v)}
    if config.get("position_encoding", "sinusoidal") == "learned":
        for stack in ("encoder", "decoder"):
            shapes[f"model.{stack}.embed_positions.weight"] = (config["max_position_embeddings"],
                                                               d)

    def add_linear(name, rows, cols):
        shapes[name + ".weight"], shapes[name + ".bias"] = (rows, cols), (rows,)

    def add_norm(name):
        shapes[name + ".weight"], shapes[name + ".bias"] = (d,), (d,)

    for stack in ("encoder", "decoder"):
        for layer in range(config[f"{stack}_layers"]):
            n = f"model.{stack}.layers.{layer}"
            attentions = ["self_attn"] + (["encoder_attn"] if stack == "decoder" else [])
            for attn in attentions:
                for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
                    add_linear(f"{n}.{attn}.{proj}", d, d)
                add_norm(f"{n}.{attn}_layer_norm")
            add_linear(n + ".fc1", f, d)
            add_linear(n + ".fc2", d, f)
            add_norm(n + ".final_layer_norm")
        if config.get("normalize_before", False):
            add_norm(f"model.{stack}.layer_norm")
    return shapes


def random_marian(config, generator, extras):
    """{HF name: float32 tensor}: std 0.2, norm weights around 1. extras "old": also the
    sinusoidal tables and the tied copies (embed_tokens, lm_head) as transformers 4.x before
    _keys_to_ignore_on_save wrote them; "new": parameters only."""
    state = {}
    for name, shape in parameter_shapes(config).items():
        mean = 1.0 if name.endswith("layer_norm.weight") else 0.0
        std = 0.1 if "layer_norm" in name else 0.2
        state[name] = mean + std * torch.randn(*shape, generator=generator, dtype=torch.float32)
    if extras == "old":
        table = marian_sinusoidal(config["max_position_embeddings"], config["d_model"])
        state["model.encoder.embed_positions.weight"] = table.clone()
        state["model.decoder.embed_positions.weight"] = table.clone()
        for copy in ("model.encoder.embed_tokens.weight", "model.decoder.embed_tokens.weight",
                     "lm_head.weight"):
            state[copy] = state["model.shared.weight"].clone()
    return state


def write_marian_dir(directory, config, state, dtype="F32"):
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    (directory / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    write_safetensors(directory / "model.safetensors", state,
                      dtypes={name: dtype for name in state}, metadata={"format": "pt"})


def padded_batch(config, generator):
    """source: tokens then </s> then pad (row b is b tokens shorter); decoder_input: [pad] +
    target, padded; labels: target + </s>, -100 at padding."""
    pad, eos, vocab = config["pad_token_id"], config["eos_token_id"], config["vocab_size"]
    ordinary = [i for i in range(vocab) if i not in (pad, eos)]

    def draw(count):
        picks = torch.randint(0, len(ordinary), (count,), generator=generator)
        return [ordinary[i] for i in picks.tolist()]

    source = torch.full((BATCH, SOURCE_LEN), pad, dtype=torch.int32)
    decoder_input = torch.full((BATCH, TARGET_LEN), pad, dtype=torch.int32)
    labels = torch.full((BATCH, TARGET_LEN), -100, dtype=torch.int32)
    for b in range(BATCH):
        tokens = draw(SOURCE_LEN - 1 - b)
        source[b, :len(tokens) + 1] = torch.tensor(tokens + [eos])
        target = draw(TARGET_LEN - 1 - b)
        labels[b, :len(target) + 1] = torch.tensor(target + [eos])
        decoder_input[b, :len(target) + 1] = torch.tensor([config["decoder_start_token_id"]] +
                                                          target)
    return source, decoder_input, labels


def run(runner, *args):
    return subprocess.run([str(runner), *map(str, args)], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)


def compare_logits(runner, case, config, model_dir, weights, root, generator, report):
    """qkv's logits on model_dir against the reference's on weights ({name: float64})."""
    source, decoder_input, labels = padded_batch(config, generator)
    batch_path = root / "batch.safetensors"
    write_safetensors(batch_path, {"source": source, "decoder_input": decoder_input})
    out_path = root / "logits.safetensors"
    result = run(runner, "marian-logits", model_dir, batch_path, out_path)
    if result.returncode != 0:
        report.fail(case, "marian-logits", f"status {result.returncode}: {result.stderr.strip()}")
        return
    with torch.no_grad():
        expected = marian_logits(config, weights, source.long(), decoder_input.long())
    logits = read_safetensors(out_path)["logits"]
    vocab = config["vocab_size"]
    if tuple(logits.shape) != (BATCH * TARGET_LEN, vocab):
        report.fail(case, "logits shape",
                    f"{list(logits.shape)}, want {[BATCH * TARGET_LEN, vocab]}")
        return
    logits = logits.view(BATCH, TARGET_LEN, vocab)
    worst_at = (logits.double() - expected).abs().flatten().argmax().item()
    report.check(case, "logits vs torch f64", relative_error(logits, expected),
                 LOGITS_TOLERANCE, f"worst at row {worst_at // (TARGET_LEN * vocab)}, position "
                 f"{worst_at // vocab % TARGET_LEN}, token {worst_at % vocab}")
    qkv_loss, ref_loss = label_loss(logits, labels, -100), label_loss(expected, labels, -100)
    report.check(case, "label cross-entropy", abs(qkv_loss - ref_loss) / ref_loss,
                 LOSS_TOLERANCE, f"qkv {qkv_loss:.8f} torch {ref_loss:.8f}")


# ---------------------------------------------------------------------------------------------
# transformers -> qkv


# name: (config overrides, extras ("old" | "new"), stored dtype)
HF_CASES = {
    "opus_style_relu_tables_and_copies": (dict(), "old", "F32"),
    "newer_transformers_gelu_no_tables": (dict(activation_function="gelu"), "new", "F32"),
    "unscaled_uneven_stacks_gelu_new": (dict(scale_embedding=False, d_model=12,
                                             encoder_attention_heads=3, decoder_attention_heads=3,
                                             encoder_ffn_dim=20, decoder_ffn_dim=20,
                                             encoder_layers=3, decoder_layers=1,
                                             activation_function="gelu_new"), "new", "F32"),
    "f16_with_tables": (dict(), "old", "F16"),
    "bf16_with_tables": (dict(activation_function="gelu"), "old", "BF16"),
    # OPUS-MT's own activation (its Marian configs say "swish", Hugging Face's SiLU).
    "opus_mt_swish": (dict(activation_function="swish"), "old", "F32"),
}


def check_hf_case(runner, work_dir, case, spec, report):
    overrides, extras, dtype = spec
    config = marian_config(**overrides)
    root = work_dir / case
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    generator = torch.Generator().manual_seed(100 + list(HF_CASES).index(case))
    state = random_marian(config, generator, extras)
    model_dir = root / "model"
    write_marian_dir(model_dir, config, state, dtype)
    # The reference computes on what the file holds (rounded to F16/BF16 where stored so).
    weights = {n: t.double() for n, t in read_safetensors(model_dir / "model.safetensors").items()}
    report.rows.append((case, "setup", 0.0, 0.0, f"{dtype}, {len(state)} tensors ({extras})",
                        True))
    compare_logits(runner, case, config, model_dir, weights, root, generator, report)


# ---------------------------------------------------------------------------------------------
# qkv -> transformers

QKV_CASES = {
    "qkv_saved_post_norm_sinusoidal": dict(),
    "qkv_saved_pre_norm_learned_gelu": dict(normalize_before=True, position_encoding="learned",
                                            activation_function="gelu", scale_embedding=False),
}


def check_qkv_case(runner, work_dir, case, overrides, report):
    root = work_dir / case
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    config_path = root / "config.json"
    config_path.write_text(json.dumps(marian_config(**overrides)))
    model_dir = root / "model"
    result = run(runner, "marian-save", model_dir, "--config", config_path)
    if result.returncode != 0:
        report.fail(case, "marian-save", f"status {result.returncode}: {result.stderr.strip()}")
        return
    saved = json.loads((model_dir / "config.json").read_text())
    # What MarianConfig needs to build the same model.
    wanted = {k: v for k, v in marian_config(**overrides).items()
              if k in ("model_type", "architectures", "vocab_size", "d_model", "encoder_layers",
                       "decoder_layers", "encoder_attention_heads", "decoder_attention_heads",
                       "encoder_ffn_dim", "decoder_ffn_dim", "activation_function",
                       "max_position_embeddings", "scale_embedding", "pad_token_id",
                       "eos_token_id", "decoder_start_token_id",
                       "share_encoder_decoder_embeddings", "position_encoding",
                       "normalize_before")}
    wanted.setdefault("position_encoding", "sinusoidal")
    wanted.setdefault("normalize_before", False)
    differing = {k: (saved.get(k), v) for k, v in wanted.items() if saved.get(k) != v}
    if differing:
        report.fail(case, "config.json keys", f"(saved, wanted): {differing}")
    else:
        report.rows.append((case, "config.json keys", 0.0, 0.0, f"{len(wanted)} keys", True))
    config = saved

    tensors = read_safetensors(model_dir / "model.safetensors")
    expected_shapes = parameter_shapes(config)
    sinusoidal = config.get("position_encoding", "sinusoidal") == "sinusoidal"
    tables = ["model.encoder.embed_positions.weight", "model.decoder.embed_positions.weight"]
    if sinusoidal:  # qkv writes the fixed tables too, as transformers 4.x did
        for name in tables:
            expected_shapes[name] = (config["max_position_embeddings"], config["d_model"])
    names = set(tensors)
    if names != set(expected_shapes):
        report.fail(case, "tensor names", f"extra {sorted(names - set(expected_shapes))}, "
                    f"missing {sorted(set(expected_shapes) - names)}")
        return
    wrong = {n: (list(tensors[n].shape), list(s)) for n, s in expected_shapes.items()
             if tuple(tensors[n].shape) != s}
    if wrong:
        report.fail(case, "tensor shapes", f"(saved, wanted): {wrong}")
        return
    report.rows.append((case, "tensor names and shapes", 0.0, 0.0,
                        f"{len(names)} tensors, MarianMTModel's", True))
    if sinusoidal:
        reference = marian_sinusoidal(config["max_position_embeddings"], config["d_model"])
        error = max((tensors[n].double() - reference.double()).abs().max().item()
                    for n in tables)
        report.check(case, "embed_positions == Marian's table", error, TABLE_TOLERANCE)
    weights = {n: t.double() for n, t in tensors.items()}
    generator = torch.Generator().manual_seed(3)
    compare_logits(runner, case, config, model_dir, weights, root, generator, report)


# ---------------------------------------------------------------------------------------------


def check_bad_directories(runner, work_dir, report):
    root = work_dir / "bad_directories"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    generator = torch.Generator().manual_seed(5)
    base = marian_config()
    source, decoder_input, _ = padded_batch(base, generator)
    batch_path = root / "batch.safetensors"
    write_safetensors(batch_path, {"source": source, "decoder_input": decoder_input})

    def expect_failure(case, config, state, needles):
        model_dir = root / case.replace(" ", "_")
        write_marian_dir(model_dir, config, state)
        out_path = root / "out.safetensors"
        before = set(os.listdir(root))
        result = run(runner, "marian-logits", model_dir, batch_path, out_path)
        message = result.stderr.strip()
        leftovers = set(os.listdir(root)) - before
        if result.returncode != 1:
            report.fail(case, "exit status", f"{result.returncode} (want 1): {message}")
        elif leftovers:
            report.fail(case, "no output", f"left {sorted(leftovers)}")
        elif not all(needle in message for needle in needles):
            report.fail(case, "message", f"{message!r} does not name {needles}")
        else:
            report.rows.append((case, "fails cleanly", 0.0, 0.0, message, True))

    state = random_marian(base, generator, "old")
    expect_failure("an activation qkv lacks", marian_config(activation_function="mish"),
                   state, ["activation_function", "mish"])
    expect_failure("decoder heads differ", marian_config(decoder_attention_heads=2), state,
                   ["decoder_attention_heads"])
    expect_failure("unshared embeddings",
                   marian_config(share_encoder_decoder_embeddings=False), state,
                   ["share_encoder_decoder_embeddings"])
    untied = dict(state)
    untied["lm_head.weight"] = state["lm_head.weight"] + 0.5
    expect_failure("lm_head differs from shared", base, untied, ["lm_head.weight"])
    missing = "model.encoder.layers.1.self_attn.v_proj.bias"
    expect_failure("missing v_proj.bias", base,
                   {n: t for n, t in state.items() if n != missing}, [missing])
    shifted = dict(state)
    shifted["model.decoder.embed_positions.weight"] = marian_sinusoidal(13, 16)[1:]
    expect_failure("decoder table starts at position 1", base, shifted,
                   ["model.decoder.embed_positions.weight", "sinusoidal"])
    bad_shape = dict(state)
    bad_shape["model.decoder.layers.0.fc1.weight"] = state["model.decoder.layers.0.fc1.weight"].T
    expect_failure("fc1 transposed", base, bad_shape,
                   ["model.decoder.layers.0.fc1.weight", "[16, 24]"])


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runner", required=True, help="path of qkv_model_reference")
    parser.add_argument("--work-dir", required=True, help="where the model files go")
    args = parser.parse_args()
    torch.set_num_threads(1)
    work_dir = pathlib.Path(args.work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    report = Report()
    # The table against its definition in SPEC section 4: column c < d/2 the sine, d/2 + c the
    # cosine of p / 10000^(2c/d).
    table = marian_sinusoidal(9, 6).double()
    p, c = torch.arange(9, dtype=torch.float64)[:, None], torch.arange(3, dtype=torch.float64)
    angle = p / 10000 ** (2 * c / 6)
    report.check("oracle", "Marian table == SPEC's formula",
                 (table - torch.cat([angle.sin(), angle.cos()], dim=1)).abs().max().item(), 1e-7)
    for case, spec in HF_CASES.items():
        check_hf_case(args.runner, work_dir, case, spec, report)
    for case, overrides in QKV_CASES.items():
        check_qkv_case(args.runner, work_dir, case, overrides, report)
    check_bad_directories(args.runner, work_dir, report)
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
