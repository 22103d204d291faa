#!/usr/bin/python3
"""End-to-end tests of the encoder-decoder commands through the binary: `qkv translate`,
`qkv eval --pairs [--bleu]` and `qkv attention --source --target`.

The model directory is written without `qkv train`: a random MarianMTModel directory with the
byte vocabulary (config.json "qkv_translation_vocabulary": "byte"; vocab_size 259, </s> 0,
<pad> = decoder start 258), by tests/model_reference/check_marian.py's machinery, whose float64
PyTorch model of modeling_marian's semantics is also the reference for the loss. BLEU and chrF
are checked against tests/metrics/check_translation_metrics.py's independent implementation.

Checks: eval's loss equals the reference's token-mean cross-entropy (rel 1e-5); translations
are the same for every --batch (greedy and beam), come in input order (each line alone gives
the same line), keep empty lines; --bleu's BLEU and chrF equal the reference's on the same
outputs; bad input gives the documented exit status and a message naming the problem; the
attention maps of every kind are written, shaped as the tokens, rows summing to 1.
Usage: test_translate.py QKV
"""
import json
import math
import pathlib
import subprocess
import sys
import tempfile

import torch

TESTS = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(TESTS / "model_reference"))
sys.path.insert(0, str(TESTS / "metrics"))
import check_marian  # noqa: E402
import check_translation_metrics  # noqa: E402
from cli_checks import FAILURES, check  # noqa: E402

QKV = sys.argv[1]
POSITIONS = 48
PAD, EOS, FIRST_BYTE = 258, 0, 2
EOS_BIAS, SPACE_BIAS = 3.5, 1.0



def run(*args, stdin=None):
    return subprocess.run([QKV, *map(str, args)], input=stdin, capture_output=True)


def output_lines(result):
    """stdout as lines: exactly one '\\n' ends each (splitlines would also split at other
    separators a byte model may generate)."""
    text = result.stdout.decode("utf-8")
    check(text == "" or text.endswith("\n"), "output ends with a newline")
    return text.split("\n")[:-1]


def write_byte_model(directory):
    config = check_marian.marian_config(vocab_size=259, max_position_embeddings=POSITIONS,
                                        qkv_translation_vocabulary="byte")
    assert config["pad_token_id"] == PAD and config["decoder_start_token_id"] == PAD
    assert config["eos_token_id"] == EOS
    generator = torch.Generator().manual_seed(7)
    state = check_marian.random_marian(config, generator, "new")
    # A random model's favourite bytes are as often as not no UTF-8 and it rarely stops; the
    # output bias steers it to lower-case letters and an early </s>, so that its translations
    # can serve as targets (chrF above 0) and stay within the positions.
    bias = torch.full((259,), -4.0)
    bias[[FIRST_BYTE + b for b in b"abcdefghijklmnopqrstuvwxyz "]] = 1.0
    bias[EOS] = EOS_BIAS
    bias[FIRST_BYTE + ord(" ")] = SPACE_BIAS
    state["final_logits_bias"] = state["final_logits_bias"] + bias[None, :]
    check_marian.write_marian_dir(directory, config, state)
    weights = {name: tensor.double() for name, tensor in state.items()}
    return config, weights


def byte_ids(text):
    return [FIRST_BYTE + b for b in text.encode("utf-8")]


def reference_loss(config, weights, pairs):
    """The token mean of the cross-entropy over every label of one padded batch of all pairs."""
    sources = [byte_ids(s) + [EOS] for s, _ in pairs]
    targets = [byte_ids(t) for _, t in pairs]
    s_len = max(map(len, sources))
    t_len = max(len(t) for t in targets) + 1
    source = torch.full((len(pairs), s_len), PAD, dtype=torch.long)
    decoder_input = torch.full((len(pairs), t_len), PAD, dtype=torch.long)
    labels = torch.full((len(pairs), t_len), -100, dtype=torch.long)
    for b, (src, tgt) in enumerate(zip(sources, targets)):
        source[b, :len(src)] = torch.tensor(src)
        decoder_input[b, :len(tgt) + 1] = torch.tensor([PAD] + tgt)
        labels[b, :len(tgt) + 1] = torch.tensor(tgt + [EOS])
    with torch.no_grad():
        logits = check_marian.marian_logits(config, weights, source, decoder_input)
    return check_marian.label_loss(logits, labels, -100), int((labels != -100).sum())


