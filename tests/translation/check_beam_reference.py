#!/usr/bin/python3
"""qkv translate's greedy decoding and beam search against an independent reference search.

The reference is written here from Hugging Face's generate() for MarianMTModel (transformers
4.x: greedy_search, beam_search with BeamSearchScorer / BeamHypotheses, the Marian generation
settings of ../shared/SPEC.md section 4), in plain PyTorch float64, and it shares no code with
qkv's search (src/qkv/infer/translator.cc): every step recomputes the whole model (encoder and
decoder, no cache) with tests/model_reference/check_marian.py's float64 MarianMTModel on the
same weights qkv loads, and then follows Hugging Face's rules:

  - the step's logits get -inf at <pad> (MarianMTModel.adjust_logits_during_generation, the
    bad_words_ids [[pad]]) before the log-softmax, so the rest is renormalised;
  - at the step whose token is the last max_length allows (cur_len == max_length - 1, the start
    token counted) every token but </s> is -inf and </s> gets 0 (forced_eos_token_id);
  - beam K: the beam scores start at 0 for beam 0 and -1e9 for the others; each step takes the
    2K best of (beam score + log-probability) over K x V (torch.topk), walks them by rank: a
    </s> at rank < K finishes the hypothesis with score sum / generated_len^length_penalty
    (generated_len counts the generated tokens including </s>), a </s> at rank >= K is
    dropped, any other token extends a beam until K beams are filled; the source is done once
    K hypotheses have finished (early_stopping=True); the best finished hypothesis wins;
  - greedy (--beam 1 and the reference's own argmax loop): the most probable token until </s>.

The model: a random MarianMTModel directory with the byte vocabulary (config.json
"qkv_translation_vocabulary": "byte"; </s> 0, byte b = 2 + b, <pad> = decoder start 258),
written by check_marian.py's machinery, its final_logits_bias steering the output to a few
letters and </s> so that texts decode losslessly, hypotheses end at different lengths (some
at max_length, where </s> is forced), and beam search often differs from greedy. Post-norm
with sinusoidal positions (Marian's) and pre-norm with learned positions and GELU.

What it proves: for every source, beam K in {1, 2, 4, 5}, length penalty in {0, 1, 2} (and a
short --max-length), qkv's output text is exactly the reference's; beam 1 equals the
reference's greedy loop (itself checked against the reference beam search with K = 1). The
test requires that beam search differs from greedy in a good share of the cases and that
hypotheses finish both before max_length and at it, and it runs six misreadings of the rules
(VARIANTS: pad masked after the log-softmax, no forced </s>, K candidates instead of 2K, </s>
accepted at any rank, the start token counted in the length, K copies at the first step) on
the same cases, each of which must differ from qkv's output somewhere: the cases can tell
every one of these rules from Hugging Face's. qkv computes in float32: a case where the
reference meets a near-tie (two candidates or two finished hypotheses within NEAR_TIE of each
other at a decision) is not held against qkv when the outputs differ; such cases are counted
and must stay few (90% of the cases are decided without one).

On a mismatch it prints the source, both outputs, the reference's score of each under the
same rules, and the step where the reference's search would have to differ.
Usage: check_beam_reference.py --qkv PATH_TO_qkv --work-dir DIR. Exit status 0: pass.
"""
import argparse
import pathlib
import subprocess
import sys
import time

import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "model_reference"))
import check_marian  # noqa: E402

EOS, PAD, FIRST_BYTE, VOCAB = 0, 258, 2, 259
ALPHABET = b"abcdefg"     # the bytes the output bias favours
OTHER_BIAS = -30.0         # every other byte (and <unk>): never among the 2K best
EOS_BIAS = 0.0
PAD_BIAS = 2.0             # <pad> is masked, but its share sets what renormalising changes
WEIGHT_SCALE = 2.0         # times check_marian's std 0.2 for the embeddings: sharper logits
LINEAR_SCALE = 6.0         # and for the projections: the sublayers outweigh the residual
POSITIONS = 24
NEAR_TIE = 1e-4
BEAMS = (1, 2, 4, 5)
PENALTIES = (0.0, 1.0, 2.0)
MAX_LENGTHS = (POSITIONS, 7)
SOURCES = ["a", "hello", "the cat sat on the mat", "zzz", "beam search", "0123456789",
           "abcabcabcabc", "¿Dónde?", "qkv", "x y z w", "Marian", "gfedcba gfedcba"]

# name: config overrides
MODELS = {
    "post_norm_sinusoidal_relu": dict(),
    "pre_norm_learned_gelu": dict(normalize_before=True, position_encoding="learned",
                                  activation_function="gelu"),
}


def byte_ids(text):
    return [FIRST_BYTE + b for b in text.encode("utf-8")]


