#!/usr/bin/env python3
"""The PyTorch side of bench/compare/run.sh: one measurement per process, one JSON line on stdout.

  torch_compare.py info
  torch_compare.py train --layers 4 --heads 4 --dim 128 --vocab 65 --context 64 --batch 12 \
                         --steps 30 --warmup 5 --threads 1
  torch_compare.py attention --seq 1024 --threads 1
  torch_compare.py generate --layers 4 --heads 4 --dim 128 --vocab 65 --context 64 \
                            --prompt 8 --tokens 200 --runs 3 --threads 1

The model is bench/shakespeare_char/nanogpt_reference.py's GPT (nanoGPT's model.py with
tanh-GELU and no dropout), imported, not copied. Each measurement mirrors what
qkv_compare_bench does for the same subcommand, so the two JSON lines compare one to one:

  train      random tokens uniform over the vocabulary, torch.randint windows, forward, backward,
             clip_grad_norm_(1.0), AdamW (betas 0.9/0.99, decay 0.1 on matrices), loss.item();
             median step time after warm-up steps.
  attention  nanoGPT's attention without flash, from (B, T, C) q, k, v to the (B, T, C) input of
             the output projection: view/transpose to heads, q @ k^T * 1/sqrt(D), masked_fill with
             -inf, softmax, @ v, transpose back; forward + backward.
  generate   greedy decoding with a preallocated key/value cache under torch.no_grad(), sliding
             the window exactly as qkv's infer::Generator does (keep the last context/2 tokens and
             prefill them again from position 0 when the cache is full).

Peak memory is the growth of the process's peak resident size (VmHWM, reset through
/proc/self/clear_refs) over its resident size when the measurement starts, as qkv_compare_bench
measures it.
"""

import argparse
import ctypes
import json
import math
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.dont_write_bytecode = True  # no __pycache__ beside the imported reference
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "shakespeare_char"))
from nanogpt_reference import GPT  # noqa: E402  (path set just above)


def status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


class PeakMemory:
    """Growth of the peak resident size since construction, in MiB."""

    def __init__(self):
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            pass
        self.start_kib = status_kib("VmRSS")

    def growth_mib(self):
        peak = status_kib("VmHWM")
        return (peak - self.start_kib) / 1024.0 if peak >= 0 and self.start_kib >= 0 else -1.0


def model_json(args, params):
    return {"layers": args.layers, "heads": args.heads, "dim": args.dim, "vocab": args.vocab,
            "context": args.context, "parameters": params}


def build_model(args):
    torch.manual_seed(args.seed)
    model = GPT(args.vocab, args.layers, args.heads, args.dim, args.context)
    params = sum(p.numel() for p in model.parameters())  # parameters() yields the tied wte once
    return model, params


def cmd_info(_args):
    show = torch.__config__.show()
    blas_lines = [line.strip() for line in show.splitlines()
                  if "blas" in line.lower() or "mkl" in line.lower() or "lapack" in line.lower()]
    libblas = os.path.realpath("/usr/lib/x86_64-linux-gnu/libblas.so.3")
    return {"implementation": "pytorch", "torch_version": torch.__version__,
            "blas_config_lines": blas_lines, "libblas_so_3": libblas,
            "parallel_info": torch.__config__.parallel_info().strip().splitlines()}


