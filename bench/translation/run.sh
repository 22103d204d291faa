#!/usr/bin/env bash
# qkv against plain PyTorch on English->Spanish Bible translation (issue 13), in one invocation:
# the same model and recipe (scripts/translation_recipe.sh) trained by each for the same
# wall-clock budget, then BLEU/chrF on the test books (Ruth, Jonah, Philippians) and translation
# speed of one model by both decoders. A benchmark, not a test: see docs/translation.md.
#
#   bash bench/translation/run.sh [--minutes M] [--probe-seconds S] [--speed-sentences N]
#                                 [--out DIR] [--translation-only]
#
# 1. qkv trains for M minutes (default 5) on 2 threads (--time-limit).
# 2. "PyTorch at its best": each of 1 and 2 threads x fp32 and bf16 autocast trains for S
#    seconds (default 30) from the same start; the fastest in target tokens/s then trains for M
#    minutes (bench/translation/torch_translation.py: the same model, batches, loss, AdamW,
#    clipping and schedule; it stops when the next step would pass the budget).
# 3. Both models are scored by `qkv eval --bleu --beam 4` on the test books (the same decoder
#    for both, so the scores compare training), with PyTorch's validation loss beside qkv's.
# 4. Translation speed on qkv's model, the first N test sentences (default 120): qkv translate
#    (2 threads; timed by its --stats from the model loaded to the last line written, the
#    span PyTorch's side times; the whole process is recorded too) against PyTorch's
#    incremental decoding (KV cache, cross-attention keys/values once, finished sources
#    dropped) on 1 and 2 threads, fp32, and bf16 autocast where the CPU has bf16 hardware
#    (avx512_bf16 or amx_bf16; without it bf16 trains at a few percent of fp32's speed, see the
#    probes), greedy and beam 4, batch 1 and 32; qkv also in --precision bf16 there. Both must
#    give the same translations (fp32); target tokens (with </s>) per second.
# --translation-only: step 4 alone, on the models and results a full run left in DIR (to
#    measure a change to the decoder without training again).
# OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are unset for this benchmark only (they halve
# OpenBLAS's speed, which PyTorch's matrix products use here); OMP_WAIT_POLICY=PASSIVE for
# PyTorch, qkv's own default for qkv (a bounded spin). Writes DIR/results.json (default build/bench/translation) and prints a table.
# Exit status 0 whatever the ratios (it is a benchmark); 1 when something could not run.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PY=/usr/bin/python3
TORCH="$ROOT/bench/translation/torch_translation.py"
QKV="$ROOT/build/release/tools/cli/qkv"
MINUTES=5
PROBE_SECONDS=30
SPEED_SENTENCES=120
OUT="$ROOT/build/bench/translation"
TRANSLATION_ONLY=0

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"; }
die() { echo "bench/translation: $*" >&2; exit 1; }
positive() { [[ "$2" =~ ^[0-9]+([.][0-9]+)?$ && ! "$2" =~ ^0+([.]0+)?$ ]] || die "$1 needs a positive number, got '$2'"; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --minutes) [[ $# -ge 2 ]] || die "--minutes needs a value"; positive "$1" "$2"; MINUTES="$2"; shift 2 ;;
    --probe-seconds) [[ $# -ge 2 ]] || die "--probe-seconds needs a value"; positive "$1" "$2"
                     PROBE_SECONDS="$2"; shift 2 ;;
    --speed-sentences) [[ $# -ge 2 && "$2" =~ ^[1-9][0-9]*$ ]] || die "--speed-sentences needs a positive integer"
                       SPEED_SENTENCES="$2"; shift 2 ;;
    --out) [[ $# -ge 2 ]] || die "--out needs a directory"; OUT="$2"; shift 2 ;;
    --translation-only) TRANSLATION_ONLY=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument '$1'" ;;
  esac
done

# shellcheck source=../../scripts/translation_recipe.sh
source "$ROOT/scripts/translation_recipe.sh"
UNSET_NOTE="OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-<unset>} OPENBLAS_L2_SIZE=${OPENBLAS_L2_SIZE:-<unset>}"
unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE
# PyTorch waits passively (torch_translation.py sets it); qkv as its binary does by default
# (GOMP_SPINCOUNT=1000, ThreadPool::UseBoundedSpinning).
unset OMP_WAIT_POLICY GOMP_SPINCOUNT

[[ -x "$QKV" ]] || die "$QKV is missing: run scripts/setup.sh first"
CORPUS="$ROOT/build/bible"
if [[ ! -s "$CORPUS/export.json" ]]; then
  echo "bench/translation: exporting the Bible into $CORPUS" >&2
  "$PY" "$ROOT/scripts/bible_pairs.py" "$CORPUS" || die "the Bible export failed (scripts/setup.sh installs diatheke)"
fi
if [[ "$TRANSLATION_ONLY" == 1 ]]; then
  for needed in qkv/model.safetensors qkv/train_log.jsonl torch.json qkv_eval.json torch_eval.json; do
    [[ -s "$OUT/$needed" ]] || die "--translation-only needs a full run's $OUT/$needed"
  done
else
  rm -rf "$OUT"
  mkdir -p "$OUT"
fi
awk -F'\t' -v n="$SPEED_SENTENCES" 'NR <= n { print $1 }' "$CORPUS/test.tsv" > "$OUT/speed.src"
LOAD_START="$(cut -d' ' -f1-3 /proc/loadavg)"
SPEED_PRECISIONS="fp32"
grep -q -w -E "avx512_bf16|amx_bf16" /proc/cpuinfo && SPEED_PRECISIONS="fp32 bf16"

if [[ "$TRANSLATION_ONLY" == 0 ]]; then
echo "bench/translation: qkv trains for $MINUTES minutes" >&2
"$QKV" train --arch encoder-decoder --pairs "$CORPUS/train.tsv" --val-pairs "$CORPUS/valid.tsv" \
    --out "$OUT/qkv" --tokenizer "$TRANSLATION_VOCABULARY" "${TRANSLATION_RECIPE[@]}" \
    --steps 100000000 --eval-every 100000000 --time-limit "${MINUTES}m" --threads 2 --quiet \
    > "$OUT/qkv_train.txt" || die "qkv train failed"

torch_train() {  # out_dir seconds threads precision
  local precision_flag=()
  [[ "$4" == bf16 ]] && precision_flag=(--bf16)
  "$PY" "$TORCH" train --model-dir "$OUT/qkv" --train "$CORPUS/train.tsv" \
      --valid "$CORPUS/valid.tsv" --out "$1" --seconds "$2" --threads "$3" "${precision_flag[@]}" \
      "${TRANSLATION_RECIPE[@]}" > "$1.json" || die "PyTorch training ($3 threads, $4) failed"
}
for threads in 1 2; do
  for precision in fp32 bf16; do
    echo "bench/translation: PyTorch probe, $threads thread(s), $precision, $PROBE_SECONDS s" >&2
    torch_train "$OUT/probe_${threads}_$precision" "$PROBE_SECONDS" "$threads" "$precision"
  done
done
BEST="$("$PY" - "$OUT" <<'EOF'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
probes = {p.stem: json.loads(p.read_text()) for p in out.glob("probe_*.json")}
best = max(probes, key=lambda name: probes[name]["tokens_per_s"])
print(best.split("_")[1], best.split("_")[2])
EOF
)"
read -r BEST_THREADS BEST_PRECISION <<<"$BEST"
echo "bench/translation: PyTorch ($BEST_THREADS thread(s), $BEST_PRECISION) trains for $MINUTES minutes" >&2
torch_train "$OUT/torch" "$("$PY" -c "print($MINUTES * 60)")" "$BEST_THREADS" "$BEST_PRECISION"

for side in qkv torch; do
  echo "bench/translation: BLEU of the $side model on the test books" >&2
  "$QKV" eval --model "$OUT/$side" --pairs "$CORPUS/test.tsv" --bleu --beam 4 --json --quiet \
      --threads 2 > "$OUT/${side}_eval.json" || die "qkv eval of the $side model failed"
done

fi

for beam in 1 4; do
  for batch in 1 32; do
    echo "bench/translation: translation speed, beam $beam, batch $batch" >&2
    for precision in $SPEED_PRECISIONS; do
      name="qkv_b${beam}_n${batch}"
      [[ "$precision" == bf16 ]] && name="${name}_bf16"
      start=$(date +%s.%N)
      "$QKV" translate --model "$OUT/qkv" --beam "$beam" --batch "$batch" --threads 2 \
          --precision "$precision" --stats < "$OUT/speed.src" > "$OUT/$name.txt" \
          2> "$OUT/$name.stats" || die "qkv translate --precision $precision failed"
      end=$(date +%s.%N)
      # seconds: --stats's span, the model loaded to the last line written (the span PyTorch's
      # side times); process_seconds: the whole command, loading included.
      "$PY" -c 'import json, sys
stats = json.loads(open(sys.argv[1]).read().splitlines()[-1])
stats["process_seconds"] = float(sys.argv[2])
print(json.dumps(stats))' "$OUT/$name.stats" "$("$PY" -c "print($end - $start)")" \
          > "$OUT/$name.json" || die "qkv translate --stats wrote no statistics"
    done
    for threads in 1 2; do
      for precision in $SPEED_PRECISIONS; do
        precision_flag=()
        [[ "$precision" == bf16 ]] && precision_flag=(--bf16)
        "$PY" "$TORCH" translate --model-dir "$OUT/qkv" --input "$OUT/speed.src" \
            --output "$OUT/torch_b${beam}_n${batch}_t${threads}_$precision.txt" --beam "$beam" \
            --batch "$batch" --threads "$threads" "${precision_flag[@]}" \
            > "$OUT/torch_b${beam}_n${batch}_t${threads}_$precision.json" || die "PyTorch translate failed"
      done
    done
  done
done
LOAD_END="$(cut -d' ' -f1-3 /proc/loadavg)"

OUT="$OUT" MINUTES="$MINUTES" PROBE_SECONDS="$PROBE_SECONDS" UNSET_NOTE="$UNSET_NOTE" \
LOAD_START="$LOAD_START" LOAD_END="$LOAD_END" "$PY" - <<'EOF'
import json, os, pathlib, platform, re
import torch
e = os.environ
out = pathlib.Path(e["OUT"])
load = lambda name: json.loads((out / name).read_text())

cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
flags = next((l.split(":", 1)[1].split() for l in open("/proc/cpuinfo") if l.startswith("flags")), [])
isa = [f for f in ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]
qkv_isa = e.get("QKV_ISA") or ("avx512" if "avx512f" in flags else "avx2" if "avx2" in flags else "scalar")

log = [json.loads(l) for l in (out / "qkv" / "train_log.jsonl").read_text().splitlines()]
qkv_seconds = sum(x["tokens"] / x["tokens_per_s"] for x in log)
qkv_train = {"steps": len(log), "seconds": qkv_seconds,
             "tokens_per_s": sum(x["tokens"] for x in log) / qkv_seconds,
             "valid_loss": log[-1].get("val_loss")}
torch_train = load("torch.json")
probes = {p.stem: json.loads(p.read_text()) for p in sorted(out.glob("probe_*.json"))}
evals = {side: load(f"{side}_eval.json") for side in ("qkv", "torch")}

speed = []
for beam in (1, 4):
    for batch in (1, 32):
        qkv_text = (out / f"qkv_b{beam}_n{batch}.txt").read_text()
        runs = {}
        for threads in (1, 2):
            for precision in ("fp32", "bf16"):
                name = f"torch_b{beam}_n{batch}_t{threads}_{precision}"
                if not (out / f"{name}.json").exists():
                    continue  # bf16 decoding only where the CPU has bf16 hardware
                runs[f"{threads}t {precision}"] = dict(load(f"{name}.json"),
                                                       same=(out / f"{name}.txt").read_text() == qkv_text)
        best = max(runs, key=lambda r: runs[r]["tokens_per_s"])
        # Each side counts the tokens it generated (in fp32 both give the same translations;
        # in bf16 a few may differ).
        qkv_run = load(f"qkv_b{beam}_n{batch}.json")
        tokens = qkv_run["target_tokens"]
        qkv_tps = tokens / qkv_run["seconds"]
        # qkv in bf16 where the CPU has bf16 hardware: its translations may differ from fp32's
        # in a few sentences (same_lines says how many).
        bf16_name = f"qkv_b{beam}_n{batch}_bf16"
        qkv_bf16 = None
        if (out / f"{bf16_name}.json").exists():
            bf16_lines = (out / f"{bf16_name}.txt").read_text().splitlines()
            bf16_run = load(f"{bf16_name}.json")
            qkv_bf16 = {"tokens_per_s": bf16_run["target_tokens"] / bf16_run["seconds"],
                        "same_lines": sum(a == b for a, b in zip(bf16_lines, qkv_text.splitlines())),
                        "lines": len(bf16_lines)}
        qkv_best = max(qkv_tps, qkv_bf16["tokens_per_s"] if qkv_bf16 else 0.0)
        speed.append({"beam": beam, "batch": batch, "tokens": tokens, "qkv_tokens_per_s": qkv_tps,
                      "qkv_process_tokens_per_s": tokens / qkv_run["process_seconds"],
                      "qkv_bf16": qkv_bf16, "torch": runs, "torch_best": best,
                      "ratio": qkv_best / runs[best]["tokens_per_s"],
                      "fp32_same_output": all(r["same"] for n, r in runs.items() if "fp32" in n)})

print()
print(f"bench/translation: English->Spanish Bible, {e['MINUTES']} minutes of training each")
print(f"machine: {cpu}, {os.cpu_count()} logical CPUs, ISA {' '.join(isa)}; qkv kernels: {qkv_isa}; "
      f"PyTorch {torch.__version__}; load {e['LOAD_START']} at start, {e['LOAD_END']} at end")
print(f"unset for this run: {e['UNSET_NOTE']}; OMP_WAIT_POLICY=PASSIVE for PyTorch, "
      "qkv's default GOMP_SPINCOUNT=1000")
print()
print("PyTorch probes (target tokens/s, {} s each): ".format(e["PROBE_SECONDS"]) +
      ", ".join(f"{n.split('_')[1]}t {n.split('_')[2]} {p['tokens_per_s']:.0f}" for n, p in probes.items()))
print(f"{'training':<28} {'steps':>6} {'tokens/s':>9} {'valid loss':>10} {'BLEU':>6} {'chrF':>6}")
rows = [("qkv (2 threads)", qkv_train["steps"], qkv_train["tokens_per_s"], qkv_train["valid_loss"], evals["qkv"]),
        (f"PyTorch ({torch_train['threads']}t {torch_train['precision']})", torch_train["steps"],
         torch_train["tokens_per_s"], torch_train["valid_loss"], evals["torch"])]
for name, steps, tps, valid, ev in rows:
    print(f"{name:<28} {steps:>6} {tps:>9.0f} {valid:>10.4f} {ev['bleu']:>6.2f} {ev['chrf']:>6.2f}")
print(f"training tokens/s ratio qkv / PyTorch best: {qkv_train['tokens_per_s'] / torch_train['tokens_per_s']:.2f}")
print()
print(f"{'translation':<18} {'tokens':>6} {'qkv tok/s':>10} {'(process)':>9} {'qkv bf16':>9} "
      f"{'PyTorch best':>22} {'ratio':>6} {'same output':>11}")
for s in speed:
    best = s["torch"][s["torch_best"]]
    bf16 = f"{s['qkv_bf16']['tokens_per_s']:>9.0f}" if s["qkv_bf16"] else f"{'-':>9}"
    print(f"beam {s['beam']} batch {s['batch']:<5} {s['tokens']:>6} {s['qkv_tokens_per_s']:>10.0f} "
          f"{s['qkv_process_tokens_per_s']:>9.0f} {bf16} "
          f"{best['tokens_per_s']:>10.0f} ({s['torch_best']:>8}) {s['ratio']:>6.2f} {str(s['fp32_same_output']):>11}")
print("ratio: qkv's best precision / PyTorch's best, both timed from the model loaded to the last "
      "translation; (process): qkv's whole command, loading included; same output: PyTorch fp32 == "
      "qkv fp32")
results = {"machine": {"cpu": cpu, "isa": isa, "qkv_isa": qkv_isa, "torch": torch.__version__,
                       "platform": platform.platform()},
           "minutes": float(e["MINUTES"]), "qkv_train": qkv_train, "torch_train": torch_train,
           "torch_probes": probes, "eval": evals, "translation_speed": speed}
(out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
print(f"\nresults: {out / 'results.json'}")
EOF
