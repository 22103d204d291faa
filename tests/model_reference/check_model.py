#!/usr/bin/python3
"""The PyTorch half of the whole-model comparison.

1. Training: for several architectures, qkv_model_reference initialises a tiny model, saves it,
   and writes the loss and every gradient on one batch, then the losses of 10 AdamW steps
   (warmup + cosine learning rate, global-norm clipping) and the final parameters. This script
   loads the saved model into an independent PyTorch implementation (plain torch, float32) and
   checks the loss and gradients (<= 1e-5 relative), then replays the 10 steps with
   torch.optim.AdamW and torch.nn.utils.clip_grad_norm_ and checks losses and final parameters
   (<= 1e-4 relative). Grouped-query attention (n_kv_head < n_head, optional head_dim) is
   covered too. Models that are RoPE (half) + RMSNorm + SwiGLU + no bias + pre-norm are saved by
   qkv in Hugging Face's Llama layout (model_type "llama"); those are read by their config's
   model_type and converted to the GPT-2 names used here (grads.safetensors and
   final.safetensors keep GPT-2's layout for every architecture).
2. GPT-2 compatibility: a random model with Hugging Face GPT-2's exact tensor names and layout
   (transformer. prefix, Conv1D weights (in, out), lm_head.weight, the legacy attn.bias and
   attn.masked_bias buffers) and a config.json with only GPT-2's keys, saved in F32, F16 and
   BF16; qkv's logits must match PyTorch's on the same (rounded) weights (<= 1e-5).
3. Bad checkpoints (truncated file, config that disagrees with the tensors, a missing tensor)
   must make qkv fail with status 1 and a message naming the problem, and write nothing.

4. --bf16 (a test of its own): qkv in bfloat16 mixed precision (--precision bf16) against
   torch.autocast("cpu", dtype=torch.bfloat16) on the same weights and batch: the loss within
   1e-2 relative, the gradient (all tensors) with cosine similarity >= 0.999 to PyTorch's bf16
   gradient and >= 0.99 to its float32 one, each tensor's >= 0.99 to both, and the 10 AdamW
   step losses within 1e-2 of PyTorch's autocast
   replay. Exits 77 (skipped) where the CPU has no bfloat16 matrix hardware.

Error measure: max|qkv - torch| / max|torch| over each tensor. Prints a table of the largest
errors; exits 1 on any failure.
"""
import argparse
import json
import math
import os
import pathlib
import shutil
import struct
import subprocess
import sys

import numpy as np
import torch
import torch.nn.functional as F

GRAD_TOLERANCE = 1e-5
STEP_TOLERANCE = 1e-4
LOGITS_TOLERANCE = 1e-5

# The recipe qkv_model_reference runs (model_reference.cc); the replay must use the same one.
STEPS = 10
MAX_LR, MIN_LR, WARMUP, DECAY_STEPS = 1e-2, 1e-3, 2, 10
BETAS, ADAM_EPS, WEIGHT_DECAY, MAX_NORM = (0.9, 0.99), 1e-8, 0.1, 1.0

BASE = {"vocab_size": 11, "n_positions": 8, "n_layer": 2, "n_head": 2, "n_embd": 16}
CONFIGS = {
    "gpt2": dict(BASE, activation_function="gelu_new"),
    "sinusoidal_post_relu": dict(BASE, position_encoding="sinusoidal", norm_placement="post",
                                 ffn="relu", n_inner=24),
    "rope_half_rms_swiglu_nobias": dict(BASE, position_encoding="rope", rope_style="half",
                                        norm="rmsnorm", ffn="swiglu", bias=False, n_inner=20),
    "rope_interleaved_gelu": dict(BASE, position_encoding="rope", rope_style="interleaved",
                                  rope_theta=500.0, ffn="gelu", n_embd=12, n_head=2),
    "alibi_3_heads": dict(BASE, position_encoding="alibi", n_embd=12, n_head=3),
    "none_post_rms_gelu_tanh": dict(BASE, position_encoding="none", norm="rmsnorm",
                                    norm_placement="post", ffn="gelu-tanh",
                                    layer_norm_epsilon=1e-6),
    # Grouped-query attention in qkv's own (GPT-2-like) layout: c_attn is (C, H*D + 2*KV*D).
    "gqa_4_heads_2_kv": dict(BASE, n_head=4, n_kv_head=2, n_embd=16),
    "mqa_rope_head_dim": dict(BASE, position_encoding="rope", n_head=4, n_kv_head=1, head_dim=6,
                              n_embd=16),
    # Saved in the Llama layout, with grouped-query attention and a head_dim of its own.
    "llama_gqa_head_dim": dict(BASE, position_encoding="rope", rope_style="half",
                               norm="rmsnorm", ffn="swiglu", bias=False, n_inner=20, n_head=4,
                               n_kv_head=2, head_dim=8, n_embd=16, rope_theta=500.0),
}

# ---------------------------------------------------------------------------------------------
# safetensors (the safetensors package is not in Debian)

NP_DTYPES = {"F32": np.float32, "F16": np.float16, "I32": np.int32, "U8": np.uint8,
             "BOOL": np.bool_, "F64": np.float64}