def cmd_train(args):
    torch.set_num_threads(args.threads)
    memory = PeakMemory()
    model, params = build_model(args)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
        lr=1e-3, betas=(0.9, 0.99), eps=1e-8, foreach=args.foreach)
    generator = torch.Generator().manual_seed(args.seed + 1)
    window = args.context + 1
    data_tokens = args.data_tokens or max(200_000, 8 * args.batch * window)
    data = torch.randint(args.vocab, (data_tokens,), generator=generator)

    step_ms, first_loss, last_loss = [], None, None
    for step in range(args.warmup + args.steps):
        start = time.perf_counter()
        ix = torch.randint(len(data) - args.context, (args.batch,), generator=generator)
        x = torch.stack([data[i:i + args.context] for i in ix])
        y = torch.stack([data[i + 1:i + 1 + args.context] for i in ix])
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            loss = model(x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        value = loss.item()
        ms = (time.perf_counter() - start) * 1e3
        first_loss = value if first_loss is None else first_loss
        last_loss = value
        if step >= args.warmup:
            step_ms.append(ms)
        print(f"torch train [{args.threads}t{' bf16' if args.bf16 else ''}]: step {step + 1}/{args.warmup + args.steps} "
              f"{ms:.1f} ms loss {value:.4f}", file=sys.stderr, flush=True)
    median_ms = statistics.median(step_ms)
    tokens_per_step = args.batch * args.context
    return {"implementation": "pytorch", "what": "train", "threads": torch.get_num_threads(),
            "model": model_json(args, params), "batch": args.batch, "seq_len": args.context,
            "warmup_steps": args.warmup, "step_ms": step_ms, "step_ms_median": median_ms,
            "tokens_per_step": tokens_per_step, "tokens_per_s": tokens_per_step / (median_ms / 1e3),
            "flops_per_token": 6.0 * params + 12.0 * args.layers * args.dim * args.context,
            "first_loss": first_loss, "last_loss": last_loss, "foreach": args.foreach,
            "precision": "bf16 autocast" if args.bf16 else "fp32",
            "peak_memory_mib": memory.growth_mib()}


def attention(q, k, v, heads, bias):
    """nanoGPT's CausalSelfAttention between c_attn and c_proj, without flash."""
    b, t, c = q.shape
    d = c // heads
    q = q.view(b, t, heads, d).transpose(1, 2)
    k = k.view(b, t, heads, d).transpose(1, 2)
    v = v.view(b, t, heads, d).transpose(1, 2)
    att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(d))
    att = att.masked_fill(bias[:, :, :t, :t] == 0, float("-inf"))
    att = F.softmax(att, dim=-1)
    y = att @ v
    return y.transpose(1, 2).contiguous().view(b, t, c)


def cmd_attention(args):
    torch.set_num_threads(args.threads)
    b, t, c = 1, args.seq, args.heads * args.head_dim
    generator = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(b, t, c, generator=generator).requires_grad_() for _ in range(3))
    d_output = torch.randn(b, t, c, generator=generator)
    # nanoGPT's causal mask buffer, made once per model (an input here, as in the model).
    bias = torch.tril(torch.ones(t, t)).view(1, 1, t, t)

    def run():
        for x in (q, k, v):
            x.grad = None
        attention(q, k, v, args.heads, bias).backward(d_output)

    times = []
    for i in range(args.warmup + args.repeats):
        start = time.perf_counter()
        run()
        if i >= args.warmup:
            times.append((time.perf_counter() - start) * 1e3)
    return {"implementation": "pytorch", "what": "attention", "threads": torch.get_num_threads(),
            "seq": t, "heads": args.heads, "head_dim": args.head_dim, "batch": b,
            "ms": times, "ms_median": statistics.median(times),
            "flops": 12.0 * b * t * t * c, "probs_mib": b * args.heads * t * t * 4 / 2**20}