def write_pairs(path, pairs):
    path.write_bytes("".join(f"{s}\t{t}\n" for s, t in pairs).encode("utf-8"))


def test_translate(model, work):
    lines = [f"sentence {i}: {'x' * (i % 7)} ñ" if i % 5 else "" for i in range(40)]
    lines[3] = "¿Dónde está el niño?"
    source = ("\n".join(lines) + "\n").encode("utf-8")
    outputs = {}
    for beam, batch in [(1, 1), (1, 7), (1, 64), (3, 1), (3, 5)]:
        result = run("translate", "--model", model, "--beam", beam, "--batch", batch,
                     "--threads", 1, stdin=source)
        check(result.returncode == 0,
              f"translate --beam {beam} --batch {batch} succeeds ({result.stderr[-300:]!r})")
        outputs[beam, batch] = output_lines(result)
        check(len(outputs[beam, batch]) == len(lines),
              f"--beam {beam} --batch {batch}: one output line per input line")
    check(outputs[1, 1] == outputs[1, 7] == outputs[1, 64], "greedy: the same for --batch 1, 7, 64")
    check(outputs[3, 1] == outputs[3, 5], "beam 3: the same for --batch 1 and 5")
    greedy = outputs[1, 7]
    check(all(greedy[i] == "" for i, line in enumerate(lines) if line == ""),
          "empty input lines give empty output lines")
    check(any(greedy[i] for i, line in enumerate(lines) if line), "the model translates")
    # Input order: each line translated alone gives the line at its place.
    alone = [output_lines(run("translate", "--model", model, "--threads", 1,
                              stdin=(lines[i] + "\n").encode("utf-8")))[0]
             for i in (1, 3, 9, 38)]
    check(alone == [greedy[i] for i in (1, 3, 9, 38)],
          "each line alone translates to the line at its place (input order)")
    # --input FILE and a last line without '\n' read the same; CRLF is one line ending.
    path = work / "sources.txt"
    path.write_bytes(source.rstrip(b"\n").replace(b"\n", b"\r\n"))
    from_file = run("translate", "--model", model, "--input", path, "--threads", 1)
    check(from_file.returncode == 0 and output_lines(from_file) == greedy,
          "--input FILE (CRLF, no final newline) gives the same lines")
    check(run("translate", "--model", model, stdin=b"").stdout == b"", "empty input: no output")
    # --stats: the same output, and one JSON line on stderr counting what was translated.
    stats_run = run("translate", "--model", model, "--batch", 7, "--stats", "--threads", 1,
                    stdin=source)
    check(stats_run.returncode == 0 and output_lines(stats_run) == greedy,
          "--stats leaves the translations as they were")
    stats = json.loads(stats_run.stderr.decode("utf-8").strip().splitlines()[-1])
    sentences = sum(1 for line in lines if line)
    check(stats["sentences"] == sentences,
          f"--stats counts the {sentences} non-empty lines (got {stats['sentences']})")
    positions = json.loads((pathlib.Path(model) / "config.json").read_text())[
        "max_position_embeddings"]
    check(sentences <= stats["target_tokens"] <= sentences * (positions - 1),
          f"--stats: target_tokens {stats['target_tokens']} is one </s> per sentence or more, "
          f"at most the positions")
    check(stats["seconds"] > 0 and
          abs(stats["tokens_per_s"] * stats["seconds"] - stats["target_tokens"]) <=
          1e-6 * stats["target_tokens"], f"--stats: tokens_per_s = target_tokens / seconds {stats}")
    return lines, greedy


