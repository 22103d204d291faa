#!/usr/bin/python3
"""Data-parallel `qkv train` under `mpirun -np 2` (docs/distributed.md), through the binary.

Usage: test_data_parallel.py QKV MPIRUN

(a) 2 ranks x batch B give the losses of 1 process x batch 2B (same seed) to 1e-6 relative, and
    every rank ends with the parameters of the saved model (checksums);
(b) --shard-optimizer gives the same losses as without;
(c) a run stopped with one number of ranks and resumed with another continues the loss
    sequence of an uninterrupted run;
(d) a rank that hangs (SIGSTOP) or dies (SIGKILL) makes the job exit with an error within the
    --mpi-timeout instead of hanging, the survivor says why, and the last complete checkpoint
    of the run resumes on 1 or on 2 ranks;
(e) the encoder-decoder on 2 ranks sharing each token batch gives 1 process's losses.
"""
import json
import os
import pathlib
import signal
import struct
import subprocess
import sys
import tempfile
import time

import numpy as np

QKV, MPIRUN = sys.argv[1], sys.argv[2]
FAILURES = []
MPI_FLAGS = ["--allow-run-as-root", "--oversubscribe", "--mca", "btl", "self,vader",
             "--mca", "btl_vader_single_copy_mechanism", "none"]
MODEL = ["--layers", "2", "--heads", "2", "--dim", "16", "--context", "16"]
TRAIN = ["--eval-every", "5", "--eval-batches", "2", "--threads", "1", "--quiet", "--steps", "20"]
TOLERANCE = 1e-6


def check(condition, message):
    print(("ok: " if condition else "FAIL: ") + message, flush=True)
    if not condition:
        FAILURES.append(message)


def env():
    result = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
                  OMPI_MCA_rmaps_base_oversubscribe="1")
    result.setdefault("ASAN_OPTIONS", "")
    result["ASAN_OPTIONS"] += ":detect_leaks=0"  # Open MPI's own allocations at exit
    return result


def train(ranks, *args):
    command = [QKV, "train", *args]
    if ranks > 1:
        command = [MPIRUN, "-np", str(ranks), *MPI_FLAGS, *command]
    return subprocess.run(command, capture_output=True, text=True, env=env(), timeout=120)


def log_of(model_dir):
    return [json.loads(line) for line in (model_dir / "train_log.jsonl").read_text().splitlines()]


def max_relative_difference(a, b):
    """Largest relative difference of loss and val_loss over the steps; inf if steps differ."""
    if [e["step"] for e in a] != [e["step"] for e in b]:
        return float("inf")
    worst = 0.0
    for x, y in zip(a, b):
        for key in ("loss", "val_loss"):
            if (key in x) != (key in y):
                return float("inf")
            if key in x:
                worst = max(worst, abs(x[key] - y[key]) / abs(y[key]))
    return worst


def safetensors_checksum(path):
    """The checksum qkv prints: sum mod 2^64 of splitmix64 over every float's bits."""
    data = path.read_bytes()
    (header_size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + header_size])
    total = np.uint64(0)
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        assert entry["dtype"] == "F32", entry["dtype"]
        begin, end = entry["data_offsets"]
        z = np.frombuffer(data[8 + header_size + begin:8 + header_size + end],
                          dtype=np.uint32).astype(np.uint64)
        with np.errstate(over="ignore"):
            z = z + np.uint64(0x9e3779b97f4a7c15)
            z = (z ^ (z >> np.uint64(30))) * np.uint64(0xbf58476d1ce4e5b9)
            z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94d049bb133111eb)
            z = z ^ (z >> np.uint64(31))
            total = total + np.sum(z, dtype=np.uint64)
    return int(total)


def rank_checksums(stderr):
    return [int(line.rsplit(" ", 1)[1]) for line in stderr.splitlines()
            if "parameter checksum" in line]


