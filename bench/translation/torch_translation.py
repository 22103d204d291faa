#!/usr/bin/python3
"""The PyTorch side of bench/translation (issue 13): Marian's encoder-decoder (SPEC section 4)
written in plain PyTorch, trained with qkv's recipe and decoded with the fastest incremental
decoding PyTorch offers, so that run.sh can put qkv next to it.

  train      --model-dir QKV_DIR --train T.tsv --valid V.tsv --out OUT --seconds S [recipe]
  translate  --model-dir DIR --input SRC --output OUT [--beam K] [--batch N] [--threads T]
  loss       --model-dir DIR --pairs P.tsv   the unsmoothed mean label loss (= qkv eval --pairs)
  selftest   the nn.Module against tests/model_reference/check_marian.py, and the cached
             decoder against recomputing the whole decoder at every step

Every subcommand prints one JSON line on stdout. The model directory is Hugging Face's
MarianMTModel layout as qkv writes it (config.json, model.safetensors, source.spm, target.spm,
vocab.json), so qkv reads what this script trains and this script reads what qkv trains.
Ids (tokenizer/sentencepiece_trainer.h): the SentencePiece model has </s> 0 and <unk> 1 and
no <s>/<pad>, so its ids are the model's ids; <pad> = pieces = vocab_size - 1, which is also
the decoder's start token.

The recipe is qkv's, so that only the engine differs: token-count batches
(train/pair_batches.h; only the shuffle's random stream differs), label smoothing as
F.cross_entropy's, AdamW with decay on matrices only, global-norm clipping, warmup then inverse
square root (train/lr_schedule.h), Normal(0, 0.02) init. From the same starting weights
(train --init-from) and one batch per epoch, no dropout, qkv train and this script give the
same loss at every step; decoding gives qkv translate's output token for token.
"""
import argparse
import json
import math
import os
import pathlib
import random
import shutil
import sys
import time


def threads_flag(argv):
    """The value of --threads N / --threads=N on the command line (default 1)."""
    for i, arg in enumerate(argv):
        if arg.startswith("--threads="):
            return arg.split("=", 1)[1]
        if arg == "--threads" and i + 1 < len(argv):
            return argv[i + 1]
    return "1"


# Debian's torch does its matrix products in OpenBLAS (pthreads), which starts one thread per
# core when it loads whatever torch.set_num_threads says later: --threads must reach it first.
# Its threads and torch's OpenMP threads take turns on the same cores; OpenMP's spin-waiting
# between parallel regions starves OpenBLAS (on 2 cores, width 256: --threads 2 trained 1.4x
# slower than --threads 1 with spinning, 1.5x faster with OMP_WAIT_POLICY=PASSIVE), so OpenMP
# threads sleep when idle unless the caller says otherwise.
os.environ["OPENBLAS_NUM_THREADS"] = os.environ["OMP_NUM_THREADS"] = threads_flag(sys.argv)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import sentencepiece  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "tests" / "model_reference"))
from check_marian import ACTIVATIONS, marian_sinusoidal  # noqa: E402
from check_model import read_safetensors, write_safetensors  # noqa: E402

EOS = 0
IGNORE = -100
NEG_INF = float("-inf")
# The config.json keys that define the model (the rest are generation or training settings).
ARCHITECTURE = ("vocab_size", "d_model", "encoder_layers", "decoder_layers",
                "encoder_attention_heads", "decoder_attention_heads", "encoder_ffn_dim",
                "decoder_ffn_dim", "max_position_embeddings", "activation_function",
                "scale_embedding", "normalize_before", "position_encoding", "pad_token_id")
WINDOW_BATCHES = 32  # qkv translate sorts by length within windows of 32 batches


# ---------------------------------------------------------------------------------------------
# The model. Module names are MarianMTModel's state-dict names, so the state dict is the file.


class Attention(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads, self.head_dim = heads, d // heads
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(d, d) for _ in range(4))

    def split(self, x):  # (B, T, d) -> (B, H, T, dh)
        return x.view(x.shape[0], x.shape[1], self.heads, self.head_dim).transpose(1, 2)

    def query(self, h):
        return self.split(self.q_proj(h) * self.head_dim ** -0.5)

    def keys_values(self, kv):
        return self.split(self.k_proj(kv)), self.split(self.v_proj(kv))

    def attend(self, q, k, v, bias):
        """q (.., T, dh) against k, v (.., S, dh); bias broadcasts to the scores: 0 or a very
        negative number at masked keys (modeling_marian adds finfo.min)."""
        scores = q @ k.transpose(-1, -2)
        scores = scores if bias is None else scores + bias
        return scores.softmax(-1).to(v.dtype) @ v

    def merge(self, out):  # (B, H, T, dh) -> (B, T, d)
        return self.out_proj(out.transpose(1, 2).reshape(out.shape[0], out.shape[2], -1))

    def forward(self, h, kv, bias):
        return self.merge(self.attend(self.query(h), *self.keys_values(kv), bias))


