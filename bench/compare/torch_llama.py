#!/usr/bin/env python3
"""PyTorch's side of bench/compare/llama_generate.sh: greedy batch-1 generation of a Llama-shaped
model with grouped-query attention and a key/value cache (or, with --train, the median
training step), one JSON line on stdout.

  torch_llama.py --layers 12 --heads 12 --kv-heads 4 --dim 768 --ffn-dim 2048 --vocab 16000 \
                 --context 1024 --prompt 8 --tokens 64 --threads 1 [--bf16]
  torch_llama.py ... --train --batch 4 --seq 64 --steps 5 [--bf16]

The model is Hugging Face's LlamaForCausalLM written in plain torch (transformers is not in
Debian): RMSNorm, RoPE in the half style, q/k/v/o without biases, query head h reading
key/value head h // (H / KV), SwiGLU, an untied lm_head. Decoding is the best plain PyTorch
1.13 offers on a CPU: torch.no_grad, a preallocated (L, KV, context, D) cache, attention as
one grouped matmul per layer (queries reshaped to (KV, H/KV, D), so keys and values are never
repeated), cos/sin tables computed once. --bf16 runs it under
torch.autocast("cpu", dtype=torch.bfloat16), as "PyTorch at its best" asks. No window slides:
prompt + tokens must fit the context, as in qkv's run of the same script.
"""
import argparse
import json
import math
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_compare import PeakMemory  # noqa: E402


