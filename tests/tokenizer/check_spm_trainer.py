#!/usr/bin/python3
"""qkv's SentencePiece trainer (qkv/tokenizer/sentencepiece_trainer.h, `--tokenizer spm:N`)
against the sentencepiece Python module (Debian's python3-sentencepiece).

qkv_spm_trainer_reference trains models on an English-Spanish corpus written here (unigram and
BPE, byte fallback, identity normalisation, a pairs file) and encodes a list of texts; this
script requires:
  * the same model bytes from two runs (training is deterministic across processes), and the
    same bytes as spm.SentencePieceTrainer.train with the options the header documents;
  * the Marian layout as the Python module reads the model: N pieces, </s> 0 (control),
    <unk> 1 (unknown), no <s>, no <pad>; the runner's ids {eos 0, unk 1, pad N, size N + 1};
  * vocab.json == {sp.id_to_piece(i): i for i < N} plus "<pad>": N;
  * qkv's ids == sp.encode(text) + [0] == what Hugging Face's MarianTokenizer does (pieces
    looked up in vocab.json, then vocab["</s>"]), and qkv's SentencePieceTokenizer with EOS
    gives the same; sp.decode of them == qkv's decode, == the text for accented Spanish;
  * the vocabulary-size errors name sizes that are right: the smallest size that trains and
    the largest, as the Python module finds them.

Usage: check_spm_trainer.py --runner qkv_spm_trainer_reference --work-dir DIR
Exit status 0 all agree, 1 a difference, 77 (ctest's "skipped") without the sentencepiece module.
"""

import argparse
import io
import json
import os
import random
import re
import shutil
import subprocess
import sys

SKIPPED = 77

try:
    import sentencepiece as spm
except ImportError:
    print("SKIPPED: the sentencepiece Python module is missing; run scripts/setup.sh "
          "(Debian: python3-sentencepiece)")
    sys.exit(SKIPPED)

SUBJECTS = [
    ("The child", "El niño"), ("My mother", "Mi madre"), ("The old man", "El anciano"),
    ("Our teacher", "Nuestra profesora"), ("The dog", "El perro"), ("Your sister", "Tu hermana"),
    ("The doctor", "El médico"), ("The woman from Spain", "La mujer de España"),
    ("His friend", "Su amigo"), ("The young girl", "La niña"), ("The fisherman", "El pescador"),
    ("Everybody", "Todo el mundo"), ("The baker", "El panadero"), ("Your uncle", "Tu tío"),
]
PREDICATES = [
    ("is at home", "está en casa"), ("eats bread every morning", "come pan cada mañana"),
    ("reads a book in the garden", "lee un libro en el jardín"),
    ("lives near the station", "vive cerca de la estación"),
    ("was happy yesterday", "estaba feliz ayer"),
    ("goes to the mountains in winter", "va a las montañas en invierno"),
    ("sings a song about the sea", "canta una canción sobre el mar"),
    ("drinks coffee after lunch", "bebe café después del almuerzo"),
    ("is learning to swim", "está aprendiendo a nadar"),
    ("writes a long letter to the king", "escribe una carta larga al rey"),
    ("buys fruit at the market", "compra fruta en el mercado"),
    ("does not understand the question", "no entiende la pregunta"),
]
ENDINGS = [(".", "."), ("!", "!", "¡"), ("?", "?", "¿")]


def pairs(seed=11, count=1500):
    rng = random.Random(seed)
    result = []
    for _ in range(count):
        (s_en, s_es), (p_en, p_es) = rng.choice(SUBJECTS), rng.choice(PREDICATES)
        ending = rng.choice(ENDINGS)
        en = f"{s_en} {p_en}{ending[0]}"
        es = f"{s_es} {p_es}{ending[1]}"
        if len(ending) == 3:
            es = ending[2] + es  # ¿...? and ¡...!
        if rng.random() < 0.3:
            n = rng.randint(1, 2000)
            en += f" It costs {n} euros."
            es += f" Cuesta {n} euros."
        result.append((en, es))
    result.append(("Where is the child?", "¿Dónde está el niño?"))
    return result


