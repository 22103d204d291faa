"""PyTorch references for the element-wise activations: ops/gelu
(torch.nn.functional.gelu, approximate "none" or "tanh"), ops/relu (torch.relu, whose
gradient at 0 is 0), ops/silu (F.silu) and ops/swiglu (silu(gate) * up).

Computed in float64, so that the reference's own rounding is negligible next to qkv's.
"""
import torch
import torch.nn.functional as F


def check_gelu(t, meta):
    x = t["input"].double().requires_grad_()
    y = F.gelu(x, approximate=meta["approximate"])
    y.backward(t["d_output"].double())
    return {"output": (y.detach(), None), "d_input": (x.grad, None)}


def check_relu(t, meta):
    x = t["input"].double().requires_grad_()
    y = torch.relu(x)
    y.backward(t["d_output"].double())
    return {"output": (y.detach(), None), "d_input": (x.grad, None)}


def check_silu(t, meta):
    x = t["input"].double().requires_grad_()
    y = F.silu(x)
    y.backward(t["d_output"].double())
    return {"output": (y.detach(), None), "d_input": (x.grad, None)}


def check_swiglu(t, meta):
    gate = t["gate"].double().requires_grad_()
    up = t["up"].double().requires_grad_()
    y = F.silu(gate) * up
    y.backward(t["d_output"].double())
    return {"output": (y.detach(), None), "d_gate": (gate.grad, None), "d_up": (up.grad, None)}


CHECKS = {"gelu": check_gelu, "relu": check_relu, "silu": check_silu, "swiglu": check_swiglu}