class Layer(nn.Module):
    def __init__(self, config, cross):
        super().__init__()
        d, f = config["d_model"], config["encoder_ffn_dim"]
        self.pre_norm = config.get("normalize_before", False)
        self.act = ACTIVATIONS[config["activation_function"]]
        self.dropout = nn.Dropout(config.get("dropout", 0.0))
        self.self_attn = Attention(d, config["encoder_attention_heads"])
        self.self_attn_layer_norm = nn.LayerNorm(d)
        if cross:
            self.encoder_attn = Attention(d, config["encoder_attention_heads"])
            self.encoder_attn_layer_norm = nn.LayerNorm(d)
        self.fc1, self.fc2 = nn.Linear(d, f), nn.Linear(f, d)
        self.final_layer_norm = nn.LayerNorm(d)

    def sublayer(self, norm, x, function):
        # Dropout on every branch output, as MarianEncoderLayer (attention/activation dropout 0).
        if self.pre_norm:
            return x + self.dropout(function(norm(x)))
        return norm(x + self.dropout(function(x)))

    def ffn(self, x):
        return self.sublayer(self.final_layer_norm, x, lambda h: self.fc2(self.act(self.fc1(h))))


class Stack(nn.Module):
    def __init__(self, config, decoder):
        super().__init__()
        self.layers = nn.ModuleList(Layer(config, decoder) for _ in range(
            config["decoder_layers" if decoder else "encoder_layers"]))
        if config.get("normalize_before", False):
            self.layer_norm = nn.LayerNorm(config["d_model"])
        if config.get("position_encoding", "sinusoidal") == "learned":
            self.embed_positions = nn.Embedding(config["max_position_embeddings"],
                                                config["d_model"])


class MarianCore(nn.Module):  # "model." in the state dict
    def __init__(self, config):
        super().__init__()
        self.shared = nn.Embedding(config["vocab_size"], config["d_model"])
        self.encoder, self.decoder = Stack(config, False), Stack(config, True)


