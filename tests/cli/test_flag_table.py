#!/usr/bin/python3
"""Every flag of every `qkv` subcommand, given bad values (SPEC.md §1: exit status 2 for a bad
flag or value, 1 for a runtime failure, each with a message that names the flag or the path).

The flags come from each subcommand's --help; the table below says, per flag, what kind of
value it takes, and the kind generates the bad values (negative, zero, past the maximum, past
2^64, NaN, inf, empty, not a number, a directory for a file, a missing file, a file for a
directory, an output nobody may write). A flag in --help that the table does not cover fails
the test, so no flag is added without its bad values. Each case runs the subcommand with
otherwise valid arguments (tiny models trained at the start, a small text) and the one bad
value, under a timeout, and fails on a signal, a sanitizer report, an uncaught exception, a
hang, the wrong exit status, or a message that does not name the flag.

Usage: test_flag_table.py QKV_BINARY
"""
import concurrent.futures
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

QKV = os.path.abspath(sys.argv[1])
# Generous for the sanitizer build on a loaded machine; a case normally takes milliseconds.
TIMEOUT_S = 30
# What a crash or an escaped exception leaves on stderr.
CRASH_MARKERS = ["runtime error:", "AddressSanitizer", "LeakSanitizer", "ThreadSanitizer",
                 "UndefinedBehaviorSanitizer", "terminate called", "what():", "unexpected error",
                 "Segmentation fault", "core dumped", "Aborted"]

WORK = tempfile.mkdtemp(prefix="qkv_flag_table_")
DATA = os.path.join(WORK, "data.txt")
SMALL = os.path.join(WORK, "small.txt")  # fewer tokens than one window
EMPTY = os.path.join(WORK, "empty.txt")
ALIEN = os.path.join(WORK, "alien.txt")  # characters the char tokenizer has never seen
GARBAGE = os.path.join(WORK, "garbage.bin")
A_DIR = os.path.join(WORK, "a_dir")
EMPTY_DIR = os.path.join(WORK, "empty_dir")
BROKEN_MODEL = os.path.join(WORK, "broken_model")  # config.json that is not JSON
MODEL = os.path.join(WORK, "model")  # char tokenizer, learned positions, context 8
ROPE_MODEL = os.path.join(WORK, "rope_model")
BPE_MODEL = os.path.join(WORK, "bpe_model")
ED_MODEL = os.path.join(WORK, "ed_model")  # an encoder-decoder, byte vocabulary
PAIRS = os.path.join(WORK, "pairs.tsv")
BAD_PAIRS = os.path.join(WORK, "bad_pairs.tsv")  # a line without a tab
SOURCES = os.path.join(WORK, "sources.txt")
MISSING = os.path.join(WORK, "missing", "nothing.txt")
UNDER_FILE = os.path.join(DATA, "below")  # a path whose parent is a regular file
NO_PARENT = os.path.join(WORK, "no_such_dir", "out")


def unwritable_dir():
    """A directory this process may not write in (root may write almost anywhere)."""
    if os.geteuid() != 0:
        path = os.path.join(WORK, "read_only")
        os.mkdir(path)
        os.chmod(path, 0o555)
        return path
    for path in ["/proc/1", "/proc/self"]:
        if os.path.isdir(path) and not os.access(path, os.W_OK):
            return path
    return None


TINY_MODEL = ["--layers", "1", "--heads", "1", "--dim", "8", "--context", "8"]
TINY_TRAIN = ["--batch", "2", "--steps", "1", "--eval-every", "1", "--eval-batches", "1",
              "--threads", "1", "--quiet"]
TINY_ED = ["--arch", "encoder-decoder", "--tokenizer", "byte", "--layers", "1", "--heads", "1",
           "--dim", "8", "--steps", "1", "--eval-every", "1", "--threads", "1", "--quiet"]
FRESH = "{fresh}"  # replaced by a new directory path for each case


# ---------------------------------------------------------------------------------------------
# Kinds and their bad values. Each generator yields (value, exit statuses, what must be named
# besides the flag, a label); a case passes when stderr names the flag or, for a path, the path.

def int_values(lo, hi):
    """An integer flag accepting [lo, hi]."""
    values = [("", "empty"), ("abc", "not a number"), ("1.5", "fraction"), ("7x", "trailing"),
              ("nan", "NaN"), ("inf", "inf"), ("-1", "negative"),
              ("99999999999999999999999", "past 2^64")]
    if lo > 0:
        values.append((str(lo - 1), "below minimum" if lo > 1 else "zero"))
    if hi is not None and hi < 2**64 - 1:
        values.append((str(hi + 1), "past maximum"))
    if hi == 2**64 - 1:
        values.append((str(2**64), "2^64"))
    return values


