"""PyTorch references for ops/softmax (torch.softmax) and ops/cross_entropy
(torch.nn.functional.cross_entropy with ignore_index, reduction="mean").

qkv defines two results that PyTorch leaves as NaN, and the references follow qkv there:
a softmax row that is entirely -inf is all zeros (with a zero gradient), and a cross-entropy
batch whose targets are all ignored has loss 0 and zero gradients. Computed in float64, so that
the reference's own rounding is negligible next to qkv's.
"""
import torch
import torch.nn.functional as F


def check_softmax(t, meta):
    x = t["input"].double().requires_grad_()
    dead = torch.isneginf(x.detach()).all(dim=-1, keepdim=True)
    # Dead rows are replaced by zeros before the softmax so no NaN reaches the gradient;
    # their output is then set to zero, which also zeroes their gradient.
    y = torch.softmax(x.masked_fill(dead, 0.0), dim=-1).masked_fill(dead, 0.0)
    y.backward(t["d_output"].double())
    return {"output": (y.detach(), None), "d_input": (x.grad, None)}


def check_cross_entropy(t, meta):
    ignore_index = int(meta["ignore_index"])
    logits = t["logits"].double().requires_grad_()
    targets = t["targets"].long()
    out = {"logsumexp": (torch.logsumexp(logits.detach(), dim=-1), None)}
    if bool((targets == ignore_index).all()):
        out["loss"] = (torch.zeros(1, dtype=torch.float64), None)
        out["d_logits"] = (torch.zeros_like(logits), None)
        return out
    loss = F.cross_entropy(logits, targets, ignore_index=ignore_index, reduction="mean")
    loss.backward(t["d_loss"].double()[0])
    out["loss"] = (loss.detach().reshape(1), None)
    out["d_logits"] = (logits.grad, None)
    return out


CHECKS = {"softmax": check_softmax, "cross_entropy": check_cross_entropy}
