#!/usr/bin/python3
"""The PyTorch half of the reference comparison.

Runs qkv_reference_cases, which writes one safetensors file per case (inputs, parameters,
qkv's outputs and gradients, and the op's settings as metadata). For each case this script
rebuilds the same op in PyTorch from the same inputs, runs forward and backward with the same
upstream gradient, and compares every output and gradient. The error measure is
max|qkv - torch| / max|torch| over each tensor. Exits 1 if any tensor exceeds its tolerance or
any case has no PyTorch check; prints one line per tensor.
"""
import argparse
import importlib
import json
import os
import pathlib
import struct
import subprocess
import sys

import numpy as np
import torch

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
DEFAULT_TOLERANCE = 1e-5
DTYPES = {"F32": np.float32, "I32": np.int32}


def read_safetensors(path):
    """A minimal safetensors reader (the safetensors package is not in Debian)."""
    data = pathlib.Path(path).read_bytes()
    (header_len,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + header_len])
    metadata = header.pop("__metadata__", {})
    base = 8 + header_len
    tensors = {}
    for name, entry in header.items():
        begin, end = entry["data_offsets"]
        array = np.frombuffer(data[base + begin:base + end], dtype=DTYPES[entry["dtype"]])
        tensors[name] = torch.from_numpy(array.reshape(entry["shape"]).copy())
    return tensors, metadata


def relative_error(actual, expected):
    actual = actual.double()
    expected = expected.double()
    scale = expected.abs().max().item() if expected.numel() else 0.0
    difference = (actual - expected).abs().max().item() if expected.numel() else 0.0
    return difference / max(scale, 1e-12)


def load_checks():
    """Every checks_*.py module contributes CHECKS = {op_name: function}."""
    checks = {}
    for module_path in sorted(HERE.glob("checks_*.py")):
        module = importlib.import_module(module_path.stem)
        for op, function in module.CHECKS.items():
            assert op not in checks, f"op {op} checked twice"
            checks[op] = function
    return checks


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runner", required=True, help="path of qkv_reference_cases")
    parser.add_argument("--work-dir", required=True, help="where the case files go")
    parser.add_argument("cases", nargs="*", help="cases to run (default: all)")
    args = parser.parse_args()

    torch.manual_seed(0)
    torch.set_num_threads(1)
    os.makedirs(args.work_dir, exist_ok=True)
    written = subprocess.run([args.runner, args.work_dir, *args.cases], check=True,
                             stdout=subprocess.PIPE, text=True).stdout.split()
    if not written:
        print("no cases were written", file=sys.stderr)
        return 1
    checks = load_checks()
    failures = 0
    worst = {}
    print(f"{'case':32} {'tensor':14} {'rel. error':>11}  tolerance")
    for case in written:
        tensors, metadata = read_safetensors(os.path.join(args.work_dir, case + ".safetensors"))
        op = metadata.get("op")
        if op not in checks:
            print(f"{case:32} no PyTorch check for op {op!r}")
            failures += 1
            continue
        expected = checks[op](tensors, metadata)
        if not expected:
            print(f"{case:32} the check compared nothing")
            failures += 1
            continue
        for name, (reference, tolerance) in expected.items():
            if name not in tensors:
                print(f"{case:32} {name:14} missing from qkv's output")
                failures += 1
                continue
            if tuple(tensors[name].shape) != tuple(reference.shape):
                print(f"{case:32} {name:14} shape {tuple(tensors[name].shape)} != "
                      f"{tuple(reference.shape)}")
                failures += 1
                continue
            error = relative_error(tensors[name], reference)
            tolerance = tolerance or DEFAULT_TOLERANCE
            ok = error <= tolerance
            failures += 0 if ok else 1
            worst[op] = max(worst.get(op, 0.0), error)
            print(f"{case:32} {name:14} {error:11.2e}  {tolerance:.0e} {'ok' if ok else 'FAIL'}")
    print("\nlargest relative error per op:")
    for op, error in sorted(worst.items()):
        print(f"  {op:24} {error:.2e}")
    print(f"\n{'FAILED' if failures else 'passed'}: {failures} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
