"""PyTorch reference for ops/linear: torch.nn.functional.linear."""
import torch


def check_linear(t, meta):
    x = t["input"].clone().requires_grad_()
    w = t["weight"].clone().requires_grad_()
    b = t["bias"].clone().requires_grad_() if meta["bias"] == "1" else None
    y = torch.nn.functional.linear(x, w, b)
    y.backward(t["d_output"])
    out = {"output": (y.detach(), None), "d_input": (x.grad, None), "d_weight": (w.grad, None)}
    if b is not None:
        out["d_bias"] = (b.grad, None)
    return out


CHECKS = {"linear": check_linear}