def float_values(lo, hi, lo_open=False, hi_open=False):
    """A real flag accepting the interval from lo to hi (hi None: unbounded)."""
    values = [("", "empty"), ("abc", "not a number"), ("0.5x", "trailing"), ("nan", "NaN"),
              ("-nan", "-NaN"), ("inf", "inf"), ("-inf", "-inf"), ("1e999", "overflow")]
    if lo is not None:
        values.append((repr(lo - 1.0), "below minimum"))
        if lo_open:
            values.append((repr(float(lo)), "minimum (excluded)"))
    if hi is not None:
        values.append((repr(hi * 2 + 1.0), "past maximum"))
        if hi_open:
            values.append((repr(float(hi)), "maximum (excluded)"))
    return values


def enum_values():
    return [("", "empty"), ("bogus", "not a choice")]


def path_in_values():
    return [("", "empty"), (MISSING, "missing file"), (A_DIR, "a directory")]


def dir_in_values():
    return [("", "empty"), (os.path.join(WORK, "no_such_model"), "missing directory"),
            (DATA, "a file"), (EMPTY_DIR, "no model files")]


def path_out_values():
    values = [("", "empty"), (A_DIR, "a directory"), (UNDER_FILE, "below a file"),
              (NO_PARENT, "missing parent")]
    if UNWRITABLE:
        values.append((os.path.join(UNWRITABLE, "out"), "unwritable"))
    return values


def prefix_out_values():
    values = [("", "empty"), (UNDER_FILE, "below a file"), (NO_PARENT, "missing parent"),
              (A_DIR + "/", "no file name")]
    if UNWRITABLE:
        values.append((os.path.join(UNWRITABLE, "out"), "unwritable"))
    return values


def attention_out_values():
    values = [("", "empty"), (UNDER_FILE, "below a file"), (NO_PARENT, "missing parent")]
    if UNWRITABLE:
        values.append((os.path.join(UNWRITABLE, "out"), "unwritable"))
    return values


def dir_out_values():
    values = [("", "empty"), (DATA, "a file"), (UNDER_FILE, "below a file")]
    if UNWRITABLE:
        values.append((os.path.join(UNWRITABLE, "out"), "unwritable"))
    return values


class Flag:
    """One flag's kind; `extra` are further (arguments, statuses, label, names) cases."""

    def __init__(self, kind, *, lo=None, hi=None, lo_open=False, hi_open=False, with_args=(),
                 extra=(), runtime=False, values=None, aliases=(), drop=()):
        self.kind = kind
        self.lo, self.hi, self.lo_open, self.hi_open = lo, hi, lo_open, hi_open
        self.with_args = list(with_args)  # needed for the flag to matter (e.g. --pos rope)
        self.extra = list(extra)
        self.runtime = runtime  # the bad value may also be found at run time (exit 1)
        self.values = values  # replaces the kind's values
        self.aliases = list(aliases)  # other names of the same option, which messages may use
        self.drop = list(drop)  # base flags that exclude this one

    def bad_values(self):
        if self.values is not None:
            return self.values
        if self.kind == "int":
            return int_values(self.lo, self.hi)
        if self.kind in ("float", "probability"):
            lo = 0.0 if self.lo is None and self.kind == "probability" else self.lo
            hi = 1.0 if self.hi is None and self.kind == "probability" else self.hi
            return float_values(lo, hi, self.lo_open, self.hi_open)
        if self.kind == "enum":
            return enum_values()
        if self.kind == "path-in":
            return path_in_values()
        if self.kind == "dir-in":
            return dir_in_values()
        if self.kind == "path-out":
            return path_out_values()
        if self.kind == "prefix-out":
            return prefix_out_values()
        if self.kind == "dir-out":
            return dir_out_values()
        if self.kind == "flag":
            return [("maybe", "a value for a switch")]
        if self.kind == "text":
            return []  # free text: only the flag's own extra cases
        raise ValueError(self.kind)


def case(args, statuses=(2,), label="", names=None, stdin="", known_bug=None, drop=()):
    """A further case: `args` replace the same flags of the base arguments; `known_bug` marks a
    case that fails for a reason outside this change (it then fails when it starts passing)."""
    return {"args": list(args), "statuses": set(statuses), "label": label, "names": names,
            "stdin": stdin, "known_bug": known_bug, "drop": list(drop)}


U64_MAX = 2**64 - 1
I40 = 2**40