class Marian(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.pad = config["pad_token_id"]
        self.scale = math.sqrt(config["d_model"]) if config.get("scale_embedding") else 1.0
        self.positions = config.get("position_encoding", "sinusoidal")
        self.pre_norm = config.get("normalize_before", False)
        self.model = MarianCore(config)
        # A buffer in transformers; qkv trains it (zeros at the start, no weight decay).
        self.final_logits_bias = nn.Parameter(torch.zeros(1, config["vocab_size"]))
        table = marian_sinusoidal(config["max_position_embeddings"], config["d_model"])
        self.register_buffer("sinusoidal", table, persistent=False)
        self.dropout = nn.Dropout(config.get("dropout", 0.0))

    def init_weights(self, generator):
        """qkv's InitializeParameters: Normal(0, 0.02) for matrices, the embedding and learned
        tables; zeros for biases and final_logits_bias; ones for norm gains."""
        with torch.no_grad():
            for name, p in self.named_parameters():
                if "layer_norm" in name:
                    p.fill_(1.0 if name.endswith("weight") else 0.0)
                elif p.dim() == 2 and name != "final_logits_bias":
                    p.normal_(0.0, 0.02, generator=generator)
                else:
                    p.zero_()

    def embed(self, stack, ids, start=0):
        x = self.model.shared(ids) * self.scale
        end = start + ids.shape[1]
        if self.positions == "sinusoidal":
            x = x + self.sinusoidal[start:end]
        elif self.positions == "learned":
            x = x + stack.embed_positions.weight[start:end]
        return self.dropout(x)

    def padding_bias(self, source, dtype):  # (B, 1, 1, S)
        return ((source == self.pad).to(dtype) * torch.finfo(dtype).min)[:, None, None, :]

    def encode(self, source):
        """(memory (B, S, d), padding bias); source padded with pad after its </s>."""
        bias = self.padding_bias(source, torch.float32)
        x = self.embed(self.model.encoder, source)
        for layer in self.model.encoder.layers:
            x = layer.sublayer(layer.self_attn_layer_norm, x, lambda h: layer.self_attn(h, h, bias))
            x = layer.ffn(x)
        if self.pre_norm:
            x = self.model.encoder.layer_norm(x)
        return x, bias

    def head(self, y):
        if self.pre_norm:
            y = self.model.decoder.layer_norm(y)
        return y @ self.model.shared.weight.T + self.final_logits_bias[0]

    def forward(self, source, decoder_input):
        """Teacher forcing: logits (B, T, V). The decoder gets the causal mask only (decoder
        inputs after a pair's end are padding whose labels are ignored)."""
        memory, bias = self.encode(source)
        t = decoder_input.shape[1]
        causal = torch.full((t, t), torch.finfo(torch.float32).min).triu(1)
        y = self.embed(self.model.decoder, decoder_input)
        for layer in self.model.decoder.layers:
            y = layer.sublayer(layer.self_attn_layer_norm, y,
                               lambda h: layer.self_attn(h, h, causal))
            y = layer.sublayer(layer.encoder_attn_layer_norm, y,
                               lambda h: layer.encoder_attn(h, memory, bias))
            y = layer.ffn(y)
        return self.head(y)


def load_model_dir(directory, config=None):
    """(config, model) of a Marian directory; config: its config.json changed (dropout)."""
    directory = pathlib.Path(directory)
    config = config or json.loads((directory / "config.json").read_text())
    model = Marian(config)
    tensors = read_safetensors(directory / "model.safetensors")
    state = {n: t.float() for n, t in tensors.items()}
    if "final_logits_bias" not in state:
        state["final_logits_bias"] = torch.zeros(1, config["vocab_size"])
    wanted = model.state_dict()
    missing = sorted(set(wanted) - set(state))
    if missing:
        sys.exit(f"{directory}/model.safetensors lacks {missing}")
    # Tied copies (lm_head, embed_tokens) and stored sinusoidal tables are recomputed here.
    model.load_state_dict({n: state[n] for n in wanted})
    return config, model


def save_model_dir(model, config, source_dir, out):
    """MarianMTModel's files, config.json as qkv wrote it with this model's sizes."""
    out.mkdir(parents=True, exist_ok=True)
    tensors = {n: t.detach().float().contiguous() for n, t in model.state_dict().items()}
    if model.positions == "sinusoidal":  # qkv writes the fixed tables, as transformers 4.x did
        for stack in ("encoder", "decoder"):
            tensors[f"model.{stack}.embed_positions.weight"] = model.sinusoidal.clone()
    write_safetensors(out / "model.safetensors", tensors, metadata={"format": "pt"})
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    for name in ("source.spm", "target.spm", "vocab.json"):
        shutil.copyfile(source_dir / name, out / name)


# ---------------------------------------------------------------------------------------------
# Data: qkv's ids and token-count batches (train/pair_batches.h).


def read_pairs(path):
    pairs = []
    text = pathlib.Path(path).read_text(encoding="utf-8-sig")
    for number, line in enumerate(text.split("\n")[:-1] if text.endswith("\n")
                                  else text.split("\n"), 1):
        fields = line.removesuffix("\r").split("\t")
        if len(fields) != 2 or not fields[0] or not fields[1]:
            sys.exit(f"{path}:{number}: want source<TAB>target")
        pairs.append(fields)
    return pairs


def tokenize(processor, pairs, max_positions, batch_tokens):
    """[(source + </s>, target)], leaving out pairs that do not fit, as qkv train does."""
    kept, dropped = [], 0
    for source, target in pairs:
        s, t = processor.encode(source) + [EOS], processor.encode(target)
        if max(len(s), len(t) + 1) > min(max_positions, batch_tokens):
            dropped += 1
            continue
        kept.append((s, t))
    return kept, dropped


def pair_tokens(pair):
    return max(len(pair[0]), len(pair[1]) + 1)


def plan_batches(pairs, max_tokens):
    """Sorted by (source length, target length), stably; cut greedily while (B + 1) *
    max(PairTokens) <= max_tokens. The order of the batches is shuffled by the caller."""
    order = sorted(range(len(pairs)), key=lambda i: (len(pairs[i][0]), len(pairs[i][1])))
    batches, current, longest = [], [], 0
    for i in order:
        tokens = pair_tokens(pairs[i])
        if current and (len(current) + 1) * max(longest, tokens) > max_tokens:
            batches.append(current)
            current, longest = [], 0
        current.append(i)
        longest = max(longest, tokens)
    if current:
        batches.append(current)
    return batches


def build_batch(pairs, indices, pad):
    """source (B, S) padded; decoder_input [pad] + target; labels target + </s>, IGNORE."""
    rows = [pairs[i] for i in indices]
    s_len, t_len = max(len(s) for s, _ in rows), max(len(t) for _, t in rows) + 1
    source = torch.full((len(rows), s_len), pad, dtype=torch.long)
    decoder_input = torch.full((len(rows), t_len), pad, dtype=torch.long)
    labels = torch.full((len(rows), t_len), IGNORE, dtype=torch.long)
    for b, (s, t) in enumerate(rows):
        source[b, :len(s)] = torch.tensor(s)
        decoder_input[b, 1:len(t) + 1] = torch.tensor(t, dtype=torch.long)
        labels[b, :len(t) + 1] = torch.tensor(t + [EOS])
    return source, decoder_input, labels


def mean_label_loss(model, batches):
    """The unsmoothed cross-entropy per label token over every batch, in float32."""
    model.eval()
    total, count = 0.0, 0
    with torch.inference_mode():
        for source, decoder_input, labels in batches:
            logits = model(source, decoder_input)
            total += F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(),
                                     ignore_index=IGNORE, reduction="sum").double().item()
            count += int((labels != IGNORE).sum())
    return total / count, count