def read_safetensors(path):
    data = pathlib.Path(path).read_bytes()
    (header_len,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + header_len])
    header.pop("__metadata__", None)
    base = 8 + header_len
    tensors = {}
    for name, entry in header.items():
        begin, end = entry["data_offsets"]
        raw = data[base + begin:base + end]
        if entry["dtype"] == "BF16":
            bits = np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16
            array = bits.view(np.float32)
        else:
            array = np.frombuffer(raw, dtype=NP_DTYPES[entry["dtype"]])
        tensors[name] = torch.from_numpy(array.reshape(entry["shape"]).copy())
    return tensors


def encode(tensor, dtype):
    """(safetensors dtype name, little-endian bytes) of a torch tensor stored as dtype."""
    if dtype == "BF16":
        bits = tensor.detach().to(torch.bfloat16).view(torch.int16).numpy()
        return "BF16", bits.astype("<i2").tobytes()
    if dtype in ("F32", "F16", "F64"):
        array = tensor.detach().numpy().astype(NP_DTYPES[dtype])
        return dtype, array.astype(array.dtype.newbyteorder("<")).tobytes()
    return dtype, tensor.detach().numpy().astype(NP_DTYPES[dtype]).tobytes()


def write_safetensors(path, tensors, dtypes=None, metadata=None):
    """tensors: {name: torch tensor}; dtypes: {name: dtype} (default F32, I32 for integers)."""
    header, chunks, offset = {}, [], 0
    for name, tensor in tensors.items():
        default = "I32" if not tensor.is_floating_point() else "F32"
        dtype, raw = encode(tensor, (dtypes or {}).get(name, default))
        header[name] = {"dtype": dtype, "shape": list(tensor.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    if metadata:
        header["__metadata__"] = metadata
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)  # the format aligns the data to 8 bytes
    pathlib.Path(path).write_bytes(struct.pack("<Q", len(text)) + text + b"".join(chunks))


# ---------------------------------------------------------------------------------------------
# The model in plain PyTorch, written from the architecture description (not from qkv's code).
# Parameters are a dict keyed by GPT-2 names without the "transformer." prefix, in GPT-2's
# storage layout: Conv1D weights are (in, out), so a projection is x @ W + b.


def config_value(config, key, default):
    value = config.get(key)
    return default if value is None else value


def sinusoidal_table(length, width, dtype):
    position = np.arange(length, dtype=np.float64)[:, None]
    pair = np.arange(0, width, 2, dtype=np.float64)[None, :]
    angle = position / np.power(10000.0, pair / width)
    table = np.zeros((length, width))
    table[:, 0::2] = np.sin(angle)
    table[:, 1::2] = np.cos(angle[:, :width // 2])
    return torch.from_numpy(table).to(dtype)


def rope(x, theta, style):
    """x: (B, H, T, D); rotates pair i by position * theta^(-2i/D)."""
    seq, dim = x.shape[2], x.shape[3]
    frequency = np.power(theta, -np.arange(0, dim // 2, dtype=np.float64) * 2.0 / dim)
    angle = np.arange(seq, dtype=np.float64)[:, None] * frequency[None, :]  # (T, D/2)
    cos = torch.from_numpy(np.cos(angle)).to(x.dtype)
    sin = torch.from_numpy(np.sin(angle)).to(x.dtype)
    if style == "half":
        a, b = x[..., :dim // 2], x[..., dim // 2:]
        return torch.cat([a * cos - b * sin, a * sin + b * cos], dim=-1)
    a, b = x[..., 0::2], x[..., 1::2]
    return torch.stack([a * cos - b * sin, a * sin + b * cos], dim=-1).flatten(-2)


def norm(config, p, name, x):
    eps = config_value(config, "layer_norm_epsilon", 1e-5)
    weight = p[name + ".weight"]
    if config_value(config, "norm", "layernorm") == "rmsnorm":
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight
    return F.layer_norm(x, (x.shape[-1],), weight, p.get(name + ".bias"), eps)


def conv1d(p, name, x):
    y = x @ p[name + ".weight"]
    bias = p.get(name + ".bias")
    return y + bias if bias is not None else y


def head_sizes(config):
    """(query heads H, key/value heads KV, head width D) of a config in qkv's own keys."""
    heads = config["n_head"]
    kv_heads = config_value(config, "n_kv_head", heads)
    dim = config_value(config, "head_dim", config["n_embd"] // heads)
    if heads % kv_heads:
        raise ValueError(f"n_kv_head {kv_heads} does not divide n_head {heads}")
    return heads, kv_heads, dim


def attention(config, p, prefix, x):
    """c_attn's output columns are [q (H*D) | k (KV*D) | v (KV*D)]; query head h reads key/value
    head h // (H / KV)."""
    batch, seq, _ = x.shape
    heads, kv_heads, dim = head_sizes(config)
    qkv = conv1d(p, prefix + "attn.c_attn", x)
    q, k, v = qkv.split([heads * dim, kv_heads * dim, kv_heads * dim], dim=-1)
    q = q.reshape(batch, seq, heads, dim).transpose(1, 2)
    k = k.reshape(batch, seq, kv_heads, dim).transpose(1, 2)
    v = v.reshape(batch, seq, kv_heads, dim).transpose(1, 2)
    if config_value(config, "position_encoding", "learned") == "rope":
        theta = config_value(config, "rope_theta", 10000.0)
        style = config_value(config, "rope_style", "half")
        q, k = rope(q, theta, style), rope(k, theta, style)
    k = k.repeat_interleave(heads // kv_heads, dim=1)
    v = v.repeat_interleave(heads // kv_heads, dim=1)
    scores = (q @ k.transpose(-1, -2)) / math.sqrt(dim)
    if config_value(config, "position_encoding", "learned") == "alibi":
        # Press et al. 2022: head h adds -m_h (i - j); slopes 2^(-8(h+1)/n) for n a power of 2,
        # else those of the nearest lower power of two plus every other slope of twice that.
        def slopes(n):
            if math.log2(n).is_integer():
                return [2 ** (-8 * (h + 1) / n) for h in range(n)]
            low = 2 ** math.floor(math.log2(n))
            return slopes(low) + slopes(2 * low)[0::2][:n - low]
        distance = (torch.arange(seq).unsqueeze(1) - torch.arange(seq).unsqueeze(0)).abs()
        m = torch.tensor(slopes(heads), dtype=scores.dtype).view(1, heads, 1, 1)
        scores = scores - m * distance.to(scores.dtype)
    causal = torch.ones(seq, seq, dtype=torch.bool).tril()
    scores = scores.masked_fill(~causal, float("-inf"))
    out = (scores.softmax(-1) @ v).transpose(1, 2).reshape(batch, seq, heads * dim)
    return conv1d(p, prefix + "attn.c_proj", out)


def feed_forward(config, p, prefix, x):
    kind = config.get("ffn") or {"gelu_new": "gelu-tanh"}.get(
        config.get("activation_function"), config.get("activation_function") or "gelu-tanh")
    hidden = conv1d(p, prefix + "mlp.c_fc", x)
    if kind == "swiglu":
        gate, up = hidden.chunk(2, dim=-1)
        hidden = F.silu(gate) * up
    elif kind == "gelu-tanh":
        hidden = F.gelu(hidden, approximate="tanh")
    elif kind == "gelu":
        hidden = F.gelu(hidden)
    elif kind == "relu":
        hidden = F.relu(hidden)
    else:
        raise ValueError(kind)
    return conv1d(p, prefix + "mlp.c_proj", hidden)


def model_logits(config, p, tokens):
    """tokens: (B, T) int64 -> logits (B*T, V)."""
    seq = tokens.shape[1]
    x = p["wte.weight"][tokens]
    position = config_value(config, "position_encoding", "learned")
    if position == "learned":
        x = x + p["wpe.weight"][:seq]
    elif position == "sinusoidal":
        x = x + sinusoidal_table(seq, x.shape[-1], x.dtype)
    post = config_value(config, "norm_placement", "pre") == "post"
    for layer in range(config["n_layer"]):
        prefix = f"h.{layer}."
        if post:
            x = norm(config, p, prefix + "ln_1", x + attention(config, p, prefix, x))
            x = norm(config, p, prefix + "ln_2", x + feed_forward(config, p, prefix, x))
        else:
            x = x + attention(config, p, prefix, norm(config, p, prefix + "ln_1", x))
            x = x + feed_forward(config, p, prefix, norm(config, p, prefix + "ln_2", x))
    x = norm(config, p, "ln_f", x)
    head = p.get("lm_head.weight", p["wte.weight"])  # an untied Llama head, else tied to wte
    return (x @ head.T).reshape(-1, head.shape[0])


def model_loss(config, p, tokens, targets):
    logits = model_logits(config, p, tokens.long())
    return F.cross_entropy(logits, targets.long().reshape(-1), ignore_index=-100)


# ---------------------------------------------------------------------------------------------


def relative_error(actual, expected):
    actual, expected = actual.double(), expected.double()
    if actual.shape != expected.shape:
        return math.inf
    scale = expected.abs().max().item() if expected.numel() else 0.0
    difference = (actual - expected).abs().max().item() if expected.numel() else 0.0
    return difference / max(scale, 1e-12)


def learning_rate(step):
    """nanoGPT's get_lr, written out again so that qkv's schedule is checked too."""
    if step < WARMUP:
        return MAX_LR * (step + 1) / (WARMUP + 1)
    if step > DECAY_STEPS:
        return MIN_LR
    ratio = (step - WARMUP) / (DECAY_STEPS - WARMUP)
    return MIN_LR + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (MAX_LR - MIN_LR)


class Report:
    def __init__(self):
        self.rows, self.failures = [], []

    def check(self, case, what, error, tolerance, detail=""):
        ok = error <= tolerance
        self.rows.append((case, what, error, tolerance, detail, ok))
        if not ok:
            self.failures.append(f"{case}: {what}: error {error:.3g} > {tolerance:g} {detail}")

    def fail(self, case, what, message):
        self.rows.append((case, what, math.inf, 0.0, message, False))
        self.failures.append(f"{case}: {what}: {message}")

    def print(self):
        print(f"{'case':32} {'check':34} {'max rel error':>13} {'tolerance':>9}  worst tensor")
        for case, what, error, tolerance, detail, ok in self.rows:
            mark = "" if ok else "  <-- FAIL"
            print(f"{case:32} {what:34} {error:13.3e} {tolerance:9.0e}  {detail}{mark}")

    def finish(self):
        """Prints the table and the failures; the exit status (1 on any failure)."""
        self.print()
        if self.failures:
            print(f"\n{len(self.failures)} FAILURES:", file=sys.stderr)
            for failure in self.failures:
                print("  " + failure, file=sys.stderr)
            return 1
        print("\nall checks passed")
        return 0


def strip_prefix(tensors):
    return {name[len("transformer."):] if name.startswith("transformer.") else name: tensor
            for name, tensor in tensors.items()}


# ---------------------------------------------------------------------------------------------
# Model directories: a single model.safetensors or a sharded one (model.safetensors.index.json),
# in GPT-2's layout or in Hugging Face's Llama layout.


def read_checkpoint(directory):
    """Every tensor of a model directory: {name: tensor}."""
    directory = pathlib.Path(directory)
    index_path = directory / "model.safetensors.index.json"
    if not index_path.exists():
        return read_safetensors(directory / "model.safetensors")
    weight_map = json.loads(index_path.read_text())["weight_map"]
    tensors = {}
    for file_name in sorted(set(weight_map.values())):
        shard = read_safetensors(directory / file_name)
        expected = {n for n, f in weight_map.items() if f == file_name}
        if set(shard) != expected:
            raise ValueError(f"{file_name} holds {sorted(shard)}, the index says "
                             f"{sorted(expected)}")
        tensors.update(shard)
    return tensors


def saved_as_llama(config):
    """Whether qkv's SaveModel writes this (qkv-keyed) config in the Llama layout."""
    return (config_value(config, "position_encoding", "learned") == "rope"
            and config_value(config, "rope_style", "half") == "half"
            and config_value(config, "norm", "layernorm") == "rmsnorm"
            and config.get("ffn") == "swiglu"
            and config_value(config, "bias", True) is False
            and config_value(config, "norm_placement", "pre") == "pre")


def llama_config_to_qkv(llama):
    """A LlamaConfig (config.json) in the keys this script's model reads (qkv's own)."""
    heads = llama["num_attention_heads"]
    if llama.get("rope_scaling"):
        raise ValueError(f"rope_scaling {llama['rope_scaling']} is not modelled here")
    return {
        "vocab_size": llama["vocab_size"], "n_positions": llama["max_position_embeddings"],
        "n_layer": llama["num_hidden_layers"], "n_head": heads,
        "n_kv_head": config_value(llama, "num_key_value_heads", heads),
        "head_dim": config_value(llama, "head_dim", llama["hidden_size"] // heads),
        "n_embd": llama["hidden_size"], "n_inner": llama["intermediate_size"],
        "position_encoding": "rope", "rope_style": "half",
        "rope_theta": config_value(llama, "rope_theta", 10000.0),  # LlamaConfig's defaults
        "norm": "rmsnorm", "layer_norm_epsilon": config_value(llama, "rms_norm_eps", 1e-6),
        "ffn": "swiglu", "bias": False,
    }


def llama_to_gpt2(config, tensors):
    """Llama tensor names (nn.Linear, (out, in)) -> the GPT-2 names (Conv1D, (in, out)) this
    script computes with. c_attn = [q; k; v]^T; c_fc = [gate; up]^T, since qkv's SwiGLU takes
    the first half of its up-projection as the gate; lm_head only when untied."""
    tensors = dict(tensors)
    out = {"wte.weight": tensors.pop("model.embed_tokens.weight"),
           "ln_f.weight": tensors.pop("model.norm.weight")}
    for layer in range(config["n_layer"]):
        src, dst = f"model.layers.{layer}.", f"h.{layer}."
        take = lambda name: tensors.pop(src + name)  # noqa: E731
        out[dst + "ln_1.weight"] = take("input_layernorm.weight")
        out[dst + "ln_2.weight"] = take("post_attention_layernorm.weight")
        out[dst + "attn.c_attn.weight"] = torch.cat(
            [take("self_attn.q_proj.weight"), take("self_attn.k_proj.weight"),
             take("self_attn.v_proj.weight")]).T.contiguous()
        out[dst + "attn.c_proj.weight"] = take("self_attn.o_proj.weight").T.contiguous()
        out[dst + "mlp.c_fc.weight"] = torch.cat(
            [take("mlp.gate_proj.weight"), take("mlp.up_proj.weight")]).T.contiguous()
        out[dst + "mlp.c_proj.weight"] = take("mlp.down_proj.weight").T.contiguous()
    if "lm_head.weight" in tensors:
        out["lm_head.weight"] = tensors.pop("lm_head.weight")
    if tensors:
        raise ValueError(f"unexpected tensors {sorted(tensors)}")
    return out


def load_model_dir(directory):
    """(config in qkv's keys, {GPT-2 name: tensor}, config.json as saved)."""
    directory = pathlib.Path(directory)
    saved = json.loads((directory / "config.json").read_text())
    tensors = read_checkpoint(directory)
    if saved.get("model_type") == "llama":
        config = llama_config_to_qkv(saved)
        return config, llama_to_gpt2(config, tensors), saved
    return saved, strip_prefix(tensors), saved


def check_saved_layout(case, config, saved, report):
    """The model directory qkv saved for the (qkv-keyed) input config: the Llama layout exactly
    for RoPE-half + RMSNorm + SwiGLU + no bias + pre-norm, GPT-2's otherwise. Returns False on a
    failure."""
    want_llama = saved_as_llama(config)
    if want_llama != (saved.get("model_type") == "llama"):
        report.fail(case, "saved layout", f"model_type {saved.get('model_type')!r}, want "
                    + ("'llama'" if want_llama else "GPT-2's layout"))
        return False
    heads, kv_heads, dim = head_sizes(config)
    if not want_llama:
        if head_sizes(saved) != (heads, kv_heads, dim):
            report.fail(case, "saved config", f"n_head, n_kv_head, head_dim {head_sizes(saved)},"
                        f" want {(heads, kv_heads, dim)}")
            return False
        return True
    expected = {"num_key_value_heads": kv_heads,
                "num_attention_heads": heads, "hidden_size": config["n_embd"],
                "num_hidden_layers": config["n_layer"], "vocab_size": config["vocab_size"],
                "max_position_embeddings": config["n_positions"], "hidden_act": "silu",
                "rms_norm_eps": config_value(config, "layer_norm_epsilon", 1e-5),
                "rope_theta": config_value(config, "rope_theta", 10000.0),
                "tie_word_embeddings": True, "attention_bias": False, "mlp_bias": False}
    wrong = [f"{key} {saved.get(key)!r} (want {value!r})" for key, value in expected.items()
             if saved.get(key) != value]
    if config_value(saved, "head_dim", saved["hidden_size"] // saved["num_attention_heads"]) != dim:
        wrong.append(f"head_dim {saved.get('head_dim')!r} (want {dim})")
    if saved.get("rope_scaling"):
        wrong.append(f"rope_scaling {saved['rope_scaling']!r} (want null)")
    if wrong:
        report.fail(case, "saved Llama config.json", "; ".join(wrong))
        return False
    report.rows.append((case, "saved as Llama", 0.0, 0.0,
                        f"num_key_value_heads {kv_heads}, head_dim {dim}", True))
    return True


def worst(errors):
    name = max(errors, key=errors.get)
    return errors[name], name


def check_training(runner, work_dir, case, config, report):
    out_dir = work_dir / case
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    config_path = out_dir / "input_config.json"
    config_path.write_text(json.dumps(config))
    result = subprocess.run([runner, "train-reference", str(out_dir), "--config", str(config_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if result.returncode != 0:
        report.fail(case, "train-reference", f"status {result.returncode}: {result.stderr.strip()}")
        return
    try:
        saved_config, initial, saved_json = load_model_dir(out_dir / "model")
    except (KeyError, ValueError) as error:
        report.fail(case, "read saved model", f"{type(error).__name__}: {error}")
        return
    if not check_saved_layout(case, config, saved_json, report):
        return
    qkv_grads = read_safetensors(out_dir / "grads.safetensors")
    batch = read_safetensors(out_dir / "batch.safetensors")
    steps = read_safetensors(out_dir / "steps.safetensors")
    summary = json.loads((out_dir / "losses.json").read_text())
    final = read_safetensors(out_dir / "final.safetensors")
    if set(qkv_grads) != set(initial) or set(final) != set(initial):
        report.fail(case, "tensor names", "grads/final/model files hold different tensors")
        return

    # Loss and gradients on one batch, float32 (and float64 for scale).
    for dtype, label in ((torch.float32, "f32"), (torch.float64, "f64")):
        params = {n: t.to(dtype).clone().requires_grad_(True) for n, t in initial.items()}
        loss = model_loss(saved_config, params, batch["tokens"], batch["targets"])
        loss.backward()
        report.check(case, f"loss vs torch {label}",
                     abs(summary["loss"] - loss.item()) / abs(loss.item()),
                     GRAD_TOLERANCE, f"qkv {summary['loss']:.7f} torch {loss.item():.7f}")
        errors = {n: relative_error(qkv_grads[n], params[n].grad) for n in params}
        error, name = worst(errors)
        report.check(case, f"grads vs torch {label} ({len(errors)})", error, GRAD_TOLERANCE, name)

    # Weight decay on exactly the 2-D tensors (matrices and embeddings), as nanoGPT.
    expected_decayed = sorted(n for n, t in initial.items() if t.dim() == 2)
    if sorted(summary["decayed"]) != expected_decayed:
        report.fail(case, "decayed tensors", f"qkv decays {summary['decayed']}")

    # Replay the 10 steps with torch.optim.AdamW in float32.
    params = {n: t.clone().requires_grad_(True) for n, t in initial.items()}
    decayed = [params[n] for n in expected_decayed]
    others = [t for n, t in params.items() if n not in expected_decayed]
    optimizer = torch.optim.AdamW(
        [{"params": decayed, "weight_decay": WEIGHT_DECAY},
         {"params": others, "weight_decay": 0.0}],
        lr=MAX_LR, betas=BETAS, eps=ADAM_EPS, foreach=False)
    losses, norms = [], []
    for step in range(STEPS):
        lr = learning_rate(step)
        if abs(lr - summary["learning_rates"][step]) > 1e-15:
            report.fail(case, "learning rate", f"step {step}: qkv {summary['learning_rates'][step]}"
                        f" expected {lr}")
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.zero_grad()
        loss = model_loss(saved_config, params, steps["tokens"][step], steps["targets"][step])
        loss.backward()
        norms.append(torch.nn.utils.clip_grad_norm_(list(params.values()), MAX_NORM).item())
        optimizer.step()
        losses.append(loss.item())
    clipped = sum(1 for n in norms if n > MAX_NORM)
    if clipped == 0:
        report.fail(case, "clipping", f"never triggered (norms {norms})")
    step_error = max(abs(a - b) / abs(b) for a, b in zip(summary["losses"], losses))
    report.check(case, "10 AdamW step losses", step_error, STEP_TOLERANCE,
                 f"last qkv {summary['losses'][-1]:.6f} torch {losses[-1]:.6f}")
    norm_error = max(abs(a - b) / abs(b) for a, b in zip(summary["grad_norms"], norms))
    report.check(case, f"grad norms ({clipped}/{STEPS} clipped)", norm_error, STEP_TOLERANCE)
    # Without RoPE the key bias adds q.b_k to every score of a row, which softmax ignores: its
    # gradient is zero in exact arithmetic, so both sides hold only rounding noise (checked to
    # be tiny), which Adam's normalisation turns into steps of +-lr in arbitrary directions.
    # The key bias therefore cannot be compared after training and is left out.
    # With grouped-query attention the key bias of kv head g adds q_h.b_g to every score of each
    # query head h of its group: still constant along a row, so the same holds.
    heads, kv_heads, dim = head_sizes(saved_config)
    key_begin, key_end = heads * dim, (heads + kv_heads) * dim
    key_bias_free = config_value(saved_config, "position_encoding", "learned") != "rope"

    def comparable(name, tensor):
        if key_bias_free and name.endswith("attn.c_attn.bias"):
            return torch.cat([tensor[:key_begin], tensor[key_end:]])
        return tensor

    if key_bias_free and config_value(saved_config, "bias", True):
        noise = max(qkv_grads[n][key_begin:key_end].abs().max().item() /
                    qkv_grads[n].abs().max().item()
                    for n in qkv_grads if n.endswith("attn.c_attn.bias"))
        report.check(case, "key-bias grad / c_attn.bias grad", noise, GRAD_TOLERANCE,
                     "zero but for rounding")
    errors = {n: relative_error(comparable(n, final[n]), comparable(n, params[n].detach()))
              for n in params}
    error, name = worst(errors)
    report.check(case, "final parameters", error, STEP_TOLERANCE,
                 name + (" (key bias left out)" if key_bias_free else ""))


# ---------------------------------------------------------------------------------------------
# GPT-2 checkpoints as Hugging Face writes them.

GPT2_CONFIG = {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "vocab_size": 11,
               "n_positions": 8, "n_ctx": 8, "n_layer": 2, "n_head": 2, "n_embd": 16,
               "n_inner": None, "layer_norm_epsilon": 1e-5, "activation_function": "gelu_new"}


BF16_LOSS_TOLERANCE = 1e-2
BF16_COSINE_TO_BF16, BF16_COSINE_TO_F32 = 0.999, 0.99
# Wider than CONFIGS' so that the products have inner dimensions bf16 rounding averages over.
BF16_CONFIGS = {
    "gpt2": CONFIGS["gpt2"],
    "rope_half_rms_swiglu_nobias": CONFIGS["rope_half_rms_swiglu_nobias"],
    "sinusoidal_post_relu": CONFIGS["sinusoidal_post_relu"],
    "gpt2_width_64": dict(BASE, n_embd=64, n_head=4, n_positions=32, vocab_size=40,
                          activation_function="gelu_new"),
}


def cosine(a, b):
    a, b = a.double().flatten(), b.double().flatten()
    denominator = a.norm() * b.norm()
    return 1.0 if denominator == 0 else (a @ b / denominator).item()


def check_bf16(runner, work_dir, case, config, report):
    """Returns False when the runner says this CPU cannot run bf16."""
    out_dir = work_dir / ("bf16_" + case)
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    config_path = out_dir / "input_config.json"
    config_path.write_text(json.dumps(config))
    result = subprocess.run([runner, "train-reference", str(out_dir), "--config", str(config_path),
                             "--precision", "bf16"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if result.returncode == 77:
        print(result.stderr.strip())
        return False
    if result.returncode != 0:
        report.fail(case, "train-reference bf16", f"status {result.returncode}: "
                    f"{result.stderr.strip()}")
        return True
    saved_config, initial, _ = load_model_dir(out_dir / "model")
    qkv_grads = read_safetensors(out_dir / "grads.safetensors")
    batch = read_safetensors(out_dir / "batch.safetensors")
    steps = read_safetensors(out_dir / "steps.safetensors")
    summary = json.loads((out_dir / "losses.json").read_text())
    if summary.get("precision") != "bf16":
        report.fail(case, "precision", f"the runner reports {summary.get('precision')}")
    torch_grads = {}
    for autocast, label in ((True, "bf16"), (False, "f32")):
        params = {n: t.clone().requires_grad_(True) for n, t in initial.items()}
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            loss = model_loss(saved_config, params, batch["tokens"], batch["targets"])
        loss.float().backward()
        torch_grads[label] = {n: t.grad for n, t in params.items()}
        report.check(case, f"bf16 loss vs torch {label}",
                     abs(summary["loss"] - loss.item()) / abs(loss.item()), BF16_LOSS_TOLERANCE,
                     f"qkv {summary['loss']:.5f} torch {loss.item():.5f}")
    # The key bias's gradient is zero in exact arithmetic without RoPE (check_training says
    # why): only rounding noise on both sides, no direction to agree on.
    heads, kv_heads, dim = head_sizes(saved_config)
    key_bias_free = config_value(saved_config, "position_encoding", "learned") != "rope"

    def comparable(name, tensor):
        if key_bias_free and name.endswith("attn.c_attn.bias"):
            return torch.cat([tensor[:heads * dim], tensor[(heads + kv_heads) * dim:]])
        return tensor

    # The whole gradient (every tensor concatenated) to the bounds; each tensor alone
    # to 0.99 against both (a small tensor behind a ReLU is where bf16 rounding flips signs:
    # PyTorch's own bf16 gradient is no closer to its float32 one there, as the detail shows).
    names = sorted(torch_grads["f32"])

    def whole(grads):
        return torch.cat([comparable(n, grads[n]).flatten() for n in names])

    for label, minimum in (("bf16", BF16_COSINE_TO_BF16), ("f32", BF16_COSINE_TO_F32)):
        report.check(case, f"bf16 grads vs torch {label}: 1 - cosine", 1 - cosine(
            whole(qkv_grads), whole(torch_grads[label])), 1 - minimum, "all tensors")
        cosines = {n: cosine(comparable(n, qkv_grads[n]), comparable(n, torch_grads[label][n]))
                   for n in names}
        name = min(cosines, key=cosines.get)
        torch_own = cosine(comparable(name, torch_grads["bf16"][name]),
                           comparable(name, torch_grads["f32"][name]))
        report.check(case, f"  each tensor vs torch {label}", 1 - cosines[name],
                     1 - BF16_COSINE_TO_F32, f"{name} (torch bf16 vs f32: 1 - {1 - torch_own:.1e})")

    # The 10 steps under autocast with torch.optim.AdamW.
    params = {n: t.clone().requires_grad_(True) for n, t in initial.items()}
    expected_decayed = sorted(n for n, t in initial.items() if t.dim() == 2)
    optimizer = torch.optim.AdamW(
        [{"params": [params[n] for n in expected_decayed], "weight_decay": WEIGHT_DECAY},
         {"params": [t for n, t in params.items() if n not in expected_decayed],
          "weight_decay": 0.0}],
        lr=MAX_LR, betas=BETAS, eps=ADAM_EPS, foreach=False)
    losses = []
    for step in range(STEPS):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step)
        optimizer.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = model_loss(saved_config, params, steps["tokens"][step], steps["targets"][step])
        loss.float().backward()
        torch.nn.utils.clip_grad_norm_(list(params.values()), MAX_NORM)
        optimizer.step()
        losses.append(loss.item())
    step_error = max(abs(a - b) / abs(b) for a, b in zip(summary["losses"], losses))
    report.check(case, "bf16 10 AdamW step losses", step_error, BF16_LOSS_TOLERANCE,
                 f"last qkv {summary['losses'][-1]:.5f} torch {losses[-1]:.5f}")
    return True


def random_gpt2(config, generator):
    """GPT2LMHeadModel's state dict (without buffers): {HF name: float32 tensor}."""
    c, v, n = config["n_embd"], config["vocab_size"], config["n_positions"]
    f = config["n_inner"] or 4 * c

    def normal(*shape, mean=0.0, std=0.2):
        return mean + std * torch.randn(*shape, generator=generator)

    state = {"transformer.wte.weight": normal(v, c), "transformer.wpe.weight": normal(n, c)}
    for layer in range(config["n_layer"]):
        p = f"transformer.h.{layer}."
        state.update({
            p + "ln_1.weight": normal(c, mean=1.0), p + "ln_1.bias": normal(c, std=0.1),
            p + "attn.c_attn.weight": normal(c, 3 * c), p + "attn.c_attn.bias": normal(3 * c),
            p + "attn.c_proj.weight": normal(c, c), p + "attn.c_proj.bias": normal(c),
            p + "ln_2.weight": normal(c, mean=1.0), p + "ln_2.bias": normal(c, std=0.1),
            p + "mlp.c_fc.weight": normal(c, f), p + "mlp.c_fc.bias": normal(f),
            p + "mlp.c_proj.weight": normal(f, c), p + "mlp.c_proj.bias": normal(c),
        })
    state["transformer.ln_f.weight"] = normal(c, mean=1.0)
    state["transformer.ln_f.bias"] = normal(c, std=0.1)
    return state


def write_gpt2_dir(directory, config, state, dtype, prefix=True, mask_dtype=None):
    """A model directory as transformers' save_pretrained would leave it (old checkpoints
    carry the attention-mask buffers and an lm_head.weight equal to wte)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(config, indent=2))
    tensors, dtypes = {}, {}
    n = config["n_positions"]
    for name, tensor in state.items():
        tensors[name if prefix else name[len("transformer."):]] = tensor
    for layer in range(config["n_layer"]):
        p = ("transformer." if prefix else "") + f"h.{layer}.attn."
        tensors[p + "bias"] = torch.ones(n, n).tril().view(1, 1, n, n)
        tensors[p + "masked_bias"] = torch.tensor(-1e4)
        if mask_dtype:
            dtypes[p + "bias"] = mask_dtype
    tensors["lm_head.weight"] = state["transformer.wte.weight"]
    for name in tensors:
        dtypes.setdefault(name, dtype)
    write_safetensors(directory / "model.safetensors", tensors, dtypes, {"format": "pt"})


def rounded(state, dtype):
    """The weights as qkv sees them after converting dtype to float32."""
    torch_dtype = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}[dtype]
    return {n: t.to(torch_dtype).to(torch.float32) for n, t in state.items()}


def run_logits(runner, model_dir, tokens_path, out_path):
    if out_path.exists():
        out_path.unlink()
    return subprocess.run([runner, "logits", str(model_dir), str(tokens_path), str(out_path)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def check_gpt2(runner, work_dir, report):
    root = work_dir / "gpt2_checkpoints"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    generator = torch.Generator().manual_seed(7)
    state = random_gpt2(GPT2_CONFIG, generator)
    tokens = torch.randint(0, GPT2_CONFIG["vocab_size"], (2, GPT2_CONFIG["n_positions"] - 1),
                           generator=generator, dtype=torch.int32)
    tokens_path = root / "tokens.safetensors"
    write_safetensors(tokens_path, {"tokens": tokens})
    cases = [("F32", True, None), ("F16", True, None), ("BF16", False, None)]
    for dtype, prefix, mask_dtype in cases:
        label = f"gpt2 {dtype}" + (" prefix" if prefix else " no prefix")
        model_dir = root / f"model_{dtype}"
        write_gpt2_dir(model_dir, GPT2_CONFIG, state, dtype, prefix, mask_dtype)
        out_path = root / f"logits_{dtype}.safetensors"
        result = run_logits(runner, model_dir, tokens_path, out_path)
        if result.returncode != 0:
            report.fail(label, "logits", f"status {result.returncode}: {result.stderr.strip()}")
            continue
        qkv_logits = read_safetensors(out_path)["logits"]
        weights = strip_prefix(rounded(state, dtype))
        with torch.no_grad():
            expected = model_logits(GPT2_CONFIG, weights, tokens.long())
            expected64 = model_logits(GPT2_CONFIG, {n: t.double() for n, t in weights.items()},
                                      tokens.long())
        report.check(label, "logits vs torch f32", relative_error(qkv_logits, expected),
                     LOGITS_TOLERANCE)
        report.check(label, "logits vs torch f64", relative_error(qkv_logits, expected64),
                     LOGITS_TOLERANCE)
    # Older transformers versions saved the causal-mask buffer as uint8 (later bool). qkv
    # ignores the buffer, whatever its dtype, and must give the same logits.
    for mask_dtype in ("U8", "BOOL"):
        label = f"gpt2 {mask_dtype} mask buffer"
        model_dir = root / f"model_mask_{mask_dtype}"
        write_gpt2_dir(model_dir, GPT2_CONFIG, state, "F32", True, mask_dtype)
        out_path = root / f"logits_mask_{mask_dtype}.safetensors"
        result = run_logits(runner, model_dir, tokens_path, out_path)
        if result.returncode != 0:
            report.fail(label, "logits", f"status {result.returncode}: {result.stderr.strip()}")
            continue
        with torch.no_grad():
            expected = model_logits(GPT2_CONFIG, strip_prefix(rounded(state, "F32")),
                                    tokens.long())
        report.check(label, "logits vs torch f32",
                     relative_error(read_safetensors(out_path)["logits"], expected),
                     LOGITS_TOLERANCE)
    return state, tokens_path


def check_bad_checkpoints(runner, work_dir, state, tokens_path, report):
    root = work_dir / "bad_checkpoints"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)

    def expect_failure(case, model_dir, needles):
        out_path = root / f"{case}_logits.safetensors"
        before = set(os.listdir(root))
        result = run_logits(runner, model_dir, tokens_path, out_path)
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

    truncated = root / "truncated"
    write_gpt2_dir(truncated, GPT2_CONFIG, state, "F32")
    data = (truncated / "model.safetensors").read_bytes()
    (truncated / "model.safetensors").write_bytes(data[:len(data) * 2 // 3])
    expect_failure("truncated model.safetensors", truncated, ["model.safetensors", "truncated"])

    wrong_width = root / "wrong_width"
    write_gpt2_dir(wrong_width, GPT2_CONFIG, state, "F32")
    (wrong_width / "config.json").write_text(json.dumps(dict(GPT2_CONFIG, n_embd=8)))
    expect_failure("config n_embd 8 vs tensors 16", wrong_width, ["wte.weight", "[11, 16]"])

    missing = root / "missing"
    write_gpt2_dir(missing, GPT2_CONFIG,
                   {n: t for n, t in state.items() if n != "transformer.h.1.mlp.c_fc.bias"}, "F32")
    expect_failure("missing h.1.mlp.c_fc.bias", missing, ["h.1.mlp.c_fc.bias", "missing"])


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runner", required=True, help="path of qkv_model_reference")
    parser.add_argument("--work-dir", required=True, help="where the model files go")
    parser.add_argument("--bf16", action="store_true",
                        help="only the bf16 comparison against torch.autocast (exit 77: skipped)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    work_dir = pathlib.Path(args.work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    report = Report()
    if args.bf16:
        for case, config in BF16_CONFIGS.items():
            if not check_bf16(args.runner, work_dir, case, config, report):
                return 77
        return report.finish()
    for case, config in CONFIGS.items():
        check_training(args.runner, work_dir, case, config, report)
    state, tokens_path = check_gpt2(args.runner, work_dir, report)
    check_bad_checkpoints(args.runner, work_dir, state, tokens_path, report)
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