def table():
    """subcommand -> (valid base arguments, {flag: Flag}); built after the fixtures exist."""
    train_base = ["--data", DATA, "--out", FRESH, *TINY_MODEL, *TINY_TRAIN]
    # The flags an encoder-decoder run needs instead of the decoder-only base's.
    ed_args = ["--arch", "encoder-decoder", "--tokenizer", "byte"]
    ed_drop = ["--data", "--context", "--batch"]
    rope = ["--pos", "rope", "--rope-scaling", "linear"]
    train = {
        "--data": Flag("path-in", extra=[
            case(["--data", EMPTY], (1,), "an empty file", EMPTY),
            case(["--data", SMALL], (1,), "fewer tokens than a window", SMALL),
            case(["--data", GARBAGE, "--tokenizer", "char"], (1,), "not UTF-8", GARBAGE)]),
        "--val-data": Flag("path-in", extra=[
            case(["--val-data", SMALL], (1,), "fewer tokens than a window", SMALL),
            case(["--val-data", ALIEN], (1, 2), "characters not in the vocabulary", ALIEN)]),
        "--out": Flag("dir-out", extra=[
            case(["--out", MODEL], (2,), "already holds a model", MODEL)]),
        "--tokenizer": Flag("enum", values=[
            ("", "empty"), ("bogus", "not a choice"), ("bpe:", "bpe without N"),
            ("bpe:0", "bpe:0"), ("bpe:256", "bpe below 257"), ("bpe:-5", "negative N"),
            ("bpe:99999999999999999999", "N past 2^64"), ("bpe:16777217", "N past 2^24")]),
        "--layers": Flag("int", lo=1, hi=1024),
        "--heads": Flag("int", lo=1, hi=1024, extra=[
            case(["--heads", "3"], (2,), "does not divide --dim 8")]),
        "--dim": Flag("int", lo=1, hi=65536, extra=[
            # Valid but far too big for any machine: refused before allocating.
            case(["--dim", "65536"], (1, 2), "more memory than the machine has"),
            case(["--layers", "1024", "--heads", "1024", "--dim", "65536", "--ffn-dim",
                  str(2**20), "--context", str(2**20), "--batch", str(2**20), "--tokenizer",
                  "bpe:16777216", "--attention", "simple"], (1, 2),
                 "every size at its maximum: past 2^64 bytes"),
            case(["--dim", "6", "--heads", "2", "--pos", "rope"], (2,),
                 "odd RoPE head size", "--pos")]),
        "--kv-heads": Flag("int", lo=0, hi=1024, extra=[
            case(["--kv-heads", "3", "--heads", "4"], (2,), "does not divide --heads",
                 "--heads")]),
        "--head-dim": Flag("int", lo=0, hi=65536, extra=[
            case(["--head-dim", "3", "--pos", "rope"], (2,), "odd RoPE head size", "--pos")]),
        "--tie-embeddings": Flag("flag"),
        "--no-tie-embeddings": Flag("flag", aliases=["--tie-embeddings"]),
        "--ffn-dim": Flag("int", lo=0, hi=2**20),
        "--context": Flag("int", lo=1, hi=2**20, extra=[
            case(["--context", "100000"], (1, 2), "longer than the data")]),
        "--pos": Flag("enum"),
        "--norm": Flag("enum"),
        "--norm-placement": Flag("enum"),
        "--ffn": Flag("enum"),
        "--bias": Flag("flag"),
        "--no-bias": Flag("flag", aliases=["--bias"]),
        "--dropout": Flag("probability", lo=0.0, hi=0.99),
        "--rope-scaling": Flag("enum", extra=[
            case(["--rope-scaling", "linear"], (2,), "on a model without RoPE")]),
        "--rope-factor": Flag("float", lo=1.0, hi=1e6, with_args=rope, extra=[
            case(["--rope-factor", "4"], (2,), "without --rope-scaling")]),
        "--rope-theta": Flag("float", lo=0.0, lo_open=True, with_args=["--pos", "rope"]),
        "--rope-style": Flag("enum", with_args=["--pos", "rope"]),
        "--attention": Flag("enum"),
        "--batch": Flag("int", lo=1, hi=2**20, extra=[
            case(["--batch", str(2**20), "--dim", "4096", "--heads", "1"], (1, 2),
                 "2^20 windows of width 4096: more memory than the machine has", "memory")]),
        "--steps": Flag("int", lo=1, hi=I40),
        "--lr": Flag("float", lo=0.0, lo_open=True),
        "--min-lr": Flag("float", lo=0.0, extra=[
            case(["--min-lr", "0.5", "--lr", "0.1"], (2,), "above --lr")]),
        "--warmup": Flag("int", lo=0, hi=I40),
        "--lr-schedule": Flag("enum"),
        "--time-limit": Flag("float", lo=0.0, lo_open=True, extra=[
            case(["--time-limit", "10x"], (2,), "an unknown unit"),
            case(["--time-limit", "m"], (2,), "a unit without a number")]),
        "--weight-decay": Flag("float", lo=0.0),
        "--beta1": Flag("probability", lo=0.0, hi=0.999999),
        "--beta2": Flag("probability", lo=0.0, hi=0.999999),
        "--grad-clip": Flag("float", lo=0.0),
        "--accum": Flag("int", lo=1, hi=2**20),
        # bf16 where the CPU cannot: tests/cli/test_precision.py.
        "--precision": Flag("enum"),
        "--eval-every": Flag("int", lo=1, hi=I40),
        "--eval-batches": Flag("int", lo=1, hi=2**20),
        "--save-every": Flag("int", lo=0, hi=I40),
        "--keep-checkpoints": Flag("int", lo=1, hi=1000000),
        "--save-dtype": Flag("enum"),
        "--stop-at": Flag("int", lo=0, hi=I40, extra=[
            case(["--stop-at", "5", "--steps", "2"], (2,), "past --steps")]),
        "--seed": Flag("int", lo=0, hi=U64_MAX),
        "--threads": Flag("int", lo=0, hi=1024),
        "--resume": Flag("flag", extra=[
            case(["--resume"], (2,), "nothing to resume")]),
        "--init-from": Flag("dir-in", runtime=True, extra=[
            case(["--init-from", MODEL, "--heads", "2", "--dim", "8"], (2,),
                 "a model flag that contradicts the model", "--heads"),
            case(["--init-from", MODEL, "--resume"], (2,), "with --resume", "--resume")]),
        "--quiet": Flag("flag"),
        "--shard-optimizer": Flag("flag"),
        "--mpi-timeout": Flag("float", lo=0.0, lo_open=True, hi=1e6),
        "--checksum-every": Flag("int", lo=0, hi=I40),
        # The encoder-decoder's own (train_translation.h); --data is replaced by --pairs.
        "--arch": Flag("enum", extra=[
            case(["--arch", "encoder-decoder"], (2,), "decoder-only flags", "does not apply")]),
        "--pairs": Flag("path-in", with_args=ed_args, drop=ed_drop, extra=[
            case([*ed_args, "--pairs", BAD_PAIRS], (1,), "a line without a tab", BAD_PAIRS,
                 drop=ed_drop),
            case(["--pairs", PAIRS], (2,), "without --arch encoder-decoder")]),
        "--val-pairs": Flag("path-in", with_args=ed_args + ["--pairs", PAIRS], drop=ed_drop),
        "--batch-tokens": Flag("int", lo=1, hi=2**30, with_args=ed_args + ["--pairs", PAIRS],
                               drop=ed_drop),
        "--label-smoothing": Flag("probability", lo=0.0, hi=0.99,
                                  with_args=ed_args + ["--pairs", PAIRS], drop=ed_drop),
        "--encoder-layers": Flag("int", lo=0, hi=1024, with_args=ed_args + ["--pairs", PAIRS],
                                 drop=ed_drop),
        "--decoder-layers": Flag("int", lo=0, hi=1024, with_args=ed_args + ["--pairs", PAIRS],
                                 drop=ed_drop),
        "--max-positions": Flag("int", lo=2, hi=2**20, with_args=ed_args + ["--pairs", PAIRS],
                                drop=ed_drop),
    }
    sample_base = ["--model", MODEL, "--tokens", "4", "--threads", "1", "--seed", "1"]
    sample = {
        "--model": Flag("dir-in", runtime=True, extra=[
            case(["--model", BROKEN_MODEL], (1,), "config.json is not JSON", BROKEN_MODEL)]),
        "--prompt": Flag("text", extra=[
            case(["--prompt", "\u2603 snow"], (2,), "a character outside the vocabulary")]),
        "--tokens": Flag("int", lo=0, hi=2**30),
        "--temperature": Flag("float", lo=0.0),
        "--top-k": Flag("int", lo=0, hi=2**30),
        "--top-p": Flag("probability", lo=0.0, lo_open=True, hi=1.0),
        "--seed": Flag("int", lo=0, hi=U64_MAX),
        "--threads": Flag("int", lo=0, hi=1024),
        "--precision": Flag("enum"),
        "--rope-scaling": Flag("enum", extra=[
            case(["--rope-scaling", "linear"], (2,), "on a model without RoPE")]),
        "--rope-factor": Flag("float", lo=1.0, hi=1e6,
                              with_args=["--model", ROPE_MODEL, "--rope-scaling", "linear"]),
    }
    eval_base = ["--model", MODEL, "--data", DATA, "--threads", "1"]
    evaluate = {
        "--model": Flag("dir-in", runtime=True, extra=[
            case(["--model", BROKEN_MODEL], (1,), "config.json is not JSON", BROKEN_MODEL)]),
        "--data": Flag("path-in", extra=[
            case(["--data", EMPTY], (1,), "an empty file", EMPTY),
            case(["--data", SMALL], (1,), "fewer tokens than a window", SMALL),
            case(["--data", ALIEN], (1, 2), "characters not in the vocabulary", ALIEN)]),
        "--tokenizer": Flag("enum", extra=[
            case(["--tokenizer", "byte"], (2,), "not the model's own tokenizer")]),
        "--context": Flag("int", lo=2, hi=2**24, extra=[
            case(["--context", "64"], (2,), "past the learned position table")]),
        "--batch": Flag("int", lo=1, hi=4096),
        "--json": Flag("flag"),
        "--quiet": Flag("flag"),
        "--dump-logits": Flag("path-out"),
        "--threads": Flag("int", lo=0, hi=1024),
        "--precision": Flag("enum"),
        "--rope-scaling": Flag("enum", extra=[
            case(["--rope-scaling", "linear"], (2,), "on a model without RoPE")]),
        "--rope-factor": Flag("float", lo=1.0, hi=1e6,
                              with_args=["--model", ROPE_MODEL, "--rope-scaling", "linear"]),
        "--attention": Flag("enum"),
        "--pairs": Flag("path-in", with_args=["--model", ED_MODEL], drop=["--data"], extra=[
            case(["--model", ED_MODEL, "--pairs", BAD_PAIRS], (1,), "a line without a tab",
                 BAD_PAIRS, drop=["--data"]),
            case(["--pairs", PAIRS], (2,), "a decoder-only model", drop=["--data"])]),
        "--bleu": Flag("flag", with_args=["--model", ED_MODEL, "--pairs", PAIRS], drop=["--data"],
                       extra=[case(["--bleu"], (2,), "without --pairs")]),
        "--beam": Flag("int", lo=1, hi=1024, with_args=["--model", ED_MODEL, "--pairs", PAIRS],
                       drop=["--data"]),
        "--batch-tokens": Flag("int", lo=1, hi=2**30,
                               with_args=["--model", ED_MODEL, "--pairs", PAIRS], drop=["--data"]),
    }
    translate_base = ["--model", ED_MODEL, "--input", SOURCES, "--threads", "1"]
    translate = {
        "--model": Flag("dir-in", runtime=True, extra=[
            case(["--model", MODEL], (2,), "a decoder-only model", MODEL)]),
        "--input": Flag("path-in", extra=[
            case(["--input", GARBAGE], (1,), "not UTF-8", GARBAGE)]),
        "--beam": Flag("int", lo=1, hi=1024),
        "--max-length": Flag("int", lo=2, hi=2**24, extra=[
            case(["--max-length", "100000"], (2,), "past the model's positions")]),
        "--length-penalty": Flag("float", lo=-100.0, hi=100.0),
        "--batch": Flag("int", lo=1, hi=4096),
        "--threads": Flag("int", lo=0, hi=1024),
        "--precision": Flag("enum"),
        "--stats": Flag("flag"),
    }
    tokenize_base = ["--model", MODEL]
    bpe_files = ["--vocab", os.path.join(BPE_MODEL, "vocab.json"),
                 "--merges", os.path.join(BPE_MODEL, "merges.txt")]
    tokenize = {
        "--model": Flag("dir-in", runtime=True, extra=[
            case(["--model", BROKEN_MODEL], (1,), "config.json is not JSON", BROKEN_MODEL)]),
        "--vocab": Flag("path-in", runtime=True, with_args=bpe_files, drop=["--model"], extra=[
            case(["--vocab", GARBAGE, *bpe_files[2:]], (1,), "not JSON", GARBAGE,
                 drop=["--model"]),
            case(["--vocab", bpe_files[1]], (2,), "without --merges", drop=["--model"])]),
        "--merges": Flag("path-in", runtime=True, with_args=bpe_files, drop=["--model"], extra=[
            case([*bpe_files[:2], "--merges", GARBAGE], (1,), "not merges", GARBAGE,
                 drop=["--model"])]),
        "--decode": Flag("flag", extra=[
            case(["--decode"], (1,), "a word for an id", stdin="1 two 3"),
            case(["--decode"], (1,), "an id past the vocabulary", stdin="1 99999"),
            case(["--decode"], (1,), "a negative id", stdin="-1"),
            case(["--decode"], (1,), "an id past 2^31", stdin="4294967297")]),
        "--allow-special": Flag("flag"),
    }
    attention_base = ["--model", MODEL, "--text", "the fox", "--out",
                      os.path.join(FRESH, "maps"), "--threads", "1"]
    attention = {
        "--model": Flag("dir-in", runtime=True, extra=[
            case(["--model", BROKEN_MODEL], (1,), "config.json is not JSON", BROKEN_MODEL)]),
        "--text": Flag("text", values=[("", "empty")], extra=[
            case(["--text", "the quick brown fox"], (2,), "longer than the context"),
            case(["--text", "\u2603"], (2,), "a character outside the vocabulary")]),
        # A directory (existing, or ending in '/') is written inside; anything else is a prefix.
        "--out": Flag("prefix-out", values=attention_out_values()),
        "--html": Flag("path-out", values=attention_out_values()),
        "--threads": Flag("int", lo=0, hi=1024),
        "--source": Flag("text", with_args=["--model", ED_MODEL, "--target", "el zorro"],
                         drop=["--text"], extra=[
            case(["--source", "the fox"], (2,), "on a decoder-only model")]),
        "--target": Flag("text", with_args=["--model", ED_MODEL, "--source", "the fox"],
                         drop=["--text"], extra=[
            case(["--model", ED_MODEL, "--source", "x", "--target", "y" * 300], (2,),
                 "longer than the positions", drop=["--text"])]),
    }
    info = {"--json": Flag("flag")}
    extrapolate_base = ["--data", DATA, "--out", FRESH, "--schemes", "none", "--multipliers", "1",
                        "--context", "4", "--steps", "1", "--layers", "1", "--heads", "1",
                        "--dim", "8", "--batch", "2", "--eval-tokens", "16", "--threads", "1"]
    extrapolate = {
        "--data": Flag("path-in", extra=[case(["--data", EMPTY], (1,), "an empty file", EMPTY)]),
        "--out": Flag("dir-out"),
        "--schemes": Flag("enum", values=[("", "empty"), ("bogus", "not a choice"),
                                          ("none,bogus", "one bad in a list")]),
        "--multipliers": Flag("int", lo=1, hi=1024, values=[
            *int_values(1, 1024), ("1,0", "zero in a list"), ("1,x", "a word in a list")]),
        "--context": Flag("int", lo=2, hi=2**16),
        "--steps": Flag("int", lo=1, hi=2**30),
        "--layers": Flag("int", lo=1, hi=1024),
        "--heads": Flag("int", lo=1, hi=1024, extra=[
            case(["--heads", "3"], (2,), "does not divide --dim 8")]),
        "--dim": Flag("int", lo=1, hi=65536, extra=[
            case(["--dim", "65536"], (1, 2), "more memory than the machine has"),
            case(["--schemes", "rope", "--dim", "6", "--heads", "2"], (2,), "odd RoPE head size")]),
        "--batch": Flag("int", lo=1, hi=2**20),
        "--lr": Flag("float", lo=0.0, lo_open=True),
        "--eval-tokens": Flag("int", lo=2, hi=I40),
        "--seed": Flag("int", lo=0, hi=U64_MAX),
        "--threads": Flag("int", lo=0, hi=1024),
    }
    demo_base = ["--threads", "1"]
    demo = {
        "--text": Flag("text", values=[("", "empty"), ("   ", "only spaces")]),
        "--dim": Flag("int", lo=1, hi=4096),
        "--heads": Flag("int", lo=1, hi=256, extra=[
            case(["--heads", "3"], (2,), "does not divide --dim 16")]),
        "--pos": Flag("enum", extra=[
            case(["--pos", "rope", "--dim", "6", "--heads", "2"], (2,), "odd RoPE head size")]),
        "--causal": Flag("flag"),
        "--seed": Flag("int", lo=0, hi=U64_MAX),
        "--threads": Flag("int", lo=1, hi=1024),
    }
    return {
        "train": (train_base, train),
        "sample": (sample_base, sample),
        "eval": (eval_base, evaluate),
        "tokenize": (tokenize_base, tokenize),
        "attention": (attention_base, attention),
        "translate": (translate_base, translate),
        "extrapolate": (extrapolate_base, extrapolate),
        "demo": (demo_base, demo),
        "info": ([MODEL], info),
    }


