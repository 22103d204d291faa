#!/usr/bin/python3
"""The encoder-decoder model (qkv's model/encoder_decoder.h) against plain PyTorch.

qkv_model_reference encoder-decoder writes random parameters under qkv's names, a batch of
padded pairs, the loss and every gradient; this script rebuilds the model in PyTorch from the
architecture description of ../shared/SPEC.md section 4 (Marian / MarianMTModel semantics:
embeddings times sqrt(d_model) plus sinusoidal positions in Marian's sines-then-cosines layout,
post-norm or pre-norm sublayers, the encoder's padded keys masked, the decoder causal with
cross-attention to the encoder output, logits = h . shared^T + final_logits_bias), in float64,
and compares the loss (relative 1e-5) and every gradient (relative to the tensor's largest
entry, 1e-4).

Usage: check_encoder_decoder.py --runner PATH --work-dir DIR
"""
import argparse
import json
import math
import pathlib
import subprocess
import sys

import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from check_model import read_safetensors  # noqa: E402  (the format reader, no model code)

BASE = dict(vocab_size=23, d_model=8, heads=2, ffn_dim=12, encoder_layers=2, decoder_layers=2,
            max_positions=16, position="sinusoidal", norm_placement="post", ffn="relu",
            scale_embedding=True, source_len=6, target_len=5)
CASES = {
    "marian_post_norm": BASE,
    "pre_norm_gelu": dict(BASE, norm_placement="pre", ffn="gelu"),
    "post_norm_silu": dict(BASE, ffn="silu"),
    "learned_positions": dict(BASE, position="learned", scale_embedding=False),
    "no_positions_one_layer": dict(BASE, position="none", encoder_layers=1, decoder_layers=1),
    # PyTorch's own label smoothing (F.cross_entropy's label_smoothing) is the reference.
    "label_smoothing": dict(BASE, label_smoothing=0.1),
}
PAD, IGNORE = 0, -100


def marian_sinusoidal(length, width):
    table = torch.zeros(length, width, dtype=torch.float64)
    sines = (width + 1) // 2
    for p in range(length):
        for i in range(sines):
            table[p, i] = math.sin(p / 10000 ** (2 * i / width))
        for i in range(width - sines):
            table[p, sines + i] = math.cos(p / 10000 ** (2 * i / width))
    return table


def layer_norm(p, prefix, x):
    return torch.nn.functional.layer_norm(x, x.shape[-1:], p[prefix + "weight"],
                                          p[prefix + "bias"], 1e-5)


def attention(p, prefix, x, memory, heads, key_padding, causal):
    """Multi-head attention; memory None means self-attention with qkv's fused projection."""
    b, t, c = x.shape
    d = c // heads
    if memory is None:
        qkv = x @ p[prefix + "qkv.weight"].T + p[prefix + "qkv.bias"]
        q, k, v = qkv.split(c, dim=-1)
    else:
        q = x @ p[prefix + "q.weight"].T + p[prefix + "q.bias"]
        kv = memory @ p[prefix + "kv.weight"].T + p[prefix + "kv.bias"]
        k, v = kv.split(c, dim=-1)
    s = k.shape[1]
    q = q.view(b, t, heads, d).transpose(1, 2) * d ** -0.5
    k = k.view(b, s, heads, d).transpose(1, 2)
    v = v.view(b, s, heads, d).transpose(1, 2)
    scores = q @ k.transpose(-1, -2)
    if key_padding is not None:
        scores = scores.masked_fill(key_padding[:, None, None, :], float("-inf"))
    if causal:
        future = torch.triu(torch.ones(t, s, dtype=torch.bool), diagonal=1)
        scores = scores.masked_fill(future, float("-inf"))
    out = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, t, c)
    return out @ p[prefix + "out.weight"].T + p[prefix + "out.bias"]


def feed_forward(config, p, prefix, x):
    hidden = x @ p[prefix + "up.weight"].T + p[prefix + "up.bias"]
    if config["ffn"] == "relu":
        hidden = torch.relu(hidden)
    elif config["ffn"] == "gelu":
        hidden = torch.nn.functional.gelu(hidden)
    elif config["ffn"] == "silu":
        hidden = torch.nn.functional.silu(hidden)
    else:
        raise ValueError(config["ffn"])
    return hidden @ p[prefix + "down.weight"].T + p[prefix + "down.bias"]