def test_eval(model, work, config, weights, lines, greedy):
    # Half of the targets are the model's own translations (so that BLEU is not 0), the rest
    # invented; every field must be a TSV field: non-empty, no tab.
    pairs = []
    for i, (line, hypothesis) in enumerate(zip(lines, greedy)):
        if not line:
            continue
        # (U+FFFD, which the decoder writes for bytes that are no UTF-8, is 3 bytes again.)
        usable = (hypothesis.strip() != "" and "\t" not in hypothesis
                  and len(hypothesis.encode("utf-8")) + 1 <= POSITIONS)
        pairs.append((line, hypothesis if usable and i % 2 == 0 else f"target {i} ñ"))
    pairs_path = work / "pairs.tsv"
    write_pairs(pairs_path, pairs)
    want, labels = reference_loss(config, weights, pairs)
    for batch_tokens in (4096, 60):
        result = run("eval", "--model", model, "--pairs", pairs_path, "--json", "--quiet",
                     "--batch-tokens", batch_tokens, "--threads", 1)
        check(result.returncode == 0, f"eval --pairs --batch-tokens {batch_tokens} succeeds "
              f"({result.stderr[-300:]!r})")
        got = json.loads(result.stdout)
        check(abs(got["loss"] - want) <= 1e-5 * want,
              f"--batch-tokens {batch_tokens}: loss {got['loss']:.8f} == torch f64 {want:.8f}")
        check(abs(got["perplexity"] - math.exp(got["loss"])) <= 1e-9 * got["perplexity"],
              "perplexity = exp(loss)")
        check(got["tokens"] == labels and got["pairs"] == len(pairs),
              f"tokens {got['tokens']} == {labels} labels, pairs {got['pairs']}")
    plain = run("eval", "--model", model, "--pairs", pairs_path, "--quiet")
    check(plain.returncode == 0 and plain.stdout.startswith(b"loss ")
          and b"perplexity" in plain.stdout, f"eval's summary line: {plain.stdout!r}")

    sources_path = work / "pair_sources.txt"
    sources_path.write_bytes("".join(s + "\n" for s, _ in pairs).encode("utf-8"))
    references = [t for _, t in pairs]
    for beam in (1, 2):
        result = run("eval", "--model", model, "--pairs", pairs_path, "--bleu", "--beam", beam,
                     "--json", "--quiet", "--threads", 1)
        check(result.returncode == 0, f"eval --bleu --beam {beam} succeeds "
              f"({result.stderr[-300:]!r})")
        got = json.loads(result.stdout)
        hypotheses = output_lines(run("translate", "--model", model, "--input", sources_path,
                                      "--beam", beam, "--threads", 1))
        bleu = check_translation_metrics.corpus_bleu(hypotheses, references)["bleu"]
        chrf = check_translation_metrics.corpus_chrf(hypotheses, references)["chrf"]
        check(abs(got["bleu"] - bleu) <= 1e-9 and abs(got["chrf"] - chrf) <= 1e-9,
              f"--beam {beam}: BLEU {got['bleu']:.4f} chrF {got['chrf']:.4f} == the Python "
              f"reference's {bleu:.4f} {chrf:.4f}")
        check(abs(got["loss"] - want) <= 1e-5 * want, "--bleu keeps the loss")
        if beam == 1:
            # The random model's translations are single words ("x", "xxxxx"), so BLEU-4 is 0;
            # chrF is not, and it pairs each hypothesis with its own reference.
            check(chrf > 0, f"chrF is not 0 ({chrf:.3f}): half the targets are translations")
    plain = run("eval", "--model", model, "--pairs", pairs_path, "--bleu", "--quiet")
    check(b"BLEU" in plain.stdout and b"chrF" in plain.stdout,
          f"--bleu's summary line names BLEU and chrF: {plain.stdout!r}")
    return pairs_path


def expect_error(what, result, status, needles):
    message = result.stderr.decode("utf-8", "replace")
    check(result.returncode == status and all(n in message for n in needles),
          f"{what}: exit {result.returncode} (want {status}), message names {needles}: "
          f"{message.strip()[:300]!r}")