def rank_processes(mpirun_pid):
    """The pids of mpirun's descendants that run qkv."""
    parent, command = {}, {}
    for entry in pathlib.Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            parent[int(entry.name)] = int(stat[stat.rindex(")") + 2:].split()[1])
            command[int(entry.name)] = (entry / "cmdline").read_bytes().split(b"\0")[0]
        except (OSError, ValueError, IndexError):
            pass
    ranks = []
    for pid in parent:
        ancestor = parent[pid]
        while ancestor not in (0, 1, mpirun_pid) and ancestor in parent:
            ancestor = parent[ancestor]
        if ancestor == mpirun_pid and command.get(pid) == QKV.encode():
            ranks.append(pid)
    return ranks


def stop_one_rank(work, data, how):
    """Starts 2 ranks on a long run, sends `how` to one rank once training is under way, and
    returns (exit status, seconds from the signal to the job's end, stderr)."""
    out = work / f"stopped_{how}"
    command = [MPIRUN, "-np", "2", *MPI_FLAGS, QKV, "train", "--data", str(data), "--out",
               str(out), *MODEL, "--batch", "4", "--threads", "1", "--quiet", "--steps",
               "1000000", "--eval-every", "1000000", "--mpi-timeout", "3", "--save-every", "5"]
    job = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env=env(), start_new_session=True)
    try:
        deadline = time.time() + 30
        log = out / "train_log.jsonl"
        while time.time() < deadline and job.poll() is None:
            if log.exists() and len(log.read_text().splitlines()) >= 20:
                break
            time.sleep(0.05)
        ranks = rank_processes(job.pid)
        if len(ranks) != 2:
            return None, 0.0, f"found {len(ranks)} rank processes"
        victim = max(ranks)
        os.kill(victim, signal.SIGSTOP if how == "hang" else signal.SIGKILL)
        signalled = time.time()
        _, stderr = job.communicate(timeout=30)
        return job.returncode, time.time() - signalled, stderr
    except subprocess.TimeoutExpired:
        return None, 30.0, "the job did not end within 30 s"
    finally:
        try:
            os.killpg(job.pid, signal.SIGKILL)  # a stopped rank, if anything is left
        except ProcessLookupError:
            pass
        job.wait()