def learning_rate(step, a):
    """qkv's train/lr_schedule.h for a 0-based step: linear warmup to --lr, then inverse
    square root floored at --min-lr (or cosine to --min-lr at --steps)."""
    if step < a.warmup:
        return a.lr * (step + 1) / (a.warmup + 1)
    if a.lr_schedule == "inv-sqrt":
        return max(a.min_lr, a.lr * math.sqrt((a.warmup + 1) / (step + 1)))
    if step >= a.steps:
        return a.min_lr
    ratio = (step - a.warmup) / (a.steps - a.warmup)
    return a.min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (a.lr - a.min_lr)


def train(a):
    if a.lr_schedule == "cosine" and a.steps <= a.warmup:
        sys.exit("--lr-schedule cosine needs --steps (the end of its decay) above --warmup")
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    source_dir = pathlib.Path(a.model_dir)
    if source_dir.is_file():  # a config.json given directly: its directory holds the spm
        source_dir = source_dir.parent
    config = json.loads((source_dir / "config.json").read_text())
    processor = sentencepiece.SentencePieceProcessor(model_file=str(source_dir / "source.spm"))
    vocab = processor.get_piece_size() + 1
    for key, value in (("d_model", a.dim), ("encoder_layers", a.encoder_layers),
                       ("decoder_layers", a.decoder_layers), ("encoder_ffn_dim", a.ffn_dim),
                       ("decoder_ffn_dim", a.ffn_dim), ("max_position_embeddings",
                                                        a.max_positions), ("dropout", a.dropout),
                       ("encoder_attention_heads", a.heads), ("decoder_attention_heads", a.heads)):
        if value is not None:
            config[key] = value
    config["num_hidden_layers"] = config["encoder_layers"]
    config.update(vocab_size=vocab, decoder_vocab_size=vocab, pad_token_id=vocab - 1,
                  decoder_start_token_id=vocab - 1, eos_token_id=EOS)
    config.pop("qkv_training_step", None)  # qkv's own record of its run
    if "bad_words_ids" in config:
        config["bad_words_ids"] = [[vocab - 1]]
    pad, max_positions = vocab - 1, config["max_position_embeddings"]

    (train_pairs, train_dropped), (valid_pairs, valid_dropped) = (
        tokenize(processor, read_pairs(path), max_positions, a.batch_tokens)
        for path in (a.train, a.valid))
    # Every batch is built once: an epoch only reorders them (the plan itself is fixed).
    train_batches, valid_batches = ([build_batch(pairs, b, pad)
                                     for b in plan_batches(pairs, a.batch_tokens)]
                                    for pairs in (train_pairs, valid_pairs))

    if a.init_from:  # the same starting weights as another run (qkv's, e.g.): no init
        start = json.loads((pathlib.Path(a.init_from) / "config.json").read_text())
        differing = [key for key in ARCHITECTURE if start.get(key) != config.get(key)]
        if differing:
            sys.exit(f"--init-from {a.init_from}: its config.json differs in {differing}")
        config, model = load_model_dir(a.init_from, config)
    else:
        model = Marian(config)
        model.init_weights(torch.Generator().manual_seed(a.seed))
    # Weight decay on the matrices (embedding, projections, learned tables), as qkv's
    # ParameterInfo::decayed; not on biases, norms or final_logits_bias.
    decayed = {n for n, p in model.named_parameters() if p.dim() == 2 and n != "final_logits_bias"}
    groups = [{"params": [p for n, p in model.named_parameters() if (n in decayed) == decay],
               "weight_decay": a.weight_decay if decay else 0.0} for decay in (True, False)]
    optimizer = torch.optim.AdamW(groups, lr=a.lr, betas=(a.beta1, a.beta2), eps=1e-8,
                                  foreach=True)
    shuffle = random.Random(a.seed)
    model.train()
    step, elapsed, last, tokens, epoch, order, losses = 0, 0.0, 0.0, 0, 0, [], [float("nan")]
    # Stop before a step that would, at the last step's duration, end past the budget.
    while elapsed + last <= a.seconds and (a.steps == 0 or step < a.steps):
        if not order:
            order = list(range(len(train_batches)))
            shuffle.shuffle(order)
            epoch += 1
        source, decoder_input, labels = train_batches[order.pop()]
        begin = time.perf_counter()
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, a)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.bf16):
            logits = model(source, decoder_input)
        loss = F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(),
                               ignore_index=IGNORE, label_smoothing=a.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if a.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), a.grad_clip)
        optimizer.step()
        losses.append(loss.item())
        last = time.perf_counter() - begin
        elapsed += last
        tokens += int((labels != IGNORE).sum())
        step += 1
    valid_loss, valid_tokens = mean_label_loss(model, valid_batches)
    out = pathlib.Path(a.out)
    save_model_dir(model, config, source_dir, out)
    report = {"side": "torch", "steps": step, "epochs": epoch, "seconds": round(elapsed, 3),
              "target_tokens": tokens, "tokens_per_s": round(tokens / max(elapsed, 1e-9), 1),
              "final_train_loss": losses[-1], "valid_loss": valid_loss,
              "valid_tokens": valid_tokens, "train_pairs": len(train_pairs),
              "train_dropped": train_dropped, "valid_pairs": len(valid_pairs),
              "valid_dropped": valid_dropped, "batches": len(train_batches),
              "threads": a.threads, "precision": "bf16" if a.bf16 else "fp32",
              "parameters": sum(p.numel() for p in model.parameters()),
              "torch": torch.__version__}
    print(json.dumps(report), flush=True)
    report["losses"] = losses[1:]  # the (smoothed) training loss of every step
    (out / "torch_train.json").write_text(json.dumps(report) + "\n")