# Values at the edge of what a flag allows: they must work (exit 0), and quickly.
def accepted_cases():
    return [
        ("train", ["--seed", "0"]), ("train", ["--seed", str(U64_MAX)]),
        ("train", ["--warmup", "0"]), ("train", ["--grad-clip", "0"]),
        ("train", ["--dropout", "0.99"]), ("train", ["--ffn-dim", "0"]),
        ("train", ["--no-bias"]), ("train", ["--tokenizer", "byte"]),
        ("sample", ["--temperature", "0"]), ("sample", ["--tokens", "0"]),
        ("sample", ["--top-k", str(2**30)]), ("sample", ["--top-p", "1"]),
        ("sample", ["--seed", "0"]), ("sample", ["--prompt", ""]),
        ("sample", ["--precision", "bf16"]),
        ("train", ["--precision", "fp32"]), ("eval", ["--precision", "fp32"]),
        ("train", ["--save-dtype", "bf16"]), ("translate", ["--precision", "fp32"]),
        ("eval", ["--context", "2"]), ("eval", ["--batch", "4096"]),
        ("demo", ["--seed", "0"]), ("demo", ["--dim", "1", "--heads", "1"]),
        ("attention", ["--out", A_DIR]),
    ]


# ---------------------------------------------------------------------------------------------

