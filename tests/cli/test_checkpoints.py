#!/usr/bin/python3
"""Checkpoints that survive anything (docs/reliability.md), through the binary.

- kill -9 at 20 random moments of a run that saves every step: after each kill the directory
  loads in `qkv eval` and `qkv info`, config and training state agree, and `--resume` goes on;
  the final weights and log equal an uninterrupted run's, bitwise.
- A save that cannot be completed (file size limit: EFBIG; a full tmpfs: ENOSPC) exits 1 with
  a message, leaves the previous checkpoint current and intact, and leaves nothing behind.
- Resuming with the whole original command line works; a flag whose value differs is refused
  naming the flag and both values. A run killed before its first checkpoint resumes from 0.
- --keep-checkpoints N keeps the newest N.
"""
import json
import os
import pathlib
import random
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from cli_checks import FAILURES, check

QKV = sys.argv[1]

MODEL = ["--layers", "2", "--heads", "2", "--dim", "16", "--context", "16"]
TRAINING = ["--batch", "4", "--eval-every", "50", "--eval-batches", "2", "--threads", "1",
            "--quiet"]



def run(*args, **kwargs):
    return subprocess.run([QKV, *args], capture_output=True, text=True, **kwargs)


def safetensors_metadata(path):
    data = pathlib.Path(path).read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8:8 + length]).get("__metadata__", {})


def current_step(out):
    """The step of the checkpoint `out` reads as, checking that its files agree."""
    config = json.loads((out / "config.json").read_text())
    state = safetensors_metadata(out / "training_state.safetensors")
    return config["qkv_training_step"], int(state["step"])


def leftovers(out):
    found = [p.name for p in (out / "checkpoints").iterdir() if p.name.startswith(".")] \
        if (out / "checkpoints").is_dir() else []
    return found + [p.name for p in out.iterdir() if p.name.endswith(".qkv-tmp")]