def write_model(directory, overrides, seed):
    config = check_marian.marian_config(vocab_size=VOCAB, max_position_embeddings=POSITIONS,
                                        d_model=32, encoder_ffn_dim=48, decoder_ffn_dim=48,
                                        qkv_translation_vocabulary="byte", **overrides)
    assert config["pad_token_id"] == PAD == config["decoder_start_token_id"]
    assert config["eos_token_id"] == EOS
    generator = torch.Generator().manual_seed(seed)
    state = check_marian.random_marian(config, generator, "new")
    state["model.shared.weight"] = state["model.shared.weight"] * WEIGHT_SCALE
    for tensor_name in state:
        if tensor_name.endswith(("proj.weight", "fc1.weight", "fc2.weight")):
            state[tensor_name] = state[tensor_name] * LINEAR_SCALE
    bias = torch.full((VOCAB,), OTHER_BIAS)
    bias[[FIRST_BYTE + b for b in ALPHABET]] = 0.0
    bias[EOS] = EOS_BIAS
    bias[PAD] = PAD_BIAS
    state["final_logits_bias"] = state["final_logits_bias"] + bias[None, :]
    check_marian.write_marian_dir(directory, config, state)
    weights = {name: tensor.double() for name, tensor in state.items()}
    return config, weights


# ---------------------------------------------------------------------------------------------
# The reference search (Hugging Face's rules, float64, no key/value cache).


HF_RULES = dict(renormalize=True, forced_eos=True, candidates=2, eos_below_rank_k=True,
                length_offset=0, first_step_single_beam=True)
# Plausible misreadings of the rules, each one of them changed: the test proves that it can tell
# every one from Hugging Face's (on some case qkv's output differs from the variant's).
VARIANTS = {
    "pad masked after the log-softmax (not renormalised)": dict(renormalize=False),
    "no </s> forced at max_length (open beams finalised)": dict(forced_eos=False),
    "K candidates per step instead of 2K": dict(candidates=1),
    "</s> accepted at any rank of the 2K": dict(eos_below_rank_k=False),
    "length counts the start token too": dict(length_offset=1),
    "the first step starts K copies of the start token": dict(first_step_single_beam=False),
}


class Stepper:
    """Log-probabilities of the next token after each prefix (all of one length, start token
    first) for one source: every prefix's logits are the whole model recomputed over the source
    and the prefix (no key/value cache; a prefix met again reuses its logits); <pad> masked
    before the log-softmax (renormalize) or after it, </s> forced at the last position."""

    def __init__(self, config, weights, source_ids, max_length):
        self.config, self.weights, self.max_length = config, weights, max_length
        self.source = torch.tensor([source_ids], dtype=torch.long)
        self.logits = {}  # prefix -> (V) float64

    def __call__(self, prefixes, renormalize=True, forced_eos=True):
        cur_len = len(prefixes[0])
        if forced_eos and cur_len == self.max_length - 1:  # ForcedEOSTokenLogitsProcessor
            forced = torch.full((len(prefixes), VOCAB), -float("inf"), dtype=torch.float64)
            forced[:, EOS] = 0.0
            return forced, True
        missing = sorted({tuple(p) for p in prefixes} - set(self.logits))
        if missing:
            with torch.no_grad():
                logits = check_marian.marian_logits(
                    self.config, self.weights, self.source.expand(len(missing), -1),
                    torch.tensor(missing, dtype=torch.long))[:, -1]
            self.logits.update(zip(missing, logits))
        logits = torch.stack([self.logits[tuple(p)] for p in prefixes])
        if renormalize:
            log_probs = torch.log_softmax(logits.masked_fill(self.pad_mask(), -float("inf")), -1)
        else:
            log_probs = torch.log_softmax(logits, -1).masked_fill(self.pad_mask(), -float("inf"))
        return log_probs, False

    @staticmethod
    def pad_mask():
        return torch.arange(VOCAB) == PAD


def reference_greedy(stepper):
    """greedy_search: (generated tokens without </s>, summed log-probability, smallest gap
    between the best and the second-best token at any step)."""
    tokens, total, gap = [PAD], 0.0, float("inf")
    while len(tokens) < stepper.max_length:
        log_probs, forced = stepper([tokens])
        top = torch.topk(log_probs[0], 2)
        if not forced:
            gap = min(gap, (top.values[0] - top.values[1]).item())
        token = top.indices[0].item()
        total += top.values[0].item()
        tokens.append(token)
        if token == EOS:
            break
    return [t for t in tokens[1:] if t != EOS], total, gap


