#!/usr/bin/python3
"""Tests scripts/bible_pairs.py, the English-Spanish Bible corpus exporter, end to end.

Runs the exporter twice into a temporary folder (once with --with-refs, to find verses by
reference) and checks the split sizes, the shape of every line, the pitfalls of the two SWORD
modules (footnotes glued into words, Strong's numbers, the WEB's glossary after Revelation
22:21, Psalm titles, the RV's Hebrew verse numbering in Jonah and elsewhere, the RV's
subscriptions to the letters), a few known pairs, that both runs give the same bytes, and the
error messages when diatheke or a module is missing.

Usage: test_bible_pairs.py [EXPORTER]   (default: scripts/bible_pairs.py of this repository)
Exit status 0 when every check passes, 1 naming each that fails, 77 (skipped) when diatheke or
the modules (Debian packages diatheke, sword-text-web, sword-text-sparv) are not installed.
Takes about 30 seconds (two exports).
"""

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

EXPORTER = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else
                        pathlib.Path(__file__).resolve().parents[2] / "scripts" / "bible_pairs.py")
MODULES = ("engWEB2015eb", "spaRV1909eb")
SPLITS = ("train", "valid", "test")

failures = []


def check(condition, message):
    if not condition:
        failures.append(message)
    return condition


def skip_unless_installed():
    if shutil.which("diatheke") is None:
        print("skipped: diatheke is not installed (apt-get install diatheke sword-text-web "
              "sword-text-sparv)")
        sys.exit(77)
    listed = subprocess.run(["diatheke", "-b", "system", "-k", "modulelistnames"],
                            capture_output=True, text=True, check=False).stdout.split()
    missing = [m for m in MODULES if m not in listed]
    if missing:
        print(f"skipped: SWORD modules {', '.join(missing)} are not installed "
              "(apt-get install sword-text-web sword-text-sparv)")
        sys.exit(77)


def export(out_dir, *flags, env=None):
    return subprocess.run([sys.executable, str(EXPORTER), *flags, str(out_dir)],
                          capture_output=True, text=True, check=False, env=env)


def read_split(out_dir, split):
    lines = (out_dir / f"{split}.tsv").read_bytes().decode("utf-8").split("\n")
    check(lines[-1] == "", f"{split}.tsv does not end with a newline")
    return lines[:-1]


def check_lines(rows):
    strongs = re.compile(r"<\s*[GH]?\d+\s*>|\b[GH]\d{3,5}\b|strong:|lemma=")
    for split, ref, line in rows:
        fields = line.split("\t")
        if not check(len(fields) == 2, f"{split} {ref}: {len(fields) - 1} tabs: {line[:80]!r}"):
            continue
        for side, text in zip(("English", "Spanish"), fields):
            check(text.strip() != "", f"{split} {ref}: empty {side} field")
            check(text == " ".join(text.split()), f"{split} {ref}: {side} whitespace not "
                                                  f"normalised: {text[:80]!r}")
            check(not strongs.search(text), f"{split} {ref}: Strong's tag in {side}: "
                                            f"{text[:80]!r}")
            check("<" not in text and ">" not in text, f"{split} {ref}: markup in {side}")
        check("Godcreated" not in line, f"{split} {ref}: 'Godcreated' (footnote glue)")
        check("Glossary" not in line and "Abaddon is Hebrew" not in line,
              f"{split} {ref}: WEB glossary text")