TEXTS = [
    "", "¿Dónde está el niño?", "¡La niña canta una canción después del almuerzo!",
    "The doctor lives near the station.", "Mi madre está aprendiendo a nadar.",
    "El pescador compra fruta en el mercado. Cuesta 1234 euros.",
    "  leading and  double   spaces ", "ÑANDÚ, pingüino, corazón", "Ｔhe full-width T",
    "日本語 and emoji \U0001f600 outside the corpus", "numbers 3.14159 and 2024",
    "</s> <unk> <pad> as plain text", "tabs\tand\nnewlines",
]

# name, runner flags, Python trainer options (beyond the layout), training input
CASES = [
    ("unigram", ["--vocab-size", "300"], dict(vocab_size=300, model_type="unigram"), "sentences"),
    ("bpe", ["--vocab-size", "300", "--model-type", "bpe"],
     dict(vocab_size=300, model_type="bpe"), "sentences"),
    ("byte_fallback", ["--vocab-size", "400", "--byte-fallback"],
     dict(vocab_size=400, model_type="unigram", byte_fallback=True), "sentences"),
    ("identity", ["--vocab-size", "250", "--normalization", "identity"],
     dict(vocab_size=250, model_type="unigram", normalization_rule_name="identity"), "sentences"),
    ("pairs", ["--vocab-size", "200"], dict(vocab_size=200, model_type="unigram"), "pairs"),
]

# The layout and determinism settings the header documents.
LAYOUT = dict(character_coverage=1.0, eos_id=0, unk_id=1, bos_id=-1, pad_id=-1, eos_piece="</s>",
              unk_piece="<unk>", input_sentence_size=0, shuffle_input_sentence=False,
              num_threads=1, minloglevel=2, normalization_rule_name="nmt_nfkc",
              byte_fallback=False)


def python_train(sentences, options):
    """The model bytes of spm.SentencePieceTrainer.train, or the exception's message."""
    model = io.BytesIO()
    kwargs = dict(LAYOUT)
    kwargs.update(options)
    kwargs.setdefault("max_sentence_length", max(4192, max(len(s.encode()) for s in sentences)))
    try:
        spm.SentencePieceTrainer.train(sentence_iterator=iter([s for s in sentences if s]),
                                       model_writer=model, **kwargs)
    except (RuntimeError, OSError) as error:
        return str(error)
    return model.getvalue()


def run_runner(args, case_dir, flags, train_flag, train_path, texts_path):
    os.makedirs(case_dir, exist_ok=True)
    command = [args.runner, train_flag, train_path, *flags, "--texts", texts_path,
               "--model-out", os.path.join(case_dir, "source.spm"),
               "--vocab-out", os.path.join(case_dir, "vocab.json"),
               "--output", os.path.join(case_dir, "result.json")]
    return subprocess.run(command, capture_output=True, check=False)


def read(path, mode="rb"):
    with open(path, mode) as f:
        return f.read()


def marian_tokenizer_ids(sp, vocab, text):
    """Hugging Face's MarianTokenizer (_tokenize, _convert_token_to_id,
    build_inputs_with_special_tokens): SentencePiece's pieces, each looked up in vocab.json
    (one missing from it, such as an unknown character: SentencePiece's piece_to_id, which is
    <unk>'s id for it), then vocab["</s>"]."""
    ids = []
    for piece in sp.encode(text, out_type=str):
        ids.append(vocab[piece] if piece in vocab else sp.piece_to_id(piece))
    return ids + [vocab["</s>"]]