def run(args, stdin=""):
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")  # no re-exec, no spinning threads
    start = time.monotonic()
    try:
        result = subprocess.run([QKV, *args], input=stdin.encode(), capture_output=True,
                                timeout=TIMEOUT_S, env=env, cwd=WORK)
    except subprocess.TimeoutExpired:
        return None, "", f"(no exit after {TIMEOUT_S} s)", time.monotonic() - start
    return (result.returncode, result.stdout.decode(errors="replace"),
            result.stderr.decode(errors="replace"), time.monotonic() - start)


def help_flags(subcommand):
    """The flags a subcommand's --help lists (each name of a flag with two, e.g. --bias,--no-bias)."""
    status, out, err, _ = run([subcommand, "--help"])
    if status != 0:
        raise RuntimeError(f"{subcommand} --help: exit status {status}: {err}")
    flags = []
    for line in out.splitlines():
        match = re.match(r"^\s+((?:-\w,)?--[\w-]+(?:,!?--[\w-]+)*)", line)
        if match:
            for name in match.group(1).split(","):
                name = name.lstrip("!")
                if name.startswith("--") and name != "--help":
                    flags.append(name)
    return flags


def help_subcommands():
    status, out, _, _ = run(["--help"])
    names, in_list = [], False
    for line in out.splitlines():
        if line.startswith("Subcommands:"):
            in_list = True
        elif in_list:
            match = re.match(r"^\s+(\w+)\s", line + " ")
            if match:
                names.append(match.group(1))
            elif line.strip():
                in_list = False
    return names


