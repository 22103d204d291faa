#!/usr/bin/env python3
"""nanoGPT's shakespeare_char CPU recipe in plain PyTorch: the reference side of run.sh.

A self-contained re-implementation (no nanoGPT checkout, no transformers, no downloads) of
nanoGPT's GPT model and training loop with the settings of the qkv benchmark:

  * char tokens: the sorted set of characters of the whole file; first 90% train, last 10% val
  * GPT-2 architecture: learned positions, pre-LayerNorm with bias (eps 1e-5), tanh-GELU MLP
    (4x width), causal multi-head self-attention, final LayerNorm, head tied to the embedding
  * init: normal(0, 0.02) for linear weights and embeddings, zeros for biases,
    normal(0, 0.02/sqrt(2*layers)) for the c_proj (residual) weights
  * batches: B random windows of T+1 consecutive training tokens (torch.randint, as nanoGPT)
  * AdamW: decay 0.1 on tensors with dim >= 2, none on the rest; betas (0.9, 0.99); eps 1e-8
  * lr: linear warmup lr*(it+1)/(warmup+1), then cosine to min_lr at the last step
  * clip_grad_norm_(1.0); no dropout
  * validation loss: mean over --eval-batches random validation windows (a fixed generator);
    also the loss over every non-overlapping window of the validation split (no sampling noise)

Prints a human summary to stderr and one JSON object on stdout.
"""

import argparse
import json
import math
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class CausalSelfAttention(nn.Module):
    def __init__(self, width, heads, context):
        super().__init__()
        self.heads = heads
        self.c_attn = nn.Linear(width, 3 * width, bias=True)
        self.c_proj = nn.Linear(width, width, bias=True)
        self.register_buffer(
            "mask", torch.tril(torch.ones(context, context, dtype=torch.bool)).view(1, 1, context, context))

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = self.c_attn(x).split(c, dim=2)
        hd = c // self.heads
        q = q.view(b, t, self.heads, hd).transpose(1, 2)
        k = k.view(b, t, self.heads, hd).transpose(1, 2)
        v = v.view(b, t, self.heads, hd).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hd))
        att = att.masked_fill(~self.mask[:, :, :t, :t], float("-inf"))
        att = F.softmax(att, dim=-1)
        y = (att @ v).transpose(1, 2).contiguous().view(b, t, c)
        return self.c_proj(y)


class MLP(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.c_fc = nn.Linear(width, 4 * width, bias=True)
        self.c_proj = nn.Linear(4 * width, width, bias=True)

    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))


class Block(nn.Module):
    def __init__(self, width, heads, context):
        super().__init__()
        self.ln_1 = nn.LayerNorm(width, eps=1e-5)
        self.attn = CausalSelfAttention(width, heads, context)
        self.ln_2 = nn.LayerNorm(width, eps=1e-5)
        self.mlp = MLP(width)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, vocab, layers, heads, width, context):
        super().__init__()
        self.wte = nn.Embedding(vocab, width)
        self.wpe = nn.Embedding(context, width)
        self.h = nn.ModuleList([Block(width, heads, context) for _ in range(layers)])
        self.ln_f = nn.LayerNorm(width, eps=1e-5)
        self.lm_head = nn.Linear(width, vocab, bias=False)
        self.lm_head.weight = self.wte.weight  # tied
        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * layers))

    @staticmethod
    def _init_weights(module):
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, idx, targets):
        t = idx.shape[1]
        pos = torch.arange(t, dtype=torch.long)
        x = self.wte(idx) + self.wpe(pos)
        for block in self.h:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))


def get_batch(data, batch, context, generator):
    ix = torch.randint(len(data) - context, (batch,), generator=generator)
    x = torch.stack([data[i:i + context] for i in ix])
    y = torch.stack([data[i + 1:i + 1 + context] for i in ix])
    return x, y


def lr_at(it, args):
    # nanoGPT's get_lr with lr_decay_iters = steps.
    if it < args.warmup:
        return args.lr * (it + 1) / (args.warmup + 1)
    if it >= args.steps:
        return args.min_lr
    ratio = (it - args.warmup) / (args.steps - args.warmup)
    return args.min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (args.lr - args.min_lr)