def main():
    work = pathlib.Path(tempfile.mkdtemp(prefix="qkv_mpi_test_"))
    data = work / "data.txt"
    data.write_text("".join(f"line {i}: the quick brown fox jumps over the lazy dog.\n"
                            for i in range(300)))
    common = ["--data", str(data), *TRAIN]

    # (a) 2 ranks x batch 4 == 1 process x batch 8.
    one = work / "one"
    result = train(1, *common, "--out", str(one), *MODEL, "--batch", "8")
    check(result.returncode == 0, f"1 process x batch 8 trains ({result.stderr[-300:]})")
    two = work / "two"
    result = train(2, *common, "--out", str(two), *MODEL, "--batch", "4")
    check(result.returncode == 0, f"2 ranks x batch 4 train ({result.stderr[-500:]})")
    difference = max_relative_difference(log_of(two), log_of(one))
    print(f"max relative loss difference, 2 ranks x 4 vs 1 x 8: {difference:.3g}")
    check(difference <= TOLERANCE, f"2 ranks x batch 4 losses equal 1 x batch 8 ({difference:.3g})")
    sums = rank_checksums(result.stderr)
    saved = safetensors_checksum(two / "model.safetensors")
    check(len(sums) == 2 and sums[0] == sums[1] == saved,
          f"both ranks hold the saved model's parameters (checksums {sums}, file {saved})")

    # (b) The sharded optimizer: the same losses.
    sharded = work / "sharded"
    result = train(2, *common, "--out", str(sharded), *MODEL, "--batch", "4", "--shard-optimizer")
    check(result.returncode == 0, f"--shard-optimizer trains ({result.stderr[-500:]})")
    difference = max_relative_difference(log_of(sharded), log_of(two))
    print(f"max relative loss difference, sharded vs not: {difference:.3g}")
    check(difference <= TOLERANCE, f"--shard-optimizer gives the same losses ({difference:.3g})")
    sums = rank_checksums(result.stderr)
    check(len(sums) == 2 and sums[0] == sums[1] == safetensors_checksum(
        sharded / "model.safetensors"), "sharded: both ranks hold the saved parameters")

    # (c) Resume with another number of ranks: 1 -> 2 (sharded) and 2 (sharded) -> 1.
    worst = 0.0
    for name, first, second in [("up", (1, ["--batch", "8"]), (2, ["--batch", "4",
                                                                   "--shard-optimizer"])),
                                ("down", (2, ["--batch", "4", "--shard-optimizer"]),
                                 (1, ["--batch", "8"]))]:
        out = work / f"resume_{name}"
        result = train(first[0], *common, "--out", str(out), *MODEL, *first[1], "--stop-at", "8")
        check(result.returncode == 0 and len(log_of(out)) == 8,
              f"{first[0]} rank(s) stop at step 8 ({result.stderr[-300:]})")
        result = train(second[0], *common, "--out", str(out), "--resume", *second[1])
        check(result.returncode == 0,
              f"resumed on {second[0]} rank(s) ({result.stderr[-300:]})")
        difference = max_relative_difference(log_of(out), log_of(one))
        worst = max(worst, difference)
        check(difference <= TOLERANCE,
              f"{first[0]} -> {second[0]} rank(s): the uninterrupted losses ({difference:.3g})")
    print(f"max relative loss difference, resumed across rank counts: {worst:.3g}")

    # (e) The encoder-decoder (--arch encoder-decoder): 2 ranks share each token batch, and
    # give the losses of one process on the same batches.
    pairs = work / "pairs.tsv"
    pairs.write_text("".join(f"the {i} fox\tel zorro {i}\n" for i in range(200)))
    translation = ["--arch", "encoder-decoder", "--pairs", str(pairs), "--tokenizer", "byte",
                   "--steps", "12", "--eval-every", "4", "--threads", "1", "--quiet",
                   "--dim", "32", "--heads", "2", "--layers", "1", "--batch-tokens", "300"]
    result = train(1, *translation, "--out", str(work / "ed_one"))
    check(result.returncode == 0, f"encoder-decoder: 1 process trains ({result.stderr[-300:]})")
    result = train(2, *translation, "--out", str(work / "ed_two"))
    check(result.returncode == 0, f"encoder-decoder: 2 ranks train ({result.stderr[-300:]})")
    difference = max_relative_difference(log_of(work / "ed_two"), log_of(work / "ed_one"))
    print(f"max relative loss difference, encoder-decoder 2 ranks vs 1: {difference:.3g}")
    check(difference <= TOLERANCE,
          f"encoder-decoder: 2 ranks give 1 process's losses ({difference:.3g})")

    # (d) A hung or killed rank stops the job with a message.
    status, seconds, stderr = stop_one_rank(work, data, "hang")
    check(status not in (None, 0) and "did not complete within 3 s" in stderr and seconds < 20,
          f"a hung rank: the other stops with a message after {seconds:.1f} s "
          f"(status {status}; {stderr.strip()[-300:]})")
    status, seconds, stderr = stop_one_rank(work, data, "kill")
    check(status not in (None, 0) and seconds < 20,
          f"a killed rank: the job ends with status {status} after {seconds:.1f} s")
    check("qkv: error" in stderr or "exited on signal" in stderr or "killed" in stderr.lower(),
          f"a killed rank: the job says what happened ({stderr.strip()[-300:]})")
    # The killed run's last complete checkpoint goes on, on 1 rank and on 2.
    killed = work / "stopped_kill"
    config = json.loads((killed / "config.json").read_text())
    step = config["qkv_training_step"]
    check(step >= 5 and step % 5 == 0, f"the killed run left a complete checkpoint (step {step})")
    for ranks, batch in [(1, "8"), (2, "4")]:
        copy = work / f"resumed_after_kill_{ranks}"
        subprocess.run(["cp", "-a", str(killed), str(copy)], check=True)
        result = train(ranks, "--data", str(data), "--out", str(copy), "--resume", "--batch",
                       batch, "--threads", "1", "--quiet", "--steps", str(step + 3),
                       "--eval-every", "1000000", "--mpi-timeout", "3", "--save-every", "5")
        check(result.returncode == 0 and log_of(copy)[-1]["step"] == step + 3,
              f"the checkpoint of the killed job resumes on {ranks} rank(s) "
              f"({result.stderr.strip()[-300:]})")

    print(f"\n{'FAILED' if FAILURES else 'passed'}: {len(FAILURES)} failure(s)")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