class Llama(torch.nn.Module):
    def __init__(self, a):
        super().__init__()
        self.a = a
        d = a.dim // a.heads
        self.embed = torch.nn.Embedding(a.vocab, a.dim)
        self.layers = torch.nn.ModuleList()
        for _ in range(a.layers):
            layer = torch.nn.Module()
            layer.norm1 = torch.nn.Parameter(torch.ones(a.dim))
            layer.q = torch.nn.Linear(a.dim, a.heads * d, bias=False)
            layer.kv = torch.nn.Linear(a.dim, 2 * a.kv_heads * d, bias=False)
            layer.o = torch.nn.Linear(a.heads * d, a.dim, bias=False)
            layer.norm2 = torch.nn.Parameter(torch.ones(a.dim))
            layer.gate_up = torch.nn.Linear(a.dim, 2 * a.ffn_dim, bias=False)
            layer.down = torch.nn.Linear(a.ffn_dim, a.dim, bias=False)
            self.layers.append(layer)
        self.norm = torch.nn.Parameter(torch.ones(a.dim))
        self.lm_head = torch.nn.Linear(a.dim, a.vocab, bias=False)
        for p in self.parameters():
            if p.dim() == 2:
                torch.nn.init.normal_(p, std=0.02)
        inv_freq = 1.0 / (10000.0 ** (torch.arange(0, d, 2, dtype=torch.float32) / d))
        angle = torch.arange(a.context, dtype=torch.float32)[:, None] * inv_freq[None, :]
        self.cos = torch.cat([angle.cos(), angle.cos()], dim=-1)  # (context, D)
        self.sin = torch.cat([angle.sin(), angle.sin()], dim=-1)

    @staticmethod
    def rms_norm(x, weight):
        x32 = x.float()
        return (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + 1e-6)).to(x.dtype) * weight

    def rope(self, x, start):  # x (..., T, D)
        t, d = x.shape[-2], x.shape[-1]
        cos, sin = self.cos[start:start + t], self.sin[start:start + t]
        rotated = torch.cat([-x[..., d // 2:], x[..., :d // 2]], dim=-1)
        return x * cos + rotated * sin

    def loss(self, tokens, targets):
        """Mean next-token cross-entropy of (B, T) windows, causal attention over each."""
        a = self.a
        d, group = a.dim // a.heads, a.heads // a.kv_heads
        b, t = tokens.shape
        x = self.embed(tokens)
        causal = torch.ones(t, t, dtype=torch.bool).tril()
        for layer in self.layers:
            h = self.rms_norm(x, layer.norm1)
            q = layer.q(h).view(b, t, a.heads, d).transpose(1, 2)  # (B, H, T, D)
            k, v = layer.kv(h).view(b, t, 2, a.kv_heads, d).permute(2, 0, 3, 1, 4)
            q, k = self.rope(q, 0), self.rope(k, 0)
            scores = q.reshape(b, a.kv_heads, group, t, d) @ k.unsqueeze(2).transpose(-1, -2)
            scores = (scores / math.sqrt(d)).masked_fill(~causal, float("-inf"))
            out = F.softmax(scores.float(), dim=-1).to(v.dtype) @ v.unsqueeze(2)
            x = x + layer.o(out.reshape(b, a.heads, t, d).transpose(1, 2).reshape(b, t, -1))
            gate, up = layer.gate_up(self.rms_norm(x, layer.norm2)).chunk(2, dim=-1)
            x = x + layer.down(F.silu(gate) * up)
        logits = self.lm_head(self.rms_norm(x, self.norm))
        return F.cross_entropy(logits.float().view(b * t, -1), targets.reshape(-1))

    @torch.no_grad()
    def forward_cached(self, tokens, cache_k, cache_v, start):
        """Logits of the last of tokens (T,) at positions [start, start + T)."""
        a = self.a
        d, group, t = a.dim // a.heads, a.heads // a.kv_heads, tokens.shape[0]
        end = start + t
        x = self.embed(tokens)  # (T, C)
        for i, layer in enumerate(self.layers):
            h = self.rms_norm(x, layer.norm1)
            q = layer.q(h).view(t, a.heads, d).transpose(0, 1)  # (H, T, D)
            k, v = layer.kv(h).view(t, 2, a.kv_heads, d).permute(1, 2, 0, 3)  # (KV, T, D) each
            q, k = self.rope(q, start), self.rope(k, start)
            cache_k[i, :, start:end] = k
            cache_v[i, :, start:end] = v
            keys, values = cache_k[i, :, :end], cache_v[i, :, :end]  # (KV, end, D)
            grouped = q.reshape(a.kv_heads, group * t, d)  # query heads of a group, stacked
            scores = (grouped @ keys.transpose(1, 2).to(grouped.dtype)) / math.sqrt(d)
            if t > 1:
                causal = torch.ones(t, end, dtype=torch.bool).tril(diagonal=start)
                scores = scores.view(a.kv_heads, group, t, end).masked_fill(~causal, float("-inf"))
                scores = scores.view(a.kv_heads, group * t, end)
            out = F.softmax(scores.float(), dim=-1).to(values.dtype) @ values
            out = out.view(a.heads, t, d).transpose(0, 1).reshape(t, a.heads * d)
            x = x + layer.o(out)
            gate, up = layer.gate_up(self.rms_norm(x, layer.norm2)).chunk(2, dim=-1)
            x = x + layer.down(F.silu(gate) * up)
        return self.lm_head(self.rms_norm(x[-1:], self.norm))


def train(a, memory):
    """Median step: forward, backward, clip_grad_norm_(1.0), AdamW, as qkv_compare_bench train."""
    model = Llama(a)
    params = sum(x.numel() for x in model.parameters())
    decay = [x for x in model.parameters() if x.dim() >= 2]
    no_decay = [x for x in model.parameters() if x.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                                   {"params": no_decay, "weight_decay": 0.0}],
                                  lr=1e-3, betas=(0.9, 0.99), eps=1e-8)
    generator = torch.Generator().manual_seed(a.seed + 1)
    step_ms = []
    for step in range(1 + a.steps):
        start = time.perf_counter()
        windows = torch.randint(a.vocab, (a.batch, a.seq + 1), generator=generator)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.bf16):
            loss = model.loss(windows[:, :-1], windows[:, 1:])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        value = loss.item()
        ms = (time.perf_counter() - start) * 1e3
        if step >= 1:
            step_ms.append(ms)
        print(f"torch llama train [{a.threads}t{' bf16' if a.bf16 else ''}]: step {step + 1}: "
              f"{ms:.1f} ms loss {value:.4f}", file=sys.stderr, flush=True)
    median_ms = statistics.median(step_ms)
    print(json.dumps({
        "implementation": "pytorch", "what": "train", "arch": "llama",
        "precision": "bf16 autocast" if a.bf16 else "fp32", "threads": torch.get_num_threads(),
        "model": {"layers": a.layers, "heads": a.heads, "kv_heads": a.kv_heads, "dim": a.dim,
                  "parameters": params},
        "batch": a.batch, "seq_len": a.seq, "step_ms": step_ms, "step_ms_median": median_ms,
        "tokens_per_s": a.batch * a.seq / (median_ms / 1e3), "peak_memory_mib": memory.growth_mib()}))


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    for name, default in [("layers", 12), ("heads", 12), ("kv-heads", 4), ("dim", 768),
                          ("ffn-dim", 2048), ("vocab", 16000), ("context", 1024), ("prompt", 8),
                          ("tokens", 64), ("runs", 3), ("threads", 1), ("seed", 1337)]:
        p.add_argument("--" + name, type=int, default=default)
    p.add_argument("--warmup-runs", type=int, default=1)
    p.add_argument("--bf16", action="store_true", help="torch.autocast(cpu, bfloat16)")
    p.add_argument("--train", action="store_true", help="time training steps instead")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seq", type=int, default=64)
    p.add_argument("--steps", type=int, default=5)
    a = p.parse_args()
    if a.dim % a.heads or a.heads % a.kv_heads or a.prompt + a.tokens > a.context or \
            a.seq > a.context:
        p.error("--heads must divide --dim, --kv-heads --heads, and prompt + tokens fit --context")
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    memory = PeakMemory()
    if a.train:
        return train(a, memory)
    model = Llama(a).eval()
    params = sum(x.numel() for x in model.parameters())
    d = a.dim // a.heads
    cache_dtype = torch.bfloat16 if a.bf16 else torch.float32
    cache_k = torch.empty(a.layers, a.kv_heads, a.context, d, dtype=cache_dtype)
    cache_v = torch.empty_like(cache_k)
    prompt = torch.randint(a.vocab, (a.prompt,), generator=torch.Generator().manual_seed(a.seed))
    run_ms = []
    for run in range(a.warmup_runs + a.runs):
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.bf16):
            logits = model.forward_cached(prompt, cache_k, cache_v, 0)
            length = a.prompt
            for step in range(a.tokens):
                token = torch.argmax(logits, dim=-1).view(1)
                if step + 1 == a.tokens:
                    break
                logits = model.forward_cached(token, cache_k, cache_v, length)
                length += 1
        ms = (time.perf_counter() - start) * 1e3
        if run >= a.warmup_runs:
            run_ms.append(ms)
        print(f"torch llama generate [{a.threads}t{' bf16' if a.bf16 else ''}]: run {run + 1}: "
              f"{a.tokens} tokens in {ms:.1f} ms", file=sys.stderr, flush=True)
    median_ms = statistics.median(run_ms)
    print(json.dumps({
        "implementation": "pytorch", "what": "generate", "arch": "llama",
        "precision": "bf16 autocast" if a.bf16 else "fp32", "threads": torch.get_num_threads(),
        "model": {"layers": a.layers, "heads": a.heads, "kv_heads": a.kv_heads, "dim": a.dim,
                  "ffn_dim": a.ffn_dim, "vocab": a.vocab, "context": a.context,
                  "parameters": params},
        "prompt_tokens": a.prompt, "new_tokens": a.tokens, "run_ms": run_ms,
        "run_ms_median": median_ms, "tokens_per_s": a.tokens / (median_ms / 1e3),
        "kv_cache_bytes_per_token": cache_k.element_size() * 2 * a.layers * a.kv_heads * d,
        "peak_memory_mib": memory.growth_mib()}))


if __name__ == "__main__":
    main()