def cmd_attention_memory(args):
    """Peak memory of one forward + backward of attention(), in a process of its own.

    glibc's malloc keeps freed blocks below its (self-raising) mmap threshold for reuse, so the
    resident size would not follow the live bytes. M_MMAP_THRESHOLD set to 64 KiB (which also
    stops the raising) gives every tensor of 64 KiB or more its own mapping, returned to the
    kernel on free: the growth of the peak resident size is then the peak of live tensor bytes.
    That makes allocation slower, hence a process apart from the timed one.
    """
    libc = ctypes.CDLL("libc.so.6")
    m_mmap_threshold = -3  # malloc.h
    if libc.mallopt(m_mmap_threshold, 64 * 1024) != 1:
        raise SystemExit("torch_compare.py: mallopt(M_MMAP_THRESHOLD) failed")
    torch.set_num_threads(args.threads)
    b, t, c = 1, args.seq, args.heads * args.head_dim
    generator = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(b, t, c, generator=generator).requires_grad_() for _ in range(3))
    d_output = torch.randn(b, t, c, generator=generator)
    bias = torch.tril(torch.ones(t, t)).view(1, 1, t, t)
    # A first run at the same size touches the BLAS library's packing buffers and starts its
    # threads, so the measured run counts only the tensors.
    attention(q, k, v, args.heads, bias).backward(d_output)
    for x in (q, k, v):
        x.grad = None
    memory = PeakMemory()
    attention(q, k, v, args.heads, bias).backward(d_output)
    peak_mib = memory.growth_mib()
    # The peak is in softmax's backward: the probabilities (saved), their gradient, softmax's
    # input gradient (three (B, H, T, T) floats), the boolean mask, and also the (B, T, C)
    # output and dv. qkv's figure leaves out outputs and gradients (its caller owns them), so
    # those two are subtracted here. (torch.profiler's per-op allocation events miss the third
    # T x T buffer: they put the peak at two.)
    kept_mib = 2 * b * t * c * 4 / 2**20
    return {"implementation": "pytorch", "what": "attention_memory",
            "threads": torch.get_num_threads(), "seq": t, "heads": args.heads,
            "head_dim": args.head_dim, "batch": b, "peak_rss_growth_mib": peak_mib,
            "memory_mib": peak_mib - kept_mib, "probs_mib": b * args.heads * t * t * 4 / 2**20}


@torch.no_grad()
def forward_cached(model, tokens, cache_k, cache_v, start, heads):
    """Logits of the last of `tokens` (1, Tnew) at positions [start, start + Tnew); writes their
    keys and values into cache_k, cache_v (L, 1, H, context, D)."""
    t_new = tokens.shape[1]
    end = start + t_new
    x = model.wte(tokens) + model.wpe(torch.arange(start, end))
    c = x.shape[-1]
    d = c // heads
    for layer, block in enumerate(model.h):
        h = block.ln_1(x)
        q, k, v = block.attn.c_attn(h).split(c, dim=2)
        q = q.view(1, t_new, heads, d).transpose(1, 2)
        cache_k[layer, :, :, start:end] = k.view(1, t_new, heads, d).transpose(1, 2)
        cache_v[layer, :, :, start:end] = v.view(1, t_new, heads, d).transpose(1, 2)
        keys, values = cache_k[layer, :, :, :end], cache_v[layer, :, :, :end]
        att = (q @ keys.transpose(-2, -1)) * (1.0 / math.sqrt(d))
        if t_new > 1:
            att = att.masked_fill(block.attn.mask[:, :, start:end, :end] == 0, float("-inf"))
        att = F.softmax(att, dim=-1)
        y = (att @ values).transpose(1, 2).contiguous().view(1, t_new, c)
        x = x + block.attn.c_proj(y)
        x = x + block.mlp(block.ln_2(x))
    return model.lm_head(model.ln_f(x[:, -1, :]))