def test_errors(model, work, pairs_path):
    gpt2 = work / "gpt2"
    gpt2.mkdir()
    (gpt2 / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_layer": 2}))
    expect_error("translate a GPT-2 directory", run("translate", "--model", gpt2, stdin=b"hi\n"),
                 2, ["not an encoder-decoder", "gpt2", "qkv sample"])
    long_line = b"ok\n\n" + b"y" * POSITIONS + b"\n"
    expect_error("a source longer than the positions",
                 run("translate", "--model", model, stdin=long_line), 1,
                 ["stdin:3", f"{POSITIONS} positions"])
    expect_error("invalid UTF-8", run("translate", "--model", model, stdin=b"fine\nbad \xff\n"),
                 1, ["stdin:2", "UTF-8", "byte 4"])
    expect_error("--beam 0", run("translate", "--model", model, "--beam", 0, stdin=b"a\n"), 2,
                 ["--beam"])
    expect_error("--max-length past the positions",
                 run("translate", "--model", model, "--max-length", POSITIONS + 1, stdin=b"a\n"),
                 2, ["--max-length", str(POSITIONS)])
    expect_error("--batch 0", run("translate", "--model", model, "--batch", 0, stdin=b"a\n"), 2,
                 ["--batch"])
    expect_error("eval --pairs on a decoder-only directory",
                 run("eval", "--model", gpt2, "--pairs", pairs_path), 2,
                 ["--pairs", "decoder-only"])
    data = work / "data.txt"
    data.write_text("some text\n")
    expect_error("eval --data on an encoder-decoder", run("eval", "--model", model, "--data", data),
                 2, ["encoder-decoder", "--pairs"])
    expect_error("--bleu without --pairs", run("eval", "--model", model, "--bleu"), 2, ["--bleu"])
    too_long = work / "long.tsv"
    write_pairs(too_long, [("short", "fine"), ("fine", "z" * POSITIONS)])
    expect_error("eval: a target longer than the positions",
                 run("eval", "--model", model, "--pairs", too_long), 1,
                 [f"{too_long}:2", "target", f"{POSITIONS} positions"])
    no_vocabulary = work / "no_vocabulary"
    no_vocabulary.mkdir()
    config = json.loads((model / "config.json").read_text())
    del config["qkv_translation_vocabulary"]
    (no_vocabulary / "config.json").write_text(json.dumps(config))
    (no_vocabulary / "model.safetensors").write_bytes((model / "model.safetensors").read_bytes())
    expect_error("a directory without a vocabulary",
                 run("translate", "--model", no_vocabulary, stdin=b"a\n"), 1,
                 ["qkv_translation_vocabulary", "source.spm"])


def test_attention(model, work, config):
    source, target = "¿Dónde?", "Where?"
    out = work / "maps"
    out.mkdir()
    result = run("attention", "--model", model, "--source", source, "--target", target,
                 "--out", out, "--html", out / "page.html", "--threads", 1)
    check(result.returncode == 0, f"attention --source --target succeeds ({result.stderr!r})")
    data = json.loads((out / "attention.json").read_text())
    s = len(source.encode("utf-8")) + 1
    t = len(target.encode("utf-8")) + 1
    heads = config["decoder_attention_heads"]
    check(len(data["source_tokens"]) == s and len(data["target_tokens"]) == t,
          f"labels: {s} source pieces with </s>, {t} decoder positions with the start")
    check(data["source_tokens"][-1] == "</s>" and data["target_tokens"][0] == "<pad>",
          "labels are the vocabulary's pieces")
    shapes = {"encoder_self_attention": (config["encoder_layers"], heads, s, s),
              "decoder_self_attention": (config["decoder_layers"], heads, t, t),
              "cross_attention": (config["decoder_layers"], heads, t, s)}
    for kind, shape in shapes.items():
        weights = torch.tensor(data[kind], dtype=torch.float64)
        check(tuple(weights.shape) == shape, f"{kind}: shape {tuple(weights.shape)} == {shape}")
        worst = (weights.sum(-1) - 1).abs().max().item()
        check(worst < 1e-5, f"{kind}: every row sums to 1 (worst {worst:.2e})")
    decoder = torch.tensor(data["decoder_self_attention"])
    check(bool((decoder.triu(1) == 0).all()), "decoder self-attention is causal")
    cross = torch.tensor(data["cross_attention"])
    check(bool((cross > 0).all()), "cross-attention sees every source position")
    for kind in ("encoder_", "decoder_", "cross_"):
        for layer in range(config[("encoder" if kind == "encoder_" else "decoder") + "_layers"]):
            svg = out / f"attention_{kind}layer{layer}.svg"
            check(svg.is_file() and str(svg).encode() in result.stdout, f"{svg.name} written")
    page = (out / "page.html").read_text()
    check("cross-attention" in page and "encoder self-attention" in page,
          "the explorer page holds the three kinds")
    expect_error("attention --text on an encoder-decoder",
                 run("attention", "--model", model, "--text", "hi", "--out", out), 2,
                 ["--source", "--target"])
    long_source = "w" * POSITIONS
    expect_error("attention: a source past the positions",
                 run("attention", "--model", model, "--source", long_source, "--target", "a",
                     "--out", out), 2, ["--source", str(POSITIONS)])


def main():
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="qkv_translate_test_") as name:
        work = pathlib.Path(name)
        model = work / "model"
        config, weights = write_byte_model(model)
        lines, greedy = test_translate(model, work)
        pairs_path = test_eval(model, work, config, weights, lines, greedy)
        test_errors(model, work, pairs_path)
        test_attention(model, work, config)
    if FAILURES:
        print(f"{len(FAILURES)} failure(s)")
        return 1
    print("all passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
