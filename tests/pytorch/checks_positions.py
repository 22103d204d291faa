"""PyTorch references for the position encodings:

- ops/sinusoidal: PE[p, 2i] = sin(p / 10000^(2i/d)), PE[p, 2i+1] = cos(same), in float64.
- ops/position_add: x[b, t] + table[start + t], with the table's gradient from autograd.
- ops/rope: written from the definition in src/qkv/ops/rope.h. Pair (a, b) of each head is
  rotated by angle p * theta^(-2i/D), p = start_position + t: a' = a cos - b sin,
  b' = a sin + b cos. Pairs are (i, i + D/2) for style "half" and (2i, 2i+1) for
  "interleaved". The backward pass comes from autograd. rope_reference is shared with
  checks_attention_layers.py.

Computed in float64, so that the reference's own rounding is negligible next to qkv's.
"""
import math

import torch


def check_sinusoidal(t, meta):
    max_len, dim = t["table"].shape
    p = torch.arange(max_len, dtype=torch.float64).unsqueeze(1)
    c = torch.arange(dim)
    angle = p / torch.pow(10000.0, (2 * (c // 2)).double() / dim)
    table = torch.where(c % 2 == 0, torch.sin(angle), torch.cos(angle))
    return {"table": (table, None)}


def check_add_positions(t, meta):
    start = int(meta["start_position"])
    x = t["input"].double().requires_grad_()
    table = t["table"].double().requires_grad_()
    seq = x.shape[1]
    y = x + table[start:start + seq]
    y.backward(t["d_output"].double())
    return {"output": (y.detach(), None), "d_table": (table.grad, None)}


def rope_frequencies(d, theta, scaling="none", factor=1.0, original_context=0, sequence_length=0,
                     low_freq_factor=1.0, high_freq_factor=4.0):
    """Per-pair angular frequencies, from the papers:
    linear: position interpolation (Chen et al. 2023) divides positions, i.e. frequencies, by s;
    ntk: base theta * s^(d / (d - 2)) ("NTK-aware" scaling, bloc97 2023);
    dynamic: Hugging Face's dynamic NTK: for a sequence of L > L0 tokens the base is
    theta * (s L / L0 - (s - 1))^(d / (d - 2)), plain RoPE up to L0;
    llama3: Meta's Llama 3.1 rule (apply_scaling in its reference code): by wavelength
    2 pi / f, pairs shorter than L0 / high_freq_factor keep f, longer than L0 / low_freq_factor
    get f / s, and between them (1 - a) f / s + a f with a = (L0 / wavelength - low) / (high - low);
    yarn: Peng et al. 2023 / the YaRN reference code: a linear ramp over the pair index between
    the pairs turning beta_fast = 32 and beta_slow = 1 times over the original context blends
    the interpolated (f / s) and the original frequencies.
    Returns (frequencies (d/2,), magnitude) where magnitude is YaRN's 0.1 ln s + 1 (else 1)."""
    half = d // 2
    base = theta * factor ** (d / (d - 2)) if scaling == "ntk" else theta
    if scaling == "dynamic" and sequence_length > original_context:
        base = theta * (factor * sequence_length / original_context - (factor - 1)) ** (d / (d - 2))
    exponent = torch.arange(half, dtype=torch.float64) * 2 / d
    frequency = torch.pow(torch.tensor(base, dtype=torch.float64), -exponent)
    magnitude = 1.0
    if scaling == "linear":
        frequency = frequency / factor
    elif scaling == "llama3":
        scaled = []
        for f in frequency.tolist():
            wavelength = 2 * math.pi / f
            if wavelength < original_context / high_freq_factor:
                scaled.append(f)
            elif wavelength > original_context / low_freq_factor:
                scaled.append(f / factor)
            else:
                a = (original_context / wavelength - low_freq_factor) / (
                    high_freq_factor - low_freq_factor)
                scaled.append((1 - a) * f / factor + a * f)
        frequency = torch.tensor(scaled, dtype=torch.float64)
    elif scaling == "yarn":
        def correction_dim(rotations):
            return (d * math.log(original_context / (rotations * 2 * math.pi))) / (
                2 * math.log(theta))
        low = max(math.floor(correction_dim(32.0)), 0)
        high = min(math.ceil(correction_dim(1.0)), d - 1)
        if low == high:
            high += 0.001
        ramp = ((torch.arange(half, dtype=torch.float64) - low) / (high - low)).clamp(0, 1)
        extrapolation = 1 - ramp
        frequency = frequency / factor * (1 - extrapolation) + frequency * extrapolation
        magnitude = 0.1 * math.log(factor) + 1.0
    return frequency, magnitude


def rope_reference(x, heads, theta, style, start_position, scaling="none", factor=1.0,
                   original_context=0, sequence_length=0):
    """x: (B, T, H*D) -> the same with every head's pairs rotated."""
    b, seq, width = x.shape
    d = width // heads
    half = d // 2
    position = torch.arange(start_position, start_position + seq, dtype=torch.float64)
    frequency, magnitude = rope_frequencies(d, theta, scaling, factor, original_context,
                                            sequence_length)
    angle = position.unsqueeze(1) * frequency  # (T, D/2)
    cos = (magnitude * torch.cos(angle)).to(x.dtype)
    sin = (magnitude * torch.sin(angle)).to(x.dtype)
    xh = x.reshape(b, seq, heads, d)
    if style == "half":
        first, second = xh[..., :half], xh[..., half:]
    else:
        first, second = xh[..., 0::2], xh[..., 1::2]
    cos = cos.reshape(1, seq, 1, half)
    sin = sin.reshape(1, seq, 1, half)
    new_first = first * cos - second * sin
    new_second = first * sin + second * cos
    if style == "half":
        out = torch.cat([new_first, new_second], dim=-1)
    else:
        out = torch.stack([new_first, new_second], dim=-1).reshape(b, seq, heads, d)
    return out.reshape(b, seq, width)


def check_rope(t, meta):
    x = t["input"].double().requires_grad_()
    y = rope_reference(x, int(meta["heads"]), float(meta["theta"]), meta["style"],
                       int(meta["start_position"]), meta.get("scaling", "none"),
                       float(meta.get("factor", "1")), int(meta.get("original_context", "0")),
                       int(meta.get("sequence_length", "0")))
    y.backward(t["d_output"].double())
    return {"output": (y.detach(), None), "d_input": (x.grad, None)}


CHECKS = {
    "sinusoidal": check_sinusoidal,
    "add_positions": check_add_positions,
    "rope": check_rope,
}