def reference_beam(stepper, beam, length_penalty, rules=None):
    """beam_search with BeamSearchScorer (num_beams = beam, early_stopping=True) under
    HF_RULES (or a variant's): (best finished tokens without </s>, its score, every finished
    (score, tokens) best first, the smallest gap between candidates at a decision, where)."""
    rules = dict(HF_RULES, **(rules or {}))
    beams = [[PAD] for _ in range(beam)]
    first = [0.0] + [-1e9 if rules["first_step_single_beam"] else 0.0] * (beam - 1)
    beam_scores = torch.tensor(first, dtype=torch.float64)
    finished = []
    gap, gap_at = float("inf"), None
    wanted = rules["candidates"] * beam
    while len(beams[0]) < stepper.max_length:
        cur_len = len(beams[0])
        log_probs, forced = stepper(beams, rules["renormalize"], rules["forced_eos"])
        scores = (log_probs + beam_scores[:, None]).view(-1)
        top = torch.topk(scores, wanted + 1)
        next_beams, next_scores = [], []
        last_rank = 0
        for rank in range(wanted):
            score, index = top.values[rank].item(), top.indices[rank].item()
            parent, token = divmod(index, VOCAB)
            last_rank = rank
            if token == EOS:
                if rank >= beam and rules["eos_below_rank_k"]:
                    continue
                # generated_len = cur_len + 1 - decoder_prompt_len: the tokens after the start
                # one, </s> included.
                length = cur_len + rules["length_offset"]
                finished.append((score / length ** length_penalty, beams[parent][1:]))
            else:
                next_beams.append(beams[parent] + [token])
                next_scores.append(score)
            if len(next_beams) == beam:
                break
        if not forced:
            # Decisions depend on the order of the ranks walked and of the next one.
            values = top.values[:last_rank + 2]
            values = values[values > -1e8]  # the first step's copies of beam 0 never compete
            if len(values) > 1:
                step_gap = (values[:-1] - values[1:]).min().item()
                if step_gap < gap:
                    gap, gap_at = step_gap, f"step {cur_len}"
        if len(finished) >= beam:  # early_stopping=True: done with K finished
            break
        if not next_beams:  # only a variant can run out of beams
            break
        beams, beam_scores = next_beams, torch.tensor(next_scores, dtype=torch.float64)
    else:
        # max_length reached with fewer than K finished (only without the forced </s>):
        # BeamSearchScorer.finalize adds the open beams, generated_len their tokens.
        for tokens, score in zip(beams, beam_scores.tolist()):
            length = len(tokens) - 1 + rules["length_offset"]
            finished.append((score / length ** length_penalty, tokens[1:]))
    assert finished, "every search finishes a hypothesis"
    ranked = sorted(finished, key=lambda f: f[0], reverse=True)
    if len(ranked) > 1 and ranked[0][0] - ranked[1][0] < gap:
        gap, gap_at = ranked[0][0] - ranked[1][0], "the best two finished hypotheses"
    return ranked[0][1], ranked[0][0], ranked, gap, gap_at


def sequence_score(stepper, tokens, length_penalty):
    """The score the rules give one output (tokens without </s>): summed log-probabilities of
    tokens + </s> (forced at max_length) / generated_len^length_penalty."""
    prefix, total = [PAD], 0.0
    for token in list(tokens) + [EOS]:
        if len(prefix) >= stepper.max_length:
            return float("nan")  # longer than max_length allows
        log_probs, _ = stepper([prefix])
        total += log_probs[0, token].item()
        prefix.append(token)
    return total / (len(tokens) + 1) ** length_penalty


def decode(tokens):
    assert all(FIRST_BYTE <= t < FIRST_BYTE + 256 for t in tokens), tokens
    return bytes(t - FIRST_BYTE for t in tokens).decode("utf-8")


# ---------------------------------------------------------------------------------------------


def run_qkv(qkv, model_dir, beam, penalty, max_length, sources):
    result = subprocess.run(
        [qkv, "translate", "--model", str(model_dir), "--beam", str(beam), "--length-penalty",
         str(penalty), "--max-length", str(max_length), "--threads", "1", "--batch", "4"],
        input=("\n".join(sources) + "\n").encode("utf-8"), capture_output=True)
    if result.returncode != 0:
        sys.exit(f"FAIL: qkv translate --beam {beam} --length-penalty {penalty} --max-length "
                 f"{max_length} exited {result.returncode}: {result.stderr.decode()[-500:]}")
    lines = result.stdout.decode("utf-8").split("\n")
    assert lines[-1] == "", "the output ends with a newline"
    assert len(lines) - 1 == len(sources), f"{len(lines) - 1} lines for {len(sources)} sources"
    return lines[:-1]


class Tally:
    """What the cases covered, and the failures."""

    def __init__(self):
        self.counts = dict(cases=0, compared=0, near_tie_agree=0, near_tie_skipped=0,
                           beam_cases=0, beam_differs=0, early=0, at_max=0)
        self.variant_differs = dict.fromkeys(VARIANTS, 0)
        self.failures = []