def sublayer(config, p, norm_prefix, x, function):
    if config["norm_placement"] == "pre":
        return x + function(layer_norm(p, norm_prefix, x))
    return layer_norm(p, norm_prefix, x + function(x))


def embed(config, p, ids, stack):
    x = p["shared"][ids]
    if config["scale_embedding"]:
        x = x * math.sqrt(config["d_model"])
    t = ids.shape[1]
    if config["position"] == "sinusoidal":
        x = x + marian_sinusoidal(t, config["d_model"])
    elif config["position"] == "learned":
        x = x + p[stack + ".positions"][:t]
    return x


def loss_of(config, p, source, decoder_input, labels):
    heads = config["heads"]
    padding = source == PAD
    x = embed(config, p, source, "encoder")
    for layer in range(config["encoder_layers"]):
        prefix = f"encoder.blocks.{layer}."
        x = sublayer(config, p, prefix + "norm1.", x, lambda h: attention(
            p, prefix + "attention.", h, None, heads, padding, causal=False))
        x = sublayer(config, p, prefix + "norm2.", x,
                     lambda h: feed_forward(config, p, prefix + "ffn.", h))
    if config["norm_placement"] == "pre":
        x = layer_norm(p, "encoder.norm.", x)
    memory = x
    y = embed(config, p, decoder_input, "decoder")
    for layer in range(config["decoder_layers"]):
        prefix = f"decoder.blocks.{layer}."
        y = sublayer(config, p, prefix + "norm1.", y, lambda h: attention(
            p, prefix + "attention.", h, None, heads, None, causal=True))
        y = sublayer(config, p, prefix + "cross_norm.", y, lambda h: attention(
            p, prefix + "cross_attention.", h, memory, heads, padding, causal=False))
        y = sublayer(config, p, prefix + "norm2.", y,
                     lambda h: feed_forward(config, p, prefix + "ffn.", h))
    if config["norm_placement"] == "pre":
        y = layer_norm(p, "decoder.norm.", y)
    logits = y @ p["shared"].T + p["final_logits_bias"]
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                             labels.reshape(-1).long(), ignore_index=IGNORE,
                                             label_smoothing=config.get("label_smoothing", 0.0))


def check_case(runner, work_dir, name, config):
    case_dir = work_dir / name
    case_dir.mkdir(parents=True, exist_ok=True)
    config_path = case_dir / "config.json"
    config_path.write_text(json.dumps(config))
    subprocess.run([runner, "encoder-decoder", str(case_dir), "--config", str(config_path)],
                   check=True)
    params = {k: v.double().requires_grad_() for k, v in
              read_safetensors(case_dir / "params.safetensors").items()}
    grads = read_safetensors(case_dir / "grads.safetensors")
    batch = read_safetensors(case_dir / "batch.safetensors")
    qkv_loss = json.loads((case_dir / "loss.json").read_text())["loss"]
    loss = loss_of(config, params, batch["source"].long(), batch["decoder_input"].long(),
                   batch["labels"])
    loss.backward()
    failures = []
    loss_error = abs(qkv_loss - loss.item()) / abs(loss.item())
    if loss_error > 1e-5:
        failures.append(f"loss {qkv_loss} vs PyTorch {loss.item()} (relative {loss_error:.2e})")
    worst = 0.0
    for key, value in params.items():
        expected = value.grad
        scale = expected.abs().max().item()
        if scale == 0:
            failures.append(f"{key}: PyTorch's gradient is all zeros (the case tests nothing)")
            continue
        error = (grads[key].double() - expected).abs().max().item() / scale
        worst = max(worst, error)
        if error > 1e-4:
            failures.append(f"{key}: gradient relative error {error:.2e}")
    print(f"{name}: loss {qkv_loss:.6f} (PyTorch {loss.item():.6f}), {len(params)} gradients, "
          f"worst relative error {worst:.2e}")
    return failures


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runner", required=True)
    parser.add_argument("--work-dir", required=True, type=pathlib.Path)
    args = parser.parse_args()
    failures = []
    for name, config in CASES.items():
        failures += [f"{name}: {failure}" for failure in check_case(args.runner, args.work_dir,
                                                                    name, config)]
    for failure in failures:
        print("FAIL", failure, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