def without(args, flag):
    """args without `flag` and its value (each flag of the base arguments takes one value)."""
    out, i = [], 0
    while i < len(args):
        if args[i] == flag:
            i += 2
            continue
        out.append(args[i])
        i += 1
    return out


def replace_flags(base, args):
    for flag in [a for a in args if a.startswith("--")]:
        base = without(base, flag)
    return base + args


class Fresh:
    def __init__(self):
        self.count = 0

    def __call__(self):
        self.count += 1
        return os.path.join(WORK, "runs", f"run{self.count}")


FRESH_PATH = Fresh()


def fill(args):
    fresh = FRESH_PATH()
    os.makedirs(os.path.dirname(fresh), exist_ok=True)
    if any(FRESH in a and a != FRESH for a in args):
        os.makedirs(fresh, exist_ok=True)  # a prefix inside it
    return [a.replace(FRESH, fresh) for a in args]


def check_case(description, args, statuses, names, stdin, known_bug):
    """Runs one case; returns (passed, line)."""
    status, out, err, seconds = run(args, stdin)
    problems = []
    crashed = [m for m in CRASH_MARKERS if m in err or m in out]
    if status is None:
        problems.append(f"hung: {err}")
    elif status < 0 or status >= 128:
        problems.append(f"killed by a signal (status {status})")
    elif status not in statuses:
        problems.append(f"exit status {status}, expected {' or '.join(map(str, sorted(statuses)))}")
    if crashed:
        problems.append("crash output: " + ", ".join(crashed))
    unnamed = status not in (None, 0) and names and not any(n and n in err for n in names)
    if status != 0 and status is not None and not err.strip():
        problems.append("no message on stderr")
    if seconds > 10 and status is not None:
        problems.append(f"took {seconds:.1f} s")
    # A known bug excuses only the message, never a crash or a wrong status.
    if known_bug and unnamed and not problems:
        return True, f"ok: {description}: known bug: {known_bug}"
    if known_bug and not unnamed and not problems:
        return False, f"FAIL: {description}: the known bug is fixed: remove its known_bug mark"
    if unnamed:
        problems.append("stderr does not name " + " or ".join(repr(n) for n in names if n))
    if problems:
        tail = err.strip().splitlines()[-3:]
        return False, (f"FAIL: {description}: " + "; ".join(problems) +
                       ("\n    stderr: " + "\n    stderr: ".join(tail) if tail else ""))
    message = err.strip().splitlines()[0] if err.strip() else ""
    return True, f"ok: {description}" + (f"  [{message[:110]}]" if message else "")