def loss_command(a):
    torch.set_num_threads(a.threads)
    config, model = load_model_dir(a.model_dir)
    processor = sentencepiece.SentencePieceProcessor(
        model_file=str(pathlib.Path(a.model_dir) / "source.spm"))
    pairs, dropped = tokenize(processor, read_pairs(a.pairs), config["max_position_embeddings"],
                              10 ** 9)
    batches = [build_batch(pairs, b, config["pad_token_id"]) for b in plan_batches(pairs, 4096)]
    loss, tokens = mean_label_loss(model, batches)
    print(json.dumps({"loss": loss, "perplexity": math.exp(loss), "tokens": tokens,
                      "pairs": len(pairs), "dropped": dropped}), flush=True)


# ---------------------------------------------------------------------------------------------
# Decoding. A stepper gives the next-token logits of every live hypothesis row; rows are
# grouped K per source (beam), and select() keeps / reorders rows and sources.


class CachedStepper:
    """The encoder once; each decoder layer's cross-attention keys/values once per batch (per
    source, shared by its K beams); the self-attention keys/values in preallocated buffers
    written one position per step."""

    def __init__(self, model, source, beam, max_length):
        self.model, self.beam = model, beam
        memory, bias = model.encode(source)
        self.bias = bias  # (B, 1, 1, S)
        layers = model.model.decoder.layers
        self.cross = [layer.encoder_attn.keys_values(memory) for layer in layers]
        rows, heads = source.shape[0] * beam, model.config["encoder_attention_heads"]
        shape = (rows, heads, max_length, model.config["d_model"] // heads)
        self.cache = [(memory.new_empty(shape), memory.new_empty(shape)) for _ in layers]

    def logits(self, tokens, position):
        model, n = self.model, tokens.shape[0]
        y = model.embed(model.model.decoder, tokens[:, None], position)  # (N, 1, d)
        for layer, (k_cache, v_cache), (cross_k, cross_v) in zip(
                model.model.decoder.layers, self.cache, self.cross):
            def self_attention(h):
                k, v = layer.self_attn.keys_values(h)
                k_cache[:, :, position:position + 1] = k
                v_cache[:, :, position:position + 1] = v
                return layer.self_attn.merge(layer.self_attn.attend(
                    layer.self_attn.query(h), k_cache[:, :, :position + 1],
                    v_cache[:, :, :position + 1], None))

            def cross_attention(h):
                # A source's K beams are K queries against its keys: (N, H, 1, dh) ->
                # (B, H, K, dh), so the keys are never repeated or broadcast-copied.
                q = layer.encoder_attn.query(h)
                heads, head_dim = q.shape[1], q.shape[3]
                q = q.view(-1, self.beam, heads, head_dim).transpose(1, 2)
                out = layer.encoder_attn.attend(q, cross_k, cross_v, self.bias)
                return layer.encoder_attn.merge(out.transpose(1, 2).reshape(n, heads, 1, head_dim))

            y = layer.sublayer(layer.self_attn_layer_norm, y, self_attention)
            y = layer.sublayer(layer.encoder_attn_layer_norm, y, cross_attention)
            y = layer.ffn(y)
        return model.head(y)[:, 0].float()

    def select(self, rows, sources, length):
        """Row i takes old row rows[i]'s first `length` cache positions; sources: the old
        source indices kept (finished ones stop costing anything)."""
        if sources is not None:
            self.bias = self.bias.index_select(0, sources)
            self.cross = [(k.index_select(0, sources), v.index_select(0, sources))
                          for k, v in self.cross]
        if rows.shape[0] == self.cache[0][0].shape[0] and torch.equal(
                rows, torch.arange(rows.shape[0])):
            return

        def take(buffer):  # copies only the positions written so far
            out = buffer if rows.shape[0] == buffer.shape[0] else \
                buffer.new_empty((rows.shape[0],) + buffer.shape[1:])
            out[:, :, :length] = buffer[:, :, :length].index_select(0, rows)
            return out
        self.cache = [(take(k), take(v)) for k, v in self.cache]


class RecomputeStepper:
    """No cache: the whole model over each row's whole prefix at every step (the oracle)."""

    def __init__(self, model, source, beam, max_length):
        self.model, self.source = model, source.repeat_interleave(beam, 0)
        self.prefix = torch.full((self.source.shape[0], 0), 0, dtype=torch.long)

    def logits(self, tokens, position):
        self.prefix = torch.cat([self.prefix, tokens[:, None]], 1)
        return self.model(self.source, self.prefix)[:, -1].float()

    def select(self, rows, sources, length):
        self.source, self.prefix = self.source[rows], self.prefix[rows]


def step_log_probs(logits, pad, force_eos):
    """qkv's StepLogProbs: pad masked, log-softmax over the rest in double; at the last
    position only </s> (log-probability 0)."""
    if force_eos:
        out = torch.full(logits.shape, NEG_INF, dtype=torch.float64)
        out[:, EOS] = 0.0
        return out
    logits = logits.double()
    logits[:, pad] = NEG_INF
    return logits.log_softmax(-1)


def greedy(model, source, max_length, stepper_class):
    """Beam 1 without beam bookkeeping: argmax (lowest id on ties, as qkv's top-2 rule)."""
    pad, count = model.pad, source.shape[0]
    stepper = stepper_class(model, source, 1, max_length)
    alive = torch.arange(count)  # the input row of each live row
    tokens = torch.full((count,), pad, dtype=torch.long)
    results = [None] * count
    history = torch.zeros((count, 0), dtype=torch.long)
    for position in range(max_length - 1):
        logits = stepper.logits(tokens, position)
        if position + 2 == max_length:
            tokens = torch.full((alive.shape[0],), EOS, dtype=torch.long)
        else:
            logits[:, pad] = NEG_INF
            tokens = logits.argmax(-1)
        finished = tokens == EOS
        for row in finished.nonzero().flatten().tolist():
            results[alive[row].item()] = history[row].tolist()
        if finished.all():
            break
        if finished.any():
            keep = (~finished).nonzero().flatten()
            stepper.select(keep, keep, position + 1)
            alive, tokens, history = alive[keep], tokens[keep], history[keep]
        history = torch.cat([history, tokens[:, None]], 1)
    return results


def beam_search(model, source, beam, max_length, length_penalty, stepper_class):
    """qkv's infer/translator.cc, vectorised over sources: the 2K best (score, beam, token)
    per source as topk over (K, V); an </s> among the first K ranks finishes a hypothesis
    with score / length^A; the first K others continue; a source is done with K finished."""
    pad, vocab, count = model.pad, model.config["vocab_size"], source.shape[0]
    stepper = stepper_class(model, source, beam, max_length)
    alive = torch.arange(count)
    scores = torch.full((count, beam), NEG_INF, dtype=torch.float64)
    scores[:, 0] = 0.0  # one live beam at first, not K copies of it
    tokens = torch.full((count * beam,), pad, dtype=torch.long)
    history = torch.zeros((count * beam, 0), dtype=torch.long)
    finished = [[] for _ in range(count)]  # (score, tokens), the best K
    ranks = torch.arange(2 * beam)
    for position in range(max_length - 1):
        logits = stepper.logits(tokens, position)
        log_probs = step_log_probs(logits, pad, position + 2 == max_length)
        candidates = (scores.flatten()[:, None] + log_probs).view(alive.shape[0], -1)
        top_scores, top_index = candidates.topk(2 * beam, dim=1)
        parent, token = top_index // vocab, top_index % vocab
        live = top_scores > NEG_INF
        is_eos = (token == EOS) & live
        for b, r in (is_eos & (ranks < beam)).nonzero().tolist():
            row = b * beam + parent[b, r].item()
            length = position + 1  # generated tokens including </s>
            best = finished[alive[b].item()]
            best.append((top_scores[b, r].item() / length ** length_penalty,
                         history[row].tolist()))
            best.sort(key=lambda h: -h[0])  # stable: an earlier one wins a tie
            del best[beam:]
        # The first K continuing candidates of each source in rank order (fewer: dead beams).
        go = live & ~is_eos
        pick = torch.where(go, ranks, ranks + 2 * beam).argsort(1)[:, :beam]
        next_live = go.gather(1, pick)
        done = torch.tensor([len(finished[s]) >= beam for s in alive.tolist()]) | \
            ~next_live.any(1)
        if done.all():
            break
        keep = (~done).nonzero().flatten()
        pick, next_live = pick[keep], next_live[keep]
        rows = (keep[:, None] * beam + parent[keep].gather(1, pick)).flatten()
        tokens = torch.where(next_live, token[keep].gather(1, pick), pad).flatten()
        scores = torch.where(next_live, top_scores[keep].gather(1, pick), NEG_INF)
        stepper.select(rows, keep if done.any() else None, position + 1)
        history = torch.cat([history[rows], tokens[:, None]], 1)
        alive = alive[keep]
    return [best[0][1] for best in finished]


def pad_sources(model, sources):
    source = torch.full((len(sources), max(map(len, sources))), model.pad, dtype=torch.long)
    for b, ids in enumerate(sources):
        source[b, :len(ids)] = torch.tensor(ids)
    return source


def translate_ids(model, sources, beam, max_length, length_penalty, stepper=CachedStepper):
    """sources: lists of ids ending with </s> -> generated ids without </s>, in order."""
    source = pad_sources(model, sources)
    if beam == 1:
        return greedy(model, source, max_length, stepper)
    return beam_search(model, source, beam, max_length, length_penalty, stepper)


def translate_command(a):
    torch.set_num_threads(a.threads)
    config, model = load_model_dir(a.model_dir)
    model.eval()
    processor = sentencepiece.SentencePieceProcessor(
        model_file=str(pathlib.Path(a.model_dir) / "source.spm"))
    positions = config["max_position_embeddings"]
    max_length = a.max_length or positions
    if not 2 <= max_length <= positions:
        sys.exit(f"--max-length {a.max_length}: want 2..{positions} (it counts the start token)")
    lines = pathlib.Path(a.input).read_text(encoding="utf-8").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    lines = [line.removesuffix("\r") for line in lines]
    sources = [processor.encode(line) + [EOS] if line else None for line in lines]
    for number, ids in enumerate(sources, 1):
        if ids is not None and len(ids) > positions:
            sys.exit(f"{a.input}:{number}: the source is {len(ids)} tokens (with </s>), longer "
                     f"than the model's {positions} positions")
    outputs, generated = [""] * len(lines), 0
    precision = torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.bf16)
    begin = time.perf_counter()
    with torch.inference_mode(), precision:
        # As qkv translate: windows of 32 batches, sorted by source length inside each.
        window = WINDOW_BATCHES * a.batch
        for start in range(0, len(lines), window):
            indices = [i for i in range(start, min(start + window, len(lines))) if sources[i]]
            indices.sort(key=lambda i: len(sources[i]))
            for b in range(0, len(indices), a.batch):
                chunk = indices[b:b + a.batch]
                results = translate_ids(model, [sources[i] for i in chunk], a.beam, max_length,
                                        a.length_penalty)
                for i, ids in zip(chunk, results):
                    generated += len(ids) + 1
                    outputs[i] = processor.decode(ids).replace("\n", " ").replace("\r", " ")
    seconds = time.perf_counter() - begin
    pathlib.Path(a.output).write_text("".join(line + "\n" for line in outputs), encoding="utf-8")
    print(json.dumps({"side": "torch", "sentences": sum(s is not None for s in sources),
                      "generated_tokens": generated, "seconds": round(seconds, 4),
                      "tokens_per_s": round(generated / max(seconds, 1e-9), 1),
                      "threads": a.threads, "beam": a.beam, "batch": a.batch,
                      "precision": "bf16" if a.bf16 else "fp32"}), flush=True)