def main():
    skip_unless_installed()
    with tempfile.TemporaryDirectory(prefix="bible_pairs_test.") as tmp:
        tmp = pathlib.Path(tmp)
        first, second = tmp / "first", tmp / "second"
        runs = [export(first, "--with-refs"), export(second)]
        for run in runs:
            if not check(run.returncode == 0, f"exporter exited {run.returncode}: "
                                               f"{run.stderr.strip()}"):
                return report()

        lines = {split: read_split(first, split) for split in SPLITS}
        refs = {split: (first / f"{split}.refs").read_text(encoding="utf-8").split("\n")[:-1]
                for split in SPLITS}
        rows, pair_of = [], {}
        for split in SPLITS:
            check(len(refs[split]) == len(lines[split]), f"{split}.refs and {split}.tsv differ "
                                                         f"in length")
            for ref, line in zip(refs[split], lines[split]):
                rows.append((split, ref, line))
                pair_of[ref] = (split, *line.split("\t", 1))

        # Split sizes. Test: Ruth 85 + Jonah 48 + Philippians 104 verses (Jonah 2:9-10 make one
        # pair); valid: Titus 46 + Jude 25.
        counts = {split: len(lines[split]) for split in SPLITS}
        total = sum(counts.values())
        check(30000 <= total <= 31200, f"total {total} pairs, expected 30,000-31,200")
        check(225 <= counts["test"] <= 237, f"test has {counts['test']} pairs, expected "
                                            f"about 85 + 48 + 104")
        check(66 <= counts["valid"] <= 71, f"valid has {counts['valid']} pairs, expected "
                                           f"about 46 + 25")
        books = {split: {ref.split()[0] for row_split, ref, _ in rows if row_split == split}
                 for split in SPLITS}
        check(books["test"] == {"Ruth", "Jonah", "Phil"}, f"test books {sorted(books['test'])}")
        check(books["valid"] == {"Titus", "Jude"}, f"valid books {sorted(books['valid'])}")
        check(len(books["train"]) == 61, f"train has {len(books['train'])} books, expected 61")
        check(not books["train"] & {"Tob", "Jdt", "Wis", "Sir", "Bar", "1Macc", "2Macc"},
              "deuterocanonical books exported")

        summary = json.loads((first / "export.json").read_text(encoding="utf-8"))
        for split in SPLITS:
            check(summary["splits"][split]["pairs"] == counts[split],
                  f"export.json counts {summary['splits'][split]['pairs']} {split} pairs, "
                  f"the file has {counts[split]}")
        check(summary["total_pairs"] == total, "export.json total_pairs is wrong")
        for role in ("english", "spanish"):
            check(bool(summary["sources"][role]["version"]), f"export.json: no {role} version")

        check_lines(rows)

        def pair(ref):
            if not check(ref in pair_of, f"no pair for {ref}"):
                return "", "", ""
            return pair_of[ref]

        # Known pairs; Genesis 1:1 also carries a footnote after "God".
        _, en, es = pair("Gen 1:1")
        check(en == "In the beginning, God created the heavens and the earth.",
              f"Gen 1:1 English: {en!r}")
        check(es.startswith("EN el principio crió Dios"), f"Gen 1:1 Spanish: {es!r}")
        _, en, es = pair("John 11:35")
        check((en, es) == ("Jesus wept.", "Y lloró Jesús."), f"John 11:35: {en!r} / {es!r}")
        # A footnote before punctuation leaves no space.
        _, en, _ = pair("Luke 12:6")
        check("two assaria coins? Not one" in en, f"Luke 12:6 English: {en!r}")

        # The WEB's glossary follows Revelation 22:21 in the module.
        _, en, es = pair("Rev 22:21")
        check(en == "The grace of the Lord Jesus Christ be with all the saints. Amen.",
              f"Rev 22:21 English: {en[:120]!r}")
        check(es == "La gracia de nuestro Señor Jesucristo sea con todos vosotros. Amén.",
              f"Rev 22:21 Spanish: {es[:120]!r}")

        # Jonah 1:17 (the fish) is 2:1 in the RV's Hebrew numbering; 2:1 (the prayer) is 2:2.
        split, en, es = pair("Jonah 1:17")
        check(split == "test", "Jonah 1:17 not in test")
        check("huge fish" in en and "gran pez" in es and "tres días" in es,
              f"Jonah 1:17 misaligned: {en!r} / {es!r}")
        _, en, es = pair("Jonah 2:1")
        check(en.startswith("Then Jonah prayed") and es.startswith("Y oró Jonás"),
              f"Jonah 2:1 misaligned: {en!r} / {es!r}")
        _, en, es = pair("Jonah 2:9-10")
        check(en.endswith("on the dry land.") and es.endswith("vomitó á Jonás en tierra."),
              f"Jonah 2:9-10 misaligned: {en!r} / {es!r}")
        # Numbers 13 is shifted by one in the RV (its 13:1 is the WEB's 12:16).
        _, en, es = pair("Num 13:1")
        check(en == "Yahweh spoke to Moses, saying,"
              and es == "Y Jehová habló á Moisés, diciendo:",
              f"Num 13:1 misaligned: {en!r} / {es!r}")

        # Psalm titles go in front of verse 1 (as the RV prints them), once.
        _, en, es = pair("Ps 3:1")
        check(en.startswith("A Psalm by David, when he fled from Absalom his son. Yahweh,")
              and es.startswith("Salmo de David, cuando huía"), f"Ps 3:1: {en!r} / {es!r}")
        _, en, _ = pair("Ps 3:2")
        check(en.startswith("Many there are who say of my soul"), f"Ps 3:2 English: {en!r}")
        titled = re.compile(r"^(?:For the Chief Musician|A Psalm by|A Song of Ascents)")
        for split, ref, line in rows:
            english = line.split("\t")[0]
            if titled.match(english):
                check(ref.startswith("Ps ") and ref.endswith(":1"),
                      f"{ref}: a Psalm title outside a Psalm's verse 1: {english[:80]!r}")
            check(len(re.findall(r"For the Chief Musician", english)) <= 1,
                  f"{ref}: a Psalm title twice: {english[:80]!r}")
        check(sum(1 for _, _, line in rows if line.startswith("For the Chief Musician")) < 60,
              "too many lines start with a Psalm title")

        # The RV's subscriptions ("Escrita de Roma con Epafrodito.") are cut.
        _, _, es = pair("Phil 4:23")
        check(es.endswith("Amén.") and "Escrita" not in es, f"Phil 4:23 Spanish: {es!r}")

        # The same bytes from a second run (without --with-refs, which changes nothing else).
        for name in [f"{split}.tsv" for split in SPLITS] + ["export.json"]:
            check((first / name).read_bytes() == (second / name).read_bytes(),
                  f"{name} differs between two runs")
        check(sorted(p.name for p in second.iterdir())
              == sorted([f"{s}.tsv" for s in SPLITS] + ["export.json"]),
              f"unexpected files left: {sorted(p.name for p in second.iterdir())}")

        # Clear errors naming the package when diatheke or a module is missing.
        run = export(tmp / "none", env={**os.environ, "PATH": str(tmp / "no-bin")})
        check(run.returncode == 1 and "apt-get install diatheke" in run.stderr,
              f"without diatheke: status {run.returncode}, {run.stderr.strip()!r}")
        only_web = tmp / "sword"
        (only_web / "mods.d").mkdir(parents=True)
        web_conf = pathlib.Path("/usr/share/sword/mods.d/engWEB2015eb.conf")
        if web_conf.exists() and pathlib.Path("/usr/share/sword/modules").is_dir():
            shutil.copy(web_conf, only_web / "mods.d")
            (only_web / "modules").symlink_to("/usr/share/sword/modules")
            run = export(tmp / "none", env={**os.environ, "SWORD_PATH": str(only_web)})
            check(run.returncode == 1 and "apt-get install sword-text-sparv" in run.stderr,
                  f"without the RV module: status {run.returncode}, {run.stderr.strip()!r}")
        check(not (tmp / "none").exists() or not any((tmp / "none").iterdir()),
              "a failed export left files")
    return report()


def report():
    for failure in failures:
        print(f"FAIL: {failure}")
    if failures:
        print(f"{len(failures)} check(s) failed")
        return 1
    print("all bible_pairs.py checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
