"""PyTorch references for layers/self_attention and layers/cross_attention, written from the
formulas in their headers as plain functions of the stored parameters:

  self:  [q k v] = x W_qkv^T + b_qkv  (rows [0,C) of W_qkv make q, [C,2C) k, [2C,3C) v);
         q, k = RoPE(q), RoPE(k) when set;  a = Attention(q, k, v);  y = a W_out^T + b_out
  cross: q = x W_q^T + b_q;  [k v] = memory W_kv^T + b_kv;  a = Attention(q, k, v) with the
         memory's padding mask;  y = a W_out^T + b_out

Attention and RoPE come from checks_attention.py and checks_positions.py. Every gradient comes
from autograd. Computed in float64, so that the reference's own rounding is negligible next to
qkv's.
"""
import torch.nn.functional as F

from checks_attention import attention_reference
from checks_positions import rope_reference


def leaf(t, name):
    """The stored tensor `name` as a float64 leaf that collects a gradient (None if absent)."""
    return t[name].double().requires_grad_() if name in t else None


def gradients(leaves):
    """{"d_" + name: (grad, default tolerance)} for each leaf present."""
    return {"d_" + name: (x.grad, None) for name, x in leaves.items() if x is not None}


def check_self_attention(t, meta):
    heads = int(meta["heads"])
    x = leaf(t, "input")
    params = {name: leaf(t, name) for name in ("qkv_weight", "qkv_bias", "out_weight",
                                               "out_bias")}
    c = x.shape[-1]
    qkv = F.linear(x, params["qkv_weight"], params["qkv_bias"])
    q, k, v = qkv[..., :c], qkv[..., c:2 * c], qkv[..., 2 * c:]
    if meta["rope"] != "none":
        start, theta = int(meta["start_position"]), float(meta["theta"])
        q = rope_reference(q, heads, theta, meta["rope"], start)
        k = rope_reference(k, heads, theta, meta["rope"], start)
    attended, probs = attention_reference(q, k, v, heads, meta["causal"] == "1",
                                          t.get("key_padding"))
    y = F.linear(attended, params["out_weight"], params["out_bias"])
    y.backward(t["d_output"].double())
    out = {"output": (y.detach(), None), "probs": (probs.detach(), None),
           "d_input": (x.grad, None)}
    out.update(gradients(params))
    return out


def check_cross_attention(t, meta):
    heads = int(meta["heads"])
    x = leaf(t, "input")
    memory = leaf(t, "memory")
    params = {name: leaf(t, name) for name in ("q_weight", "q_bias", "kv_weight", "kv_bias",
                                               "out_weight", "out_bias")}
    c = x.shape[-1]
    q = F.linear(x, params["q_weight"], params["q_bias"])
    kv = F.linear(memory, params["kv_weight"], params["kv_bias"])
    k, v = kv[..., :c], kv[..., c:]
    attended, probs = attention_reference(q, k, v, heads, False, t.get("key_padding"))
    y = F.linear(attended, params["out_weight"], params["out_bias"])
    y.backward(t["d_output"].double())
    out = {"output": (y.detach(), None), "d_input": (x.grad, None), "d_memory": (memory.grad, None)}
    if meta.get("kernel", "simple") == "simple":  # the flash kernel stores no probabilities
        out["probs"] = (probs.detach(), None)
    out.update(gradients(params))
    return out


CHECKS = {"self_attention": check_self_attention, "cross_attention": check_cross_attention}