# ---------------------------------------------------------------------------------------------


def selftest(a):
    import check_marian
    torch.set_num_threads(a.threads)
    failures, rows = [], []

    def check(name, ok, detail):
        rows.append(f"{'ok  ' if ok else 'FAIL'} {name}: {detail}")
        if not ok:
            failures.append(name)

    cases = {"post_norm_relu": {},
             "pre_norm_learned_gelu": dict(normalize_before=True, position_encoding="learned",
                                           activation_function="gelu", scale_embedding=False)}
    for case, overrides in cases.items():
        config = check_marian.marian_config(**overrides, dropout=0.0)
        generator = torch.Generator().manual_seed(7)
        state = check_marian.random_marian(config, generator, "new")
        model = Marian(config)
        model.load_state_dict(state)
        model.eval()
        source, decoder_input, _ = check_marian.padded_batch(config, generator)
        source, decoder_input = source.long(), decoder_input.long()
        with torch.no_grad():
            reference = check_marian.marian_logits(config, {n: t.double() for n, t in
                                                            state.items()}, source, decoder_input)
            ours64 = model.double()(source, decoder_input)
            ours32 = model.float()(source, decoder_input)
        scale = reference.abs().max().item()
        err64 = (ours64 - reference).abs().max().item() / scale
        err32 = (ours32.double() - reference).abs().max().item() / scale
        check(f"{case} logits == marian_logits (f64)", err64 <= 1e-12, f"rel {err64:.1e}")
        check(f"{case} logits == marian_logits (f32)", err32 <= 1e-5, f"rel {err32:.1e}")

        # Decoding in double so that no near-tie flips between the two computations. A random
        # model emits </s> always or never; the bias on it that gives the most different output
        # lengths in both greedy and beam 3 lets the test see hypotheses end at many steps.
        model.double()
        sources = [torch.randint(2, config["vocab_size"] - 1, (n,), generator=generator).tolist()
                   + [EOS] for n in (1, 6, 3, 9, 4, 2, 7, 5)]
        base, spread = model.final_logits_bias[0, EOS].item(), {}
        with torch.inference_mode():
            for bias in np.linspace(-1.0, 1.0, 21):
                model.final_logits_bias[0, EOS] = base + bias
                counts = [len({len(t) for t in translate_ids(model, sources, k, 12, 1.0)})
                          for k in (1, 3)]
                spread[bias] = (min(counts), sum(counts))
            model.final_logits_bias[0, EOS] = base + max(spread, key=spread.get)
        for beam, penalty, max_length in ((1, 1.0, 12), (3, 1.0, 12), (4, 0.6, 8), (2, 2.0, 5)):
            with torch.inference_mode():
                cached = translate_ids(model, sources, beam, max_length, penalty)
                recomputed = translate_ids(model, sources, beam, max_length, penalty,
                                           RecomputeStepper)
                alone = [translate_ids(model, [s], beam, max_length, penalty)[0]
                         for s in sources]
                general = (beam_search(model, pad_sources(model, sources), 1, max_length,
                                       penalty, CachedStepper) if beam == 1 else cached)
            lengths = sorted({len(t) for t in cached})
            check(f"{case} beam {beam} A={penalty} max {max_length}: cache == recompute",
                  cached == recomputed, f"output lengths {lengths}")
            check(f"{case} beam {beam}: batch of 8 == one at a time", cached == alone, "")
            if beam == 1:
                check(f"{case} greedy == beam search with K=1", cached == general, "")
    print("\n".join(rows), file=sys.stderr)
    print(json.dumps({"selftest": "pass" if not failures else "fail", "checks": len(rows),
                      "failures": failures}), flush=True)
    return 1 if failures else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    t = commands.add_parser("train", help="train for --seconds with qkv's recipe")
    t.add_argument("--model-dir", required=True,
                   help="a qkv encoder-decoder directory (or its config.json): architecture "
                        "defaults and source.spm")
    t.add_argument("--train", required=True)
    t.add_argument("--valid", required=True)
    t.add_argument("--out", required=True)
    t.add_argument("--seconds", type=float, required=True)
    t.add_argument("--steps", type=int, default=0, help="also stop after N steps (0: no limit)")
    t.add_argument("--threads", type=int, default=1)
    t.add_argument("--bf16", action="store_true")
    for flag in ("--dim", "--heads", "--encoder-layers", "--decoder-layers", "--ffn-dim",
                 "--max-positions"):
        t.add_argument(flag, type=int, help="default: the --model-dir config.json's")
    t.add_argument("--dropout", type=float)
    t.add_argument("--init-from", help="start from this Marian directory's weights and model")
    for flag, kind, default in (
            ("--batch-tokens", int, 4096), ("--label-smoothing", float, 0.1),
            ("--lr", float, 1e-3), ("--min-lr", float, 1e-4), ("--warmup", int, 100),
            ("--weight-decay", float, 0.1), ("--beta1", float, 0.9), ("--beta2", float, 0.98),
            ("--grad-clip", float, 1.0), ("--seed", int, 1337)):
        t.add_argument(flag, type=kind, default=default, help=f"default {default}")
    t.add_argument("--lr-schedule", choices=("inv-sqrt", "cosine"), default="inv-sqrt",
                   help="cosine decays to --min-lr at --steps, as qkv's cosine")
    r = commands.add_parser("translate", help="translate a file with the KV-cached decoder")
    e = commands.add_parser("loss", help="mean label cross-entropy (as qkv eval --pairs)")
    s = commands.add_parser("selftest", help="check the model and the decoders")
    for command, flags in ((r, ("--model-dir", "--input", "--output")),
                           (e, ("--model-dir", "--pairs"))):
        for flag in flags:
            command.add_argument(flag, required=True)
    for flag, default in (("--beam", 1), ("--batch", 1), ("--max-length", 0)):
        r.add_argument(flag, type=int, default=default, help=f"default {default}" + (
            " (the model's positions; it counts the start token)" if default == 0 else ""))
    r.add_argument("--length-penalty", type=float, default=1.0)
    r.add_argument("--bf16", action="store_true")
    for command in (r, e, s):
        command.add_argument("--threads", type=int, default=1)
    a = parser.parse_args()
    if a.command == "translate" and (a.beam < 1 or a.batch < 1):
        parser.error("--beam and --batch must be at least 1")
    return {"train": train, "translate": translate_command, "loss": loss_command,
            "selftest": selftest}[a.command](a)


if __name__ == "__main__":
    sys.exit(main())