def check_case(tally, case, stepper, beam, penalty, greedy_result, got):
    """One source under one beam and length penalty: qkv's output `got` against the
    reference's."""
    counts = tally.counts
    counts["cases"] += 1
    tokens, score, ranked, gap, gap_at = reference_beam(stepper, beam, penalty)
    if beam == 1:
        # The reference's two renderings of greedy agree.
        greedy_tokens, _, greedy_gap = greedy_result
        if tokens != greedy_tokens and min(gap, greedy_gap) >= NEAR_TIE:
            tally.failures.append(f"{case}: reference beam 1 {decode(tokens)!r} != reference "
                                  f"greedy {decode(greedy_tokens)!r}")
    else:
        counts["beam_cases"] += 1
        counts["beam_differs"] += tokens != greedy_result[0]
    for _, hypothesis in ranked:
        counts["at_max" if len(hypothesis) + 2 == stepper.max_length else "early"] += 1
    want = decode(tokens)
    if got == want:
        counts["compared" if gap >= NEAR_TIE else "near_tie_agree"] += 1
        for variant, rules in VARIANTS.items():
            other = reference_beam(stepper, beam, penalty, rules)[0]
            tally.variant_differs[variant] += decode(other) != got
        return
    if gap < NEAR_TIE:
        counts["near_tie_skipped"] += 1
        print(f"skipped (near-tie {gap:.2e} at {gap_at}): {case}: qkv {got!r}, "
              f"reference {want!r}")
        return
    got_score = sequence_score(stepper, byte_ids(got), penalty)
    tally.failures.append(
        f"{case}:\n    qkv       {got!r} (reference score {got_score:.6f})"
        f"\n    reference {want!r} (score {score:.6f}; smallest gap {gap:.2e} at {gap_at})"
        "\n    finished: " + ", ".join(f"{decode(h)!r} {s:.6f}" for s, h in ranked[:6]))


def finish(tally, elapsed):
    counts, failures = tally.counts, tally.failures
    decided = counts["cases"] - counts["near_tie_agree"] - counts["near_tie_skipped"]
    print(f"{counts['cases']} cases: {counts['compared']} compared exactly, "
          f"{counts['near_tie_agree']} with a near-tie (< {NEAR_TIE:g}) in the reference that "
          f"agree, {counts['near_tie_skipped']} skipped near-ties; beam differs from greedy in "
          f"{counts['beam_differs']} of {counts['beam_cases']} beam cases; finished "
          f"hypotheses: {counts['early']} before max_length, {counts['at_max']} at it; "
          f"{elapsed:.1f} s")
    mismatches = len(failures)
    for variant, differing in tally.variant_differs.items():
        print(f"variant rule {variant!r}: its output differs from qkv's in {differing} cases")
        if differing == 0 and mismatches == 0:
            failures.append(f"the cases cannot tell Hugging Face's rules from the variant "
                            f"{variant!r}")
    if counts["beam_differs"] < counts["beam_cases"] // 5:
        failures.append(f"the cases do not discriminate: beam differs from greedy in only "
                        f"{counts['beam_differs']} of {counts['beam_cases']}")
    if counts["early"] < 10 or counts["at_max"] < 10:
        failures.append(f"finished hypotheses should end both before and at max_length: "
                        f"{counts['early']} before, {counts['at_max']} at it")
    if decided < 0.9 * counts["cases"]:
        failures.append(f"too many near-ties: only {decided} of {counts['cases']} cases "
                        "decided without one")
    for failure in failures:
        print("FAIL: " + failure)
    if not failures:
        print("ok: qkv translate equals the reference search in every case")
    return 1 if failures else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--qkv", required=True, help="path of the qkv binary")
    parser.add_argument("--work-dir", required=True, help="where the model directories go")
    args = parser.parse_args()
    torch.set_num_threads(1)
    work_dir = pathlib.Path(args.work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    tally = Tally()
    for seed, (name, overrides) in enumerate(MODELS.items()):
        model_dir = work_dir / name
        config, weights = write_model(model_dir, overrides, 11 + seed)
        for max_length in MAX_LENGTHS:
            steppers = [Stepper(config, weights, byte_ids(s) + [EOS], max_length)
                        for s in SOURCES]
            greedy = [reference_greedy(stepper) for stepper in steppers]
            for beam in BEAMS:
                for penalty in PENALTIES if beam > 1 else (1.0,):
                    outputs = run_qkv(args.qkv, model_dir, beam, penalty, max_length, SOURCES)
                    for source, stepper, greedy_result, got in zip(SOURCES, steppers, greedy,
                                                                   outputs):
                        case = (f"{name} --beam {beam} --length-penalty {penalty} "
                                f"--max-length {max_length}, source {source!r}")
                        check_case(tally, case, stepper, beam, penalty, greedy_result, got)
    return finish(tally, time.time() - started)


if __name__ == "__main__":
    sys.exit(main())