def check_case(args, name, flags, options, source, inputs, texts, texts_path):
    failures = []
    train_flag, train_path, sentences = inputs[source]
    results = []
    for attempt in range(2):
        case_dir = os.path.join(args.work_dir, f"{name}_{attempt}")
        result = run_runner(args, case_dir, flags, train_flag, train_path, texts_path)
        if result.returncode != 0:
            return [f"{name}: the runner exited {result.returncode}: "
                    f"{result.stderr.decode(errors='replace')}"]
        results.append((read(os.path.join(case_dir, "source.spm")),
                        json.loads(read(os.path.join(case_dir, "vocab.json"), "r")),
                        json.loads(read(os.path.join(case_dir, "result.json"), "r"))))
    model, vocab, result = results[0]
    if results[1][0] != model:
        failures.append(f"{name}: two runs trained different models")
    python_model = python_train(sentences, options)
    if python_model != model:
        failures.append(f"{name}: spm.SentencePieceTrainer.train with the same options gives "
                        f"another model ({python_model if isinstance(python_model, str) else ''})")

    n = options["vocab_size"]
    sp = spm.SentencePieceProcessor(model_proto=model)
    layout = {"pieces": sp.get_piece_size(), "piece0": sp.id_to_piece(0),
              "control0": sp.is_control(0), "piece1": sp.id_to_piece(1),
              "unknown1": sp.is_unknown(1), "eos": sp.eos_id(), "unk": sp.unk_id(),
              "bos": sp.bos_id(), "pad": sp.pad_id()}
    expected = {"pieces": n, "piece0": "</s>", "control0": True, "piece1": "<unk>",
                "unknown1": True, "eos": 0, "unk": 1, "bos": -1, "pad": -1}
    if layout != expected:
        failures.append(f"{name}: layout {layout}, expected {expected}")
    if result["marian"] != {"eos_id": 0, "unk_id": 1, "pad_id": n, "vocab_size": n + 1}:
        failures.append(f"{name}: Marian ids {result['marian']}")
    expected_vocab = {sp.id_to_piece(i): i for i in range(n)}
    expected_vocab["<pad>"] = n
    if vocab != expected_vocab:
        diff = sorted(set(vocab.items()) ^ set(expected_vocab.items()))[:5]
        failures.append(f"{name}: vocab.json differs from the model's pieces: {diff}")

    for i, text in enumerate(texts):
        reference = sp.encode(text) + [0]
        checks = {"qkv EncodeWithEos": result["ids"][i],
                  "qkv SentencePieceTokenizer": result["tokenizer_ids"][i],
                  "MarianTokenizer (vocab.json)": marian_tokenizer_ids(sp, vocab, text)}
        for what, ids in checks.items():
            if ids != reference:
                failures.append(f"{name}: {what} of {text!r}: {ids}, sentencepiece "
                                f"{reference}")
        if result["decoded"][i] != sp.decode(reference):
            failures.append(f"{name}: decode of {text!r}: {result['decoded'][i]!r}, "
                            f"sentencepiece {sp.decode(reference)!r}")
    for text in TEXTS[1:6]:  # the corpus's characters round-trip exactly
        index = texts.index(text)
        if result["decoded"][index] != text.strip() and result["decoded"][index] != text:
            failures.append(f"{name}: {text!r} decodes as {result['decoded'][index]!r}")
        if 1 in result["ids"][index]:
            failures.append(f"{name}: {text!r} has <unk>: {result['ids'][index]}")
    return failures