def make_fixtures():
    text = "".join(f"line {i}: the quick brown fox jumps over the lazy dog.\n" for i in range(60))
    with open(DATA, "w") as f:
        f.write(text)
    with open(SMALL, "w") as f:
        f.write("fox\n")
    open(EMPTY, "w").close()
    with open(ALIEN, "w") as f:
        f.write("\u2603\u2603 ZZZ QQQ \u00e9\u00e9\u00e9 XXX " * 10)
    with open(GARBAGE, "wb") as f:
        f.write(bytes(range(256)) * 4)
    for path in [A_DIR, EMPTY_DIR, BROKEN_MODEL]:
        os.mkdir(path)
    with open(os.path.join(BROKEN_MODEL, "config.json"), "w") as f:
        f.write("{ not json")
    for out, extra in [(MODEL, []), (ROPE_MODEL, ["--pos", "rope"]),
                       (BPE_MODEL, ["--tokenizer", "bpe:300"])]:
        status, _, err, _ = run(["train", "--data", DATA, "--out", out, *TINY_MODEL,
                                 *TINY_TRAIN, *extra])
        if status != 0:
            raise RuntimeError(f"training the fixture {out} failed ({status}): {err}")
    with open(PAIRS, "w") as f:
        f.write("".join(f"the {i} fox\tel zorro {i}\n" for i in range(20)))
    with open(BAD_PAIRS, "w") as f:
        f.write("one\tuno\ntwo without a tab\n")
    with open(SOURCES, "w") as f:
        f.write("the fox\n\nthe dog\n")
    status, _, err, _ = run(["train", *TINY_ED, "--pairs", PAIRS, "--out", ED_MODEL,
                             "--max-positions", "64"])
    if status != 0:
        raise RuntimeError(f"training the fixture {ED_MODEL} failed ({status}): {err}")