def main():
    work = pathlib.Path(tempfile.mkdtemp(prefix="qkv_checkpoint_test_"))
    text = "".join(f"line {i}: the quick brown fox jumps over the lazy dog.\n"
                   for i in range(300))
    data = work / "data.txt"
    data.write_text(text)
    steps = 300
    common = ["train", "--data", str(data), *MODEL, *TRAINING, "--save-every", "1"]

    reference = work / "reference"
    result = run(*common, "--out", str(reference), "--steps", str(steps))
    check(result.returncode == 0, f"uninterrupted run ({result.stderr.strip()[-300:]})")
    check((reference / "current").is_symlink() and
          (reference / "config.json").resolve().parent.parent.name == "checkpoints",
          "the model directory reads through current/ into one checkpoint folder")
    steps_kept = sorted(p.name for p in (reference / "checkpoints").iterdir())
    check(steps_kept == [f"step-{steps:09d}"], f"one checkpoint kept by default ({steps_kept})")

    # kill -9 at random moments, resuming after each: each kill waits for a random step of
    # the run (so that the 20 kills spread over it whatever the machine's speed), then a random
    # fraction of a step more, to land anywhere in a step or a save.
    killed = work / "killed"
    chooser = random.Random(20261201)
    targets = sorted(chooser.sample(range(1, steps - 20), 20))
    kills = 0
    resumes = 0
    seen_steps = []
    log_path = killed / "train_log.jsonl"
    for target in targets:
        args = [*common, "--out", str(killed), "--steps", str(steps)]
        if kills > 0:
            args.append("--resume")
        process = subprocess.Popen([QKV, *args], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 60
        while time.time() < deadline and process.poll() is None:
            try:
                if log_path.read_text().count("\n") >= target:
                    break
            except FileNotFoundError:
                pass
            time.sleep(0.002)
        time.sleep(chooser.uniform(0, 0.03))
        if process.poll() is not None:
            _, stderr = process.communicate()
            check(False, f"run ended before kill {kills + 1} (status {process.returncode}: "
                  f"{stderr.strip()[-300:]})")
            break
        process.send_signal(signal.SIGKILL)
        process.wait()
        kills += 1
        if not (killed / "current").exists():
            # Killed before the first checkpoint: nothing to load yet, --resume starts over.
            seen_steps.append(0)
            continue
        config_step, state_step = current_step(killed)
        seen_steps.append(config_step)
        if config_step != state_step:
            check(False, f"kill {kills}: config.json at step {config_step} but the training "
                  f"state at {state_step}")
        evaluated = run("eval", "--model", str(killed), "--data", str(data), "--json",
                        "--threads", "1", "--quiet")
        if evaluated.returncode != 0:
            check(False, f"kill {kills} at step {config_step}: qkv eval fails "
                  f"({evaluated.stderr.strip()[-300:]})")
        resumes += 1
    check(kills == 20, f"20 kills at random moments (checkpoint steps seen: {seen_steps})")
    check(len(set(seen_steps)) >= 5, "the kills landed at many different steps")
    check(resumes > 0, "the directory loaded after the kills")
    result = run(*common, "--out", str(killed), "--steps", str(steps), "--resume")
    if result.returncode == 2 and "already trained" in result.stderr:
        pass  # the last resume finished the run
    else:
        check(result.returncode == 0, f"final resume completes ({result.stderr.strip()[-300:]})")
    check((killed / "model.safetensors").read_bytes() ==
          (reference / "model.safetensors").read_bytes(),
          "after 20 kills and resumes the weights equal the uninterrupted run's, bitwise")
    ref_log = [json.loads(line) for line in (reference / "train_log.jsonl").read_text()
               .splitlines()]
    got_log = [json.loads(line) for line in (killed / "train_log.jsonl").read_text().splitlines()]
    check([(e["step"], e["loss"]) for e in got_log] == [(e["step"], e["loss"]) for e in ref_log],
          "the log holds each step once with the uninterrupted run's losses")
    check(leftovers(killed) == [], f"no staging or temporary files left ({leftovers(killed)})")
    info = run("info", str(killed), "--json")
    check(info.returncode == 0 and json.loads(info.stdout)["training_step"] == steps,
          "qkv info reads the final step")

    # A save that fails: the file size limit (ulimit -f gives EFBIG; qkv ignores SIGXFSZ).
    limited = work / "limited"
    result = run(*common, "--out", str(limited), "--steps", "4")
    check(result.returncode == 0, "4-step run for the write-error test")
    before = (limited / "model.safetensors").read_bytes()
    state_size = (limited / "training_state.safetensors").stat().st_size
    blocks = max(1, state_size // 2 // 1024)
    limited_run = subprocess.run(
        ["bash", "-c", f'ulimit -f {blocks} && exec "$@"', "qkv", QKV, *common, "--out",
         str(limited), "--steps", "8", "--resume"], capture_output=True, text=True)
    check(limited_run.returncode == 1 and "File too large" in limited_run.stderr,
          f"a save over the file size limit exits 1 and says why "
          f"({limited_run.returncode}: {limited_run.stderr.strip()[-300:]})")
    check(current_step(limited) == (4, 4) and
          (limited / "model.safetensors").read_bytes() == before,
          "the previous checkpoint stays current and intact")
    check(leftovers(limited) == [], f"nothing half-written stays behind ({leftovers(limited)})")
    check(run("eval", "--model", str(limited), "--data", str(data)).returncode == 0,
          "the directory still loads")
    result = run(*common, "--out", str(limited), "--steps", "8", "--resume")
    short_reference = work / "short_reference"
    run(*common, "--out", str(short_reference), "--steps", "8")
    check(result.returncode == 0 and (limited / "model.safetensors").read_bytes() ==
          (short_reference / "model.safetensors").read_bytes(),
          "resumed without the limit, the run ends where an uninterrupted one does")

    # A full disk: a tmpfs with room for one checkpoint and a half (root only).
    mount_point = work / "tmpfs"
    mount_point.mkdir()
    checkpoint_bytes = sum(p.stat().st_size for p in (short_reference / "current").iterdir())
    size_kib = checkpoint_bytes * 3 // 2 // 1024
    mounted = os.geteuid() == 0 and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(mount_point)],
        capture_output=True).returncode == 0
    if not mounted:
        print("skip: cannot mount a small tmpfs here (needs root and mount permission); "
              "the disk-full case is covered by the file size limit above")
    else:
        try:
            full = mount_point / "run"
            result = run(*common, "--out", str(full), "--steps", "6")
            check(result.returncode == 1 and "No space left on device" in result.stderr,
                  f"a full disk: exit 1, says so ({result.stderr.strip()[-300:]})")
            check((full / "current").exists() and current_step(full)[0] == 1,
                  "the first checkpoint (the one that fitted) stays current")
            check(leftovers(full) == [], f"nothing half-written stays ({leftovers(full)})")
            check(run("eval", "--model", str(full), "--data", str(data)).returncode == 0,
                  "the directory on the full disk still loads")
        finally:
            subprocess.run(["umount", str(mount_point)])

    # Resuming with the original command line, and with one value changed.
    again = work / "again"
    full_command = [*common, "--out", str(again), "--steps", "8", "--tokenizer", "char",
                    "--pos", "learned", "--lr", "0.001"]
    check(run(*full_command, "--stop-at", "3").returncode == 0, "run stopped at step 3")
    result = run(*full_command, "--resume")
    check(result.returncode == 0 and (again / "model.safetensors").read_bytes() ==
          (short_reference / "model.safetensors").read_bytes(),
          f"resume with the same command line ({result.stderr.strip()[-200:]})")
    for flag, value, saved in [("--dim", "32", "16"), ("--pos", "rope", "learned"),
                               ("--tokenizer", "byte", "char"), ("--lr", "0.002", "0.001")]:
        changed = list(full_command)
        changed[changed.index(flag) + 1] = value
        changed[changed.index("--steps") + 1] = "12"
        result = run(*changed, "--resume")
        check(result.returncode == 2 and flag in result.stderr and value in result.stderr and
              saved in result.stderr,
              f"resume with {flag} {value} (checkpoint {saved}): exit 2, names both "
              f"({result.stderr.strip()[-200:]})")

    # Killed before the first checkpoint: --resume starts the run again from step 0.
    early = work / "early"
    early.mkdir()
    (early / "train_log.jsonl").write_text('{"step": 1, "loss": 4.0, "lr"')  # torn line
    result = run(*common, "--out", str(early), "--steps", "8", "--resume")
    check(result.returncode == 0 and (early / "model.safetensors").read_bytes() ==
          (short_reference / "model.safetensors").read_bytes(),
          f"a run stopped before its first checkpoint resumes from 0 "
          f"({result.stderr.strip()[-200:]})")

    # --keep-checkpoints.
    kept = work / "kept"
    result = run(*common, "--out", str(kept), "--steps", "6", "--keep-checkpoints", "3")
    names = sorted(p.name for p in (kept / "checkpoints").iterdir())
    check(result.returncode == 0 and names == [f"step-{s:09d}" for s in (4, 5, 6)],
          f"--keep-checkpoints 3 keeps steps 4, 5, 6 ({names})")

    shutil.rmtree(work, ignore_errors=True)
    for failure in FAILURES:
        print("FAILED:", failure)
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
