"""PyTorch references for ops/layer_norm (torch.nn.functional.layer_norm) and ops/rms_norm
(torch 1.13 has no rms_norm: x * rsqrt(mean(x^2) + eps) * gamma, written out).

Both also compare the statistics qkv saves for the backward pass: the mean and 1/std of each
row for LayerNorm (biased variance), 1/rms for RMSNorm. Computed in float64, so that the
reference's own rounding is negligible next to qkv's.
"""
import torch
import torch.nn.functional as F


def check_layer_norm(t, meta):
    eps = float(meta["eps"])
    x = t["input"].double().requires_grad_()
    gamma = t["gamma"].double().requires_grad_()
    beta = t["beta"].double().requires_grad_() if meta["beta"] == "1" else None
    y = F.layer_norm(x, (x.shape[-1],), gamma, beta, eps)
    y.backward(t["d_output"].double())
    var, mean = torch.var_mean(x.detach(), dim=-1, unbiased=False)
    out = {
        "output": (y.detach(), None),
        "mean": (mean, None),
        "rstd": (torch.rsqrt(var + eps), None),
        "d_input": (x.grad, None),
        "d_gamma": (gamma.grad, None),
    }
    if beta is not None:
        out["d_beta"] = (beta.grad, None)
    return out


def check_rms_norm(t, meta):
    eps = float(meta["eps"])
    x = t["input"].double().requires_grad_()
    gamma = t["gamma"].double().requires_grad_()
    rrms = torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps)
    y = x * rrms * gamma
    y.backward(t["d_output"].double())
    return {
        "output": (y.detach(), None),
        "rrms": (rrms.detach().squeeze(-1), None),
        "d_input": (x.grad, None),
        "d_gamma": (gamma.grad, None),
    }


CHECKS = {"layer_norm": check_layer_norm, "rms_norm": check_rms_norm}
