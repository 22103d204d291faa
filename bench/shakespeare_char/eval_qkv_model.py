#!/usr/bin/env python3
"""Evaluate a qkv-trained model directory with the PyTorch reference model (a diagnostic).

Loads DIR/model.safetensors (Hugging Face GPT-2 layout: Conv1D weights stored (in, out)) into
nanogpt_reference.GPT and reports, with PyTorch doing the arithmetic:
  * the validation loss over the same --eval-batches random batches nanogpt_reference.py uses
    (same generator seed), so a qkv model and a PyTorch model are scored on identical windows;
  * the loss over every non-overlapping window of context+1 tokens of the validation split
    (no sampling noise at all; nanogpt_reference.py reports the same for its own model).

  /usr/bin/python3 bench/shakespeare_char/eval_qkv_model.py --model DIR --data FILE
"""

import argparse
import json
import os
import struct
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nanogpt_reference import GPT, estimate_val_loss, full_val_loss  # noqa: E402

CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", (name, info["dtype"])
        begin, end = info["data_offsets"]
        out[name] = torch.frombuffer(bytearray(data[begin:end]), dtype=torch.float32).view(info["shape"])
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="qkv model directory")
    p.add_argument("--data", required=True)
    p.add_argument("--eval-batches", type=int, default=200)
    p.add_argument("--batch", type=int, default=12)
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    config = json.load(open(os.path.join(args.model, "config.json")))
    layers, heads, width, context = config["n_layer"], config["n_head"], config["n_embd"], config["n_positions"]
    args.context = context
    text = open(args.data, encoding="utf-8").read()
    chars = sorted(set(text))
    assert chars == config["tokenizer"]["characters"], "the model's characters differ from the data's"
    stoi = {c: i for i, c in enumerate(chars)}
    ids = torch.tensor([stoi[c] for c in text], dtype=torch.long)
    val = ids[int(0.9 * len(ids)):]

    model = GPT(len(chars), layers, heads, width, context)
    tensors = read_safetensors(os.path.join(args.model, "model.safetensors"))
    state = {}
    for name, t in tensors.items():
        name = name[len("transformer."):] if name.startswith("transformer.") else name
        if name.endswith(CONV1D):
            t = t.t().contiguous()
        state[name] = t
    state["lm_head.weight"] = state["wte.weight"]
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [m for m in missing if not m.endswith("attn.mask")]
    assert not missing and not unexpected, (missing, unexpected)

    result = {
        "model": args.model,
        "val_loss_same_batches_as_reference": estimate_val_loss(model, val, args),
        "val_loss_all_windows": full_val_loss(model, val, context),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