@torch.no_grad()
def generate(model, prompt, new_tokens, context, heads, cache_k, cache_v):
    window = prompt[-context:]
    logits = forward_cached(model, torch.tensor([window]), cache_k, cache_v, 0, heads)
    length, slides, generated = len(window), 0, []
    for step in range(new_tokens):
        token = int(torch.argmax(logits, dim=-1))
        generated.append(token)
        if step + 1 == new_tokens:
            break  # no forward pass for a token nobody reads, as in qkv
        window.append(token)
        if length == context:
            keep = max(1, context // 2)
            window = window[-keep:]
            logits = forward_cached(model, torch.tensor([window]), cache_k, cache_v, 0, heads)
            length, slides = keep, slides + 1
        else:
            logits = forward_cached(model, torch.tensor([[token]]), cache_k, cache_v, length, heads)
            length += 1
    return generated, slides


def cmd_generate(args):
    torch.set_num_threads(args.threads)
    memory = PeakMemory()
    model, params = build_model(args)
    model.eval()
    generator = torch.Generator().manual_seed(args.seed + 2)
    prompt = torch.randint(args.vocab, (args.prompt,), generator=generator).tolist()
    d = args.dim // args.heads
    cache_k = torch.empty(args.layers, 1, args.heads, args.context, d)
    cache_v = torch.empty_like(cache_k)
    run_ms, slides = [], 0
    for run in range(args.warmup_runs + args.runs):
        start = time.perf_counter()
        generated, slides = generate(model, list(prompt), args.tokens, args.context, args.heads,
                                     cache_k, cache_v)
        ms = (time.perf_counter() - start) * 1e3
        assert len(generated) == args.tokens
        if run >= args.warmup_runs:
            run_ms.append(ms)
        print(f"torch generate [{args.threads}t]: run {run + 1}: {args.tokens} tokens in {ms:.1f} ms",
              file=sys.stderr, flush=True)
    median_ms = statistics.median(run_ms)
    return {"implementation": "pytorch", "what": "generate", "threads": torch.get_num_threads(),
            "model": model_json(args, params), "prompt_tokens": args.prompt,
            "new_tokens": args.tokens, "window_slides": slides, "run_ms": run_ms,
            "run_ms_median": median_ms, "tokens_per_s": args.tokens / (median_ms / 1e3),
            "flops_per_token": 2.0 * params, "peak_memory_mib": memory.growth_mib()}


def positive(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def non_negative(text):
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def add_model_flags(p):
    p.add_argument("--layers", type=positive, default=4)
    p.add_argument("--heads", type=positive, default=4)
    p.add_argument("--dim", type=positive, default=128)
    p.add_argument("--vocab", type=positive, default=65)
    p.add_argument("--context", type=positive, default=64)
    p.add_argument("--seed", type=non_negative, default=1337)
    p.add_argument("--threads", type=positive, default=1)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="torch version and BLAS")
    p = sub.add_parser("train", help="median training step time on random tokens")
    add_model_flags(p)
    p.add_argument("--batch", type=positive, default=12)
    p.add_argument("--steps", type=positive, default=30)
    p.add_argument("--warmup", type=non_negative, default=5)
    p.add_argument("--data-tokens", type=non_negative, default=0)
    p.add_argument("--bf16", action="store_true",
                   help='forward under torch.autocast("cpu", dtype=torch.bfloat16)')
    p.add_argument("--foreach", action=argparse.BooleanOptionalAction, default=False,
                   help="AdamW's multi-tensor implementation")
    p = sub.add_parser("attention", help="explicit causal attention, forward + backward")
    p.add_argument("--seq", type=positive, required=True)
    p.add_argument("--heads", type=positive, default=12)
    p.add_argument("--head-dim", type=positive, default=64)
    p.add_argument("--threads", type=positive, default=1)
    p.add_argument("--repeats", type=positive, default=5)
    p.add_argument("--warmup", type=non_negative, default=1)
    p = sub.add_parser("attention-memory", help="peak memory of one attention forward + backward")
    p.add_argument("--seq", type=positive, required=True)
    p.add_argument("--heads", type=positive, default=12)
    p.add_argument("--head-dim", type=positive, default=64)
    p.add_argument("--threads", type=positive, default=1)
    p = sub.add_parser("generate", help="greedy generation with a key/value cache")
    add_model_flags(p)
    p.add_argument("--prompt", type=positive, default=8)
    p.add_argument("--tokens", type=positive, default=200)
    p.add_argument("--runs", type=positive, default=3)
    p.add_argument("--warmup-runs", type=non_negative, default=1)
    args = parser.parse_args()  # exits with status 2 and a message on a bad flag
    if getattr(args, "dim", 0) % getattr(args, "heads", 1) != 0:
        parser.error(f"--dim {args.dim} is not divisible by --heads {args.heads}")
    commands = {"info": cmd_info, "train": cmd_train, "attention": cmd_attention,
                "attention-memory": cmd_attention_memory, "generate": cmd_generate}
    print(json.dumps(commands[args.command](args)))


if __name__ == "__main__":
    main()