UNWRITABLE = None


def main():
    global UNWRITABLE
    started = time.monotonic()
    UNWRITABLE = unwritable_dir()
    make_fixtures()
    results = []  # (passed, line) in order
    jobs = []  # (description, args, statuses, names, stdin)

    # The table must cover every subcommand and every flag --help shows, and nothing else.
    commands = table()
    listed = help_subcommands()
    for name in listed:
        if name not in commands:
            results.append((False, f"FAIL: subcommand '{name}' has no entry in the flag table"))
    for name in commands:
        if name not in listed:
            results.append((False, f"FAIL: the table has subcommand '{name}', --help does not"))
    for name, (base, flags) in commands.items():
        if name not in listed:
            continue
        shown = help_flags(name)
        missing = [f for f in shown if f not in flags]
        stale = [f for f in flags if f not in shown]
        results.append((not missing and not stale,
                        f"{'ok' if not missing and not stale else 'FAIL'}: {name}: the table "
                        f"covers the {len(shown)} flags of --help" +
                        (f"; not covered: {' '.join(missing)}" if missing else "") +
                        (f"; not in --help: {' '.join(stale)}" if stale else "")))

        # The base arguments must work, or every bad case below would prove nothing.
        jobs.append((f"{name}: valid base arguments", fill([name, *base]), {0}, None, "", None))
        jobs.append((f"{name}: unknown flag --bogus", fill([name, *base, "--bogus", "1"]), {2},
                     ["--bogus"], "", None))
        for flag, spec in flags.items():
            if flag not in shown:
                continue
            flag_base = base
            for dropped in spec.drop:
                flag_base = without(flag_base, dropped)
            flag_base = replace_flags(flag_base, spec.with_args)
            for value, label in spec.bad_values():
                # "--flag=value" keeps a value such as -1 from reading as a flag; an empty value
                # is tried both as "--flag=" and as a separate empty argument.
                spellings = [[f"{flag}={value}"]]
                if value == "" and spec.kind != "flag":
                    spellings.append([flag, ""])
                for spelling in spellings:
                    if spec.kind == "flag":
                        args = [*flag_base, *spelling]
                    else:
                        args = [*without(flag_base, flag), *spelling]
                    statuses = {1, 2} if spec.runtime or spec.kind.endswith("-out") else {2}
                    names = [flag, *spec.aliases] + (
                        [value] if spec.kind.startswith(("path", "dir", "prefix")) and value
                        else [])
                    written = " ".join(repr(a) if not a or " " in a else a for a in spelling)
                    jobs.append((f"{name} {written} ({label})", fill([name, *args]), statuses,
                                 names, "", None))
            for extra in spec.extra:
                extra_base = base
                for dropped in extra["drop"]:
                    extra_base = without(extra_base, dropped)
                args = replace_flags(extra_base, extra["args"])
                names = [flag] + ([extra["names"]] if extra["names"] else [])
                shown_args = " ".join(a if a else "''" for a in extra["args"])
                jobs.append((f"{name} {shown_args} ({extra['label']})", fill([name, *args]),
                             extra["statuses"], names, extra["stdin"], extra["known_bug"]))
    for name, args in accepted_cases():
        base = commands[name][0]
        jobs.append((f"{name} {' '.join(a if a else repr(a) for a in args)} (accepted)",
                     fill([name, *replace_flags(base, args)]), {0}, None, "", None))

    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(check_case, *job) for job in jobs]
        for future in futures:
            results.append(future.result())

    for _, line in results:
        print(line)
    passed = sum(1 for ok, _ in results if ok)
    failed = len(results) - passed
    print(f"({time.monotonic() - started:.1f} s)")
    print(f"{passed} passed, {failed} failed")
    if failed == 0:
        shutil.rmtree(WORK, ignore_errors=True)
    else:
        print(f"work directory kept: {WORK}")
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        if UNWRITABLE and UNWRITABLE.startswith(WORK) and os.path.isdir(UNWRITABLE):
            os.chmod(UNWRITABLE, 0o755)