def check_errors(args, inputs, texts_path):
    """The vocabulary-size errors name the smallest and the largest size that train (as the
    Python module finds them), and an empty corpus is an error."""
    failures = []
    train_flag, train_path, sentences = inputs["sentences"]
    case_dir = os.path.join(args.work_dir, "errors")

    def error_of(flags, path=train_path):
        result = run_runner(args, case_dir, flags, train_flag, path, texts_path)
        return result.returncode, result.stderr.decode(errors="replace")

    code, message = error_of(["--vocab-size", "2"])
    if code != 1 or "vocabulary size 2 is too small" not in message:
        failures.append(f"spm:2: exit {code}, {message!r}")

    code, message = error_of(["--vocab-size", "10"])
    found = re.search(r"at least (\d+) \(e\.g\. --tokenizer spm:(\d+)\)", message)
    if code != 1 or not found or found.group(1) != found.group(2):
        failures.append(f"spm:10: exit {code}, {message!r}")
    else:
        minimum = int(found.group(1))
        options = dict(model_type="unigram")
        if not isinstance(python_train(sentences, dict(options, vocab_size=minimum)), bytes):
            failures.append(f"spm:10 names {minimum}, which sentencepiece cannot train")
        if isinstance(python_train(sentences, dict(options, vocab_size=minimum - 1)), bytes):
            failures.append(f"spm:10 names {minimum}, but {minimum - 1} trains")
        characters = len(set("".join(sentences)) - {" "})
        # every character but the space (which becomes "▁"), "▁", </s>, <unk>
        if minimum != characters + 3:
            failures.append(f"spm:10 names {minimum}; the text has {characters} characters "
                            f"besides the space, so {characters + 3} was expected")

    for model_type in ["unigram", "bpe"]:
        code, message = error_of(["--vocab-size", "100000", "--model-type", model_type])
        found = re.search(r"lower the vocabulary size to at most (\d+) \(e\.g\. --tokenizer "
                          r"spm:(\d+)\) or train on more text", message)
        if code != 1 or not found or found.group(1) != found.group(2):
            failures.append(f"spm:100000 ({model_type}): exit {code}, {message!r}")
            continue
        maximum = int(found.group(1))
        options = dict(model_type=model_type)
        if not isinstance(python_train(sentences, dict(options, vocab_size=maximum)), bytes):
            failures.append(f"spm:100000 ({model_type}) names {maximum}, which sentencepiece "
                            f"cannot train")
        result = run_runner(args, case_dir, ["--vocab-size", str(maximum), "--model-type",
                                             model_type], train_flag, train_path, texts_path)
        if result.returncode != 0:
            failures.append(f"spm:{maximum} ({model_type}), the size the error named, fails: "
                            f"{result.stderr.decode(errors='replace')}")

    empty_path = os.path.join(args.work_dir, "empty.txt")
    with open(empty_path, "w", encoding="utf-8") as f:
        f.write("\n\n\n")
    code, message = error_of(["--vocab-size", "100"], empty_path)
    if code != 1 or "no training text (every sentence is empty)" not in message:
        failures.append(f"an empty corpus: exit {code}, {message!r}")
    return failures


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runner", required=True)
    parser.add_argument("--work-dir", required=True)
    args = parser.parse_args()

    shutil.rmtree(args.work_dir, ignore_errors=True)
    os.makedirs(args.work_dir)
    corpus = pairs()
    sentences = [side for pair in corpus for side in pair]
    sentences_path = os.path.join(args.work_dir, "sentences.txt")
    with open(sentences_path, "w", encoding="utf-8") as f:
        f.write("\n".join(sentences) + "\n")
    pair_corpus = pairs(seed=12, count=300)
    pairs_path = os.path.join(args.work_dir, "pairs.tsv")
    with open(pairs_path, "w", encoding="utf-8") as f:
        f.write("".join(f"{en}\t{es}\n" for en, es in pair_corpus))
    inputs = {"sentences": ("--sentences", sentences_path, sentences),
              "pairs": ("--pairs", pairs_path, [side for pair in pair_corpus for side in pair])}
    rng = random.Random(3)
    texts = TEXTS + [rng.choice(sentences) for _ in range(40)]
    texts_path = os.path.join(args.work_dir, "texts.json")
    with open(texts_path, "w", encoding="utf-8") as f:
        json.dump(texts, f, ensure_ascii=False)

    failures = []
    for name, flags, options, source in CASES:
        failures += check_case(args, name, flags, options, source, inputs, texts, texts_path)
    failures += check_errors(args, inputs, texts_path)
    for failure in failures:
        print("FAIL:", failure)
    print(f"{len(CASES)} models, {len(texts)} texts: "
          f"{'all agree' if not failures else f'{len(failures)} differences'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