@torch.no_grad()
def estimate_val_loss(model, val, args):
    model.eval()
    generator = torch.Generator().manual_seed(args.seed ^ 0x5EED)
    total = 0.0
    for _ in range(args.eval_batches):
        x, y = get_batch(val, args.batch, args.context, generator)
        total += model(x, y).item()
    model.train()
    return total / args.eval_batches


@torch.no_grad()
def full_val_loss(model, val, context):
    """Mean loss over every non-overlapping window of context+1 tokens of val (no sampling)."""
    n = (len(val) - 1) // context
    x = val[: n * context].view(n, context)
    y = val[1: n * context + 1].view(n, context)
    model.eval()
    total, count = 0.0, 0
    for i in range(0, n, 256):
        xb, yb = x[i:i + 256], y[i:i + 256]
        total += model(xb, yb).item() * xb.numel()
        count += xb.numel()
    model.train()
    return total / count


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--context", type=int, default=64)
    p.add_argument("--batch", type=int, default=12)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--min-lr", type=float, default=1e-4)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--beta1", type=float, default=0.9)
    p.add_argument("--beta2", type=float, default=0.99)
    p.add_argument("--grad-clip", type=float, default=1.0)
    p.add_argument("--eval-batches", type=int, default=200)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--log-every", type=int, default=250, help="print the training loss every N steps (0: never)")
    args = p.parse_args()

    process_start = time.perf_counter()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    with open(args.data, "r", encoding="utf-8") as f:
        text = f.read()
    chars = sorted(set(text))
    stoi = {ch: i for i, ch in enumerate(chars)}
    ids = torch.tensor([stoi[c] for c in text], dtype=torch.long)
    n = int(0.9 * len(ids))
    train, val = ids[:n], ids[n:]

    model = GPT(len(chars), args.layers, args.heads, args.dim, args.context)
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr, betas=(args.beta1, args.beta2), eps=1e-8)
    n_params = sum(p.numel() for p in params)

    generator = torch.Generator().manual_seed(args.seed)
    losses = []
    train_start = time.perf_counter()
    for it in range(args.steps):
        lr = lr_at(it, args)
        for group in optimizer.param_groups:
            group["lr"] = lr
        x, y = get_batch(train, args.batch, args.context, generator)
        loss = model(x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if args.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
        optimizer.step()
        value = loss.item()
        losses.append(value)
        if args.log_every and ((it + 1) % args.log_every == 0 or it == 0):
            print(f"torch[{args.threads}t] step {it + 1}/{args.steps} loss {value:.4f} lr {lr:.2e} "
                  f"{time.perf_counter() - train_start:.1f}s", file=sys.stderr, flush=True)
    train_seconds = time.perf_counter() - train_start
    eval_start = time.perf_counter()
    val_loss = estimate_val_loss(model, val, args)
    eval_seconds = time.perf_counter() - eval_start
    val_loss_all = full_val_loss(model, val, args.context)
    wall_seconds = time.perf_counter() - process_start

    tokens = args.steps * args.batch * args.context
    result = {
        "implementation": "pytorch",
        "torch_version": torch.__version__,
        "threads": args.threads,
        "torch_num_threads": torch.get_num_threads(),
        "parameters": n_params,
        "vocab_size": len(chars),
        "train_tokens": int(len(train)),
        "val_tokens": int(len(val)),
        "steps": args.steps,
        "train_seconds": train_seconds,
        "eval_seconds": eval_seconds,
        "wall_seconds": wall_seconds,
        "tokens_per_s": tokens / train_seconds,
        "final_train_loss": losses[-1],
        "train_loss_last100_mean": sum(losses[-100:]) / len(losses[-100:]),
        "val_loss": val_loss,
        "eval_batches": args.eval_batches,
        "val_loss_all_windows": val_loss_all,
        "seed": args.seed,
        "train_losses_every_100": losses[99::100],
        "blas": torch.__config__.show(),
        "env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "OPENBLAS_NUM_THREADS",
                                                "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")},
    }
    print(f"torch[{args.threads}t] {args.steps} steps in {train_seconds:.1f}s ({result['tokens_per_s']:.0f} tok/s), "
          f"val loss {val_loss:.4f} over {args.eval_batches} batches", file=sys.stderr, flush=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
