"""PyTorch reference for ops/attention, written out per head:
matmul -> scale 1/sqrt(D) -> masked_fill(-inf) -> softmax -> matmul.

Masks: causal lets query i see key j iff j <= i + Tk - Tq (the queries are the last Tq
positions); key_padding (B, Tk), nonzero = padding, hides a key from every query. A query with
no visible key gets all-zero weights and a zero output (qkv's definition; PyTorch would give
NaN). attention_reference is shared with checks_attention_layers.py. Computed in float64, so
that the reference's own rounding is negligible next to qkv's.
"""
import math

import torch


def split_heads(x, heads):
    """(B, T, C) -> (B, H, T, D)."""
    b, t, c = x.shape
    return x.reshape(b, t, heads, c // heads).transpose(1, 2)


def alibi_slopes(heads):
    """The ALiBi paper's get_slopes (Press et al. 2022, its reference code)."""
    def power_of_two(n):
        start = 2 ** (-2 ** -(math.log2(n) - 3))
        return [start * start ** i for i in range(n)]
    if math.log2(heads).is_integer():
        return power_of_two(heads)
    closest = 2 ** math.floor(math.log2(heads))
    return power_of_two(closest) + alibi_slopes(2 * closest)[0::2][:heads - closest]


def attention_reference(q, k, v, heads, causal, key_padding=None, alibi=False):
    """q: (B, Tq, C); k, v: (B, Tk, C); key_padding: (B, Tk) or None.

    Returns output (B, Tq, C) and probs (B, H, Tq, Tk)."""
    b, tq, c = q.shape
    tk = k.shape[1]
    qh, kh, vh = split_heads(q, heads), split_heads(k, heads), split_heads(v, heads)
    scores = qh @ kh.transpose(-1, -2) / math.sqrt(c // heads)
    if alibi:
        # Query i sits at position i + Tk - Tq; the bias is -m_h * |distance|.
        distance = (torch.arange(tq).unsqueeze(1) + (tk - tq) - torch.arange(tk).unsqueeze(0))
        slopes = torch.tensor(alibi_slopes(heads), dtype=scores.dtype).reshape(1, heads, 1, 1)
        scores = scores - slopes * distance.abs().to(scores.dtype)
    masked = torch.zeros(b, 1, tq, tk, dtype=torch.bool)
    if causal:
        i = torch.arange(tq).unsqueeze(1)
        j = torch.arange(tk).unsqueeze(0)
        masked = masked | (j > i + (tk - tq))
    if key_padding is not None:
        masked = masked | (key_padding != 0).reshape(b, 1, 1, tk)
    # A query with every key masked: softmax would be NaN. Its scores are left finite and its
    # weights set to zero afterwards, which keeps NaN out of the backward pass too.
    dead = masked.all(dim=-1, keepdim=True)
    scores = scores.masked_fill(masked & ~dead, float("-inf"))
    probs = torch.softmax(scores, dim=-1).masked_fill(dead, 0.0)
    output = (probs @ vh).transpose(1, 2).reshape(b, tq, c)
    return output, probs


def check_attention(t, meta):
    q = t["q"].double().requires_grad_()
    k = t["k"].double().requires_grad_()
    v = t["v"].double().requires_grad_()
    output, probs = attention_reference(q, k, v, int(meta["heads"]), meta["causal"] == "1",
                                        t.get("key_padding"), meta.get("alibi") == "1")
    output.backward(t["d_output"].double())
    return {
        "output": (output.detach(), None),
        "probs": (probs.detach(), None),
        "d_q": (q.grad, None),
        "d_k": (k.grad, None),
        "d_v": (v.grad, None),
    }


CHECKS = {"attention": check_attention}
