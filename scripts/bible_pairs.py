#!/usr/bin/python3
"""Exports a verse-aligned English-Spanish Bible corpus as train/valid/test TSV files.

English is the World English Bible (SWORD module engWEB2015eb, Debian package
sword-text-web), Spanish the Reina-Valera 1909 (spaRV1909eb, package sword-text-sparv), both
read with diatheke (package diatheke). Only the 66 protocanonical books are exported (the WEB
module also carries the deuterocanon).

Usage: bible_pairs.py [--with-refs] OUT_DIR

Writes OUT_DIR/train.tsv, valid.tsv and test.tsv, one pair a line, `english<TAB>spanish`, UTF-8,
whitespace normalised (no tab or newline inside a field), in canonical order; and
OUT_DIR/export.json with the counts per split, what the alignment kept and dropped, and the
module and package versions. With --with-refs, also OUT_DIR/<split>.refs: the English reference
of each line (e.g. "Gen 1:1", "Job 39:1-3" for a merged pair). Every file is written to a
temporary name and renamed into place once all of them are complete, export.json last.

Split by English book: test = Ruth, Jonah, Philippians; valid = Titus, Jude; train = the rest.

How the text is read (each point found by looking at diatheke's output):
  * One diatheke call per testament (a range of whole books), in diatheke's "internal" format:
    the module's own OSIS markup, one line per verse, each verse prefixed by "Book C:V: "
    (after any markup that precedes the verse, such as a Psalm title); the last line names the
    module, e.g. "(engWEB2015eb)". The plain format renders poetry as several lines per verse
    and puts a Psalm title on its own line, where it cannot be told from the previous verse.
  * Option filters "-o fh": with footnotes hidden (no f) the SWORD filter deletes each note
    and glues the words around it ("Godcreated"), so notes are shown, and cut here with a
    space (or nothing before punctuation). With headings hidden (no h) diatheke repeats a
    Psalm's title before every verse of that Psalm; with h it appears once, before verse 1
    (and, in Psalm 119, before each acrostic stanza: ALEPH, BETH, ...).
  * A Psalm title (WEB: a <title> before the verse key) is put in front of the verse it
    precedes, because the Reina-Valera prints it inside verse 1 ("Salmo de David. ...").
  * Strong's numbers are markup attributes (<w savlm="strong:H0430">): stripping tags drops
    them. (diatheke's plain format shows the RV's lemma="G4571" attributes as "<G4571>".)
  * The WEB appends its glossary to Revelation 22:21, after the end of the book: each verse is
    cut at a book end or glossary <div>.
  * The WEB's Song of Solomon names the speakers (<speaker>Beloved</speaker>): dropped (they are
    headings, and the RV has none).
  * The RV appends the Authorized Version's subscriptions to the last verse of Paul's letters
    and Hebrews ("Amén. Escrita de Roma con Epafrodito."): cut after the last "Amén.".
  * The RV's markup puts some words in <transChange> (words added by the translators) right
    against the neighbouring <w> with no space: a space is put there, except before an
    enclitic pronoun after a verb ("sáca"+"lo" -> "sácalo").

How the two versifications are aligned: the modules use different versification schemes (WEB
NRSVA, RV KJV), and SWORD files each verse under its module's scheme, so both give the same
verse counts per chapter, except 3 John 1 and Revelation 12, where the WEB's scheme has one
more slot (left empty). Where the texts differ is inside the chapters:
the RV's source keeps the Hebrew numbering in a few chapters, and SWORD squeezed it into the
KJV slots (a shifted chapter, an empty slot where the Hebrew chapter starts earlier, and the
overflow appended to the chapter's last slot), e.g. the RV's Jonah 1:17 is empty and its 2:1
holds the fish. These chapters were found by scoring every verse against its neighbours with
a word-translation table learned from the two texts (the modules' Strong's numbers cannot be
used: the WEB's follow the Hebrew numbering in chapters where its text does not), then checked
by eye; REALIGN below maps each one verse by verse. An empty verse on either side (a verse one
translation omits, or a squeezed slot) is dropped. With the verified module versions:
30,883 pairs of the same number, 191 realigned pairs (203 WEB verses, merged where one side
joins two verses), and dropped: the 9 WEB verses of Job 39:27-40:5 (one RV slot), the 4
verses the WEB omits (Luke 17:36, Acts 8:37, 15:34, 24:7; the RV has them), and the WEB's
5 empty slots (Rom 16:25-27, whose doxology it has at 14:23; 3 John 1:15; Rev 12:18, whose
text both have inside the neighbouring verse). 31,074 pairs in all; export.json has the
counts and the dropped references.

Exit status 0 on success, 1 with a message naming the package to install when diatheke or a
module is missing, or when diatheke's output is not what this script understands.
"""

import argparse
import collections
import html
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

ENGLISH = {"module": "engWEB2015eb", "package": "sword-text-web",
           "name": "World English Bible", "verified_version": "426.0"}
SPANISH = {"module": "spaRV1909eb", "package": "sword-text-sparv",
           "name": "Reina-Valera 1909", "verified_version": "2.60"}

# The 66 protocanonical books: OSIS id (the diatheke key) and the name diatheke prints (-l en).
BOOKS = [
    ("Gen", "Genesis"), ("Exod", "Exodus"), ("Lev", "Leviticus"), ("Num", "Numbers"),
    ("Deut", "Deuteronomy"), ("Josh", "Joshua"), ("Judg", "Judges"), ("Ruth", "Ruth"),
    ("1Sam", "I Samuel"), ("2Sam", "II Samuel"), ("1Kgs", "I Kings"), ("2Kgs", "II Kings"),
    ("1Chr", "I Chronicles"), ("2Chr", "II Chronicles"), ("Ezra", "Ezra"),
    ("Neh", "Nehemiah"), ("Esth", "Esther"), ("Job", "Job"), ("Ps", "Psalms"),
    ("Prov", "Proverbs"), ("Eccl", "Ecclesiastes"), ("Song", "Song of Solomon"),
    ("Isa", "Isaiah"), ("Jer", "Jeremiah"), ("Lam", "Lamentations"), ("Ezek", "Ezekiel"),
    ("Dan", "Daniel"), ("Hos", "Hosea"), ("Joel", "Joel"), ("Amos", "Amos"),
    ("Obad", "Obadiah"), ("Jonah", "Jonah"), ("Mic", "Micah"), ("Nah", "Nahum"),
    ("Hab", "Habakkuk"), ("Zeph", "Zephaniah"), ("Hag", "Haggai"), ("Zech", "Zechariah"),
    ("Mal", "Malachi"), ("Matt", "Matthew"), ("Mark", "Mark"), ("Luke", "Luke"),
    ("John", "John"), ("Acts", "Acts"), ("Rom", "Romans"), ("1Cor", "I Corinthians"),
    ("2Cor", "II Corinthians"), ("Gal", "Galatians"), ("Eph", "Ephesians"),
    ("Phil", "Philippians"), ("Col", "Colossians"), ("1Thess", "I Thessalonians"),
    ("2Thess", "II Thessalonians"), ("1Tim", "I Timothy"), ("2Tim", "II Timothy"),
    ("Titus", "Titus"), ("Phlm", "Philemon"), ("Heb", "Hebrews"), ("Jas", "James"),
    ("1Pet", "I Peter"), ("2Pet", "II Peter"), ("1John", "I John"), ("2John", "II John"),
    ("3John", "III John"), ("Jude", "Jude"), ("Rev", "Revelation of John"),
]

SPLIT_OF_BOOK = {"Ruth": "test", "Jonah": "test", "Phil": "test",
                 "Titus": "valid", "Jude": "valid"}
SPLITS = ("train", "valid", "test")

# Where the RV's verses are not the WEB's verses of the same number. Each rule is
# (book, English verses, Spanish verses[, "drop"]); a side is a comma-separated list of "C:V",
# "C:V-V" or "C:V-C:V" ranges, taken in that module's verse order. Equal lengths pair verse by
# verse; a single verse against several makes one pair of the several joined; "drop" drops
# both sides. Every verse a rule names leaves the default same-number pairing. Found as the
# module docstring says, and checked by eye against both texts (at the verified_version).
REALIGN = [
    # Hebrew numbering: the RV's chapter starts with the WEB's previous verse, and its last
    # slot holds two WEB verses.
    ("Num", "12:16", "13:1"), ("Num", "13:1-31", "13:2-32"), ("Num", "13:32-33", "13:33"),
    ("Num", "29:40", "30:1"), ("Num", "30:1-14", "30:2-15"), ("Num", "30:15-16", "30:16"),
    ("1Sam", "23:29", "24:1"), ("1Sam", "24:1-20", "24:2-21"), ("1Sam", "24:21-22", "24:22"),
    ("Hos", "11:12", "12:1"), ("Hos", "12:1-12", "12:2-13"), ("Hos", "12:13-14", "12:14"),
    ("Jonah", "1:17", "2:1"), ("Jonah", "2:1-8", "2:2-9"), ("Jonah", "2:9-10", "2:10"),
    # The RV splits one verse in two and makes it up at the end of the chapter.
    ("1Kgs", "22:43", "22:43-44"), ("1Kgs", "22:44-51", "22:45-52"),
    ("1Kgs", "22:52-53", "22:53"),
    ("1Chr", "21:15", "21:15-16"), ("1Chr", "21:16-28", "21:17-29"),
    ("1Chr", "21:29-30", "21:30"),
    # The RV joins two verses and leaves its chapter's last slot empty.
    ("2Chr", "33:10-11", "33:10"), ("2Chr", "33:12-25", "33:11-24"),
    ("2Sam", "20:25-26", "20:25"), ("Job", "35:15-16", "35:15"),
    ("Acts", "19:40-41", "19:40"),
    ("2Cor", "13:12-13", "13:12"), ("2Cor", "13:14", "13:13"),
    # Job 38:39-41:8 is Hebrew 39:1-40:32: the RV starts chapter 39 three verses early, puts
    # WEB 39:27-40:5 (nine verses) into its slot 39:30, and leaves 40:20-24 empty. The nine
    # verses are dropped rather than kept as one over-long pair.
    ("Job", "38:39-41", "39:1-3"), ("Job", "39:1-26", "39:4-29"),
    ("Job", "39:27-40:5", "39:30", "drop"), ("Job", "40:6-24", "40:1-19"),
    # The two woes are in the other order in the RV (as in the KJV).
    ("Matt", "23:13", "23:14"), ("Matt", "23:14", "23:13"),
    # The WEB puts the doxology (RV Romans 16:25-27) at the end of 14:23.
    ("Rom", "14:23", "14:23, 16:25-27"),
]

# The RV verses that end with a subscription after their last "Amén." (see the docstring).
SUBSCRIBED = [("Rom", 16, 27), ("1Cor", 16, 24), ("2Cor", 13, 13), ("Gal", 6, 18),
              ("Eph", 6, 24), ("Phil", 4, 23), ("Col", 4, 18), ("1Thess", 5, 28),
              ("2Thess", 3, 18), ("1Tim", 6, 21), ("2Tim", 4, 22), ("Titus", 3, 15),
              ("Phlm", 1, 25), ("Heb", 13, 25)]

# Markup elements that separate words (line, paragraph and chapter marks); all others (<w>,
# <transChange>, <q>, <seg>, ...) wrap words and stand for nothing.
SEPARATING_TAGS = {"br", "chapter", "div", "item", "l", "lb", "lg", "list", "milestone", "p",
                   "speaker", "title", "verse"}

NOTE = "\x02"   # where a footnote was cut
JOIN = "\x01"   # a tag boundary with no space in the source
CLOSING = set(".,;:!?)]’”»…")
OPENING = set("“‘¿¡([«")
CLITICS = {"lo", "la", "los", "las", "le", "les", "me", "te", "se", "nos", "os"}
# Words before a clitic that are not verbs although they carry an accent (found in the RV).
NOT_VERBS = {"éste", "ésta", "cuánto", "cuánta", "jehová", "josué", "dios", "él", "más"}
SHORT_IMPERATIVES = {"di", "da", "haz", "he", "ve", "pon", "ten", "sal", "ven"}


class ExportError(Exception):
    """Something the user has to fix; the message says what."""


def run_diatheke(args):
    try:
        result = subprocess.run(["diatheke", *args], capture_output=True, check=False)
    except FileNotFoundError:
        raise ExportError("diatheke is not installed; install it with: "
                          "apt-get install diatheke") from None
    if result.returncode != 0:
        raise ExportError(f"diatheke {' '.join(args)} failed with status {result.returncode}: "
                          f"{result.stderr.decode('utf-8', 'replace').strip()}")
    return result.stdout.decode("utf-8")


def check_modules():
    if shutil.which("diatheke") is None:
        raise ExportError("diatheke is not installed; install it with: "
                          "apt-get install diatheke")
    installed = set(run_diatheke(["-b", "system", "-k", "modulelistnames"]).split())
    for source in (ENGLISH, SPANISH):
        if source["module"] not in installed:
            raise ExportError(f"the SWORD module {source['module']} ({source['name']}) is not "
                              f"installed; install it with: apt-get install {source['package']}")


def module_conf(module):
    """The module's .conf entries (Version, Description, ...), from SWORD's usual places."""
    places = [os.environ.get("SWORD_PATH", ""), os.path.expanduser("~/.sword"),
              "/usr/share/sword", "/usr/local/share/sword"]
    for place in places:
        folder = os.path.join(place, "mods.d") if place else ""
        if not folder or not os.path.isdir(folder):
            continue
        for name in sorted(os.listdir(folder)):
            path = os.path.join(folder, name)
            with open(path, encoding="utf-8", errors="replace") as conf:
                text = conf.read()
            if re.search(r"^\[" + re.escape(module) + r"\]\s*$", text, re.M):
                return dict(re.findall(r"^(\w+)=(.*?)\s*$", text, re.M))
    return {}


def package_version(package):
    try:
        result = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", package],
                                capture_output=True, check=False)
    except FileNotFoundError:
        return None
    if result.returncode != 0:
        return None
    return result.stdout.decode().strip() or None


# One diatheke call per testament: a range of whole books. (A call per book costs a second of
# start-up per ten books; the Old Testament range stops at Malachi, which in the WEB's NRSVA
# scheme is where the deuterocanon starts.)
RANGES = ("Gen 1:1-Mal 4:6", "Matt 1:1-Rev 22:21")
# Anything that looks like a verse key ("Tobit 1:1: "), to tell an unexpected book from a
# verse that goes on over a second line.
ANY_KEY = re.compile(r"(?:^|>)[^<>]*? \d+:\d+: ")


def read_raw(module):
    """{osis: ({(chapter, verse): (markup before the key, markup after it)}, verse order)}."""
    osis_of = {name: osis for osis, name in BOOKS}
    names = "|".join(re.escape(name) for _, name in BOOKS)
    key = re.compile(r"(?:^|(?<=>)|(?<=\s))(" + names + r") (\d+):(\d+): ")
    books = {osis: ({}, []) for osis, _ in BOOKS}
    for keys in RANGES:
        output = run_diatheke(["-b", module, "-l", "en", "-f", "internal", "-o", "fh",
                               "-k", keys])
        lines = output.rstrip("\n").split("\n")
        if lines[-1].strip() != f"({module})":
            raise ExportError(f"unexpected diatheke output for {module} {keys}: the last line "
                              f"should name the module, it is {lines[-1][:80]!r}")
        current = None
        for line in lines[:-1]:
            match = key.search(line)
            if match is None:
                if current is None or ANY_KEY.search(line):
                    raise ExportError(f"unexpected diatheke output for {module} {keys}: "
                                      f"{line[:100]!r}")
                # A line without a key continues the verse before it (not seen in the
                # internal format, but the plain format wraps poetry this way).
                verses, ref = current
                verses[ref] = (verses[ref][0], verses[ref][1] + "\n" + line)
                continue
            verses, order = books[osis_of[match.group(1)]]
            ref = (int(match.group(2)), int(match.group(3)))
            if ref in verses:
                raise ExportError(f"{module} {match.group(1)} {ref[0]}:{ref[1]} appears twice")
            verses[ref] = (line[:match.start()], line[match.end():])
            order.append(ref)
            current = (verses, ref)
    for osis, name in BOOKS:
        if not books[osis][1]:
            raise ExportError(f"diatheke gave no verses of {name} from {module}")
    return books


def glue_clitic(left, right):
    """Whether a clitic pronoun `right` against `left` with no space is one word (RV markup)."""
    if right.lower() not in CLITICS:
        return False
    word = left.lower()
    if word in NOT_VERBS:
        return False
    # Infinitives (sacar, ver), plural imperatives (haced, dad), accented forms that take an
    # enclitic (oyéndo, sáca, dínos, púso) and short imperatives (di, haz).
    return (word.endswith(("r", "d")) or re.search("[áéíóú]", word) is not None
            or word in SHORT_IMPERATIVES)


def resolve_gap(text, start, end):
    """What replaces the markers and spaces text[start:end] between two pieces of text."""
    gap = text[start:end]
    before = text[start - 1] if start > 0 else ""
    after = text[end] if end < len(text) else ""
    if not before or not after:
        return ""
    if NOTE in gap and after in CLOSING:
        return ""      # the note sat after a word and before its punctuation ("coins[1] ?")
    if any(c.isspace() for c in gap) or NOTE in gap:
        return " "     # a space in the source, or a note between two words ("God[1]created")
    if before in CLOSING and (after.isalnum() or after in OPENING):
        return " "     # ”</q><w>Then: a quotation closes and the next sentence starts
    if before.isalpha() and after.isalpha():
        left = re.search(r"\w+$", text[:start]).group(0)
        right = re.match(r"\w+", text[end:]).group(0)
        # An enclitic is an element of its own ("sáca<transChange>lo</transChange>"), not the
        # first word of a longer one ("ejército</w><w>se llamaba</w>").
        alone = text[end + len(right):end + len(right) + 1] in (JOIN, NOTE)
        return "" if alone and glue_clitic(left, right) else " "
    return ""


def markup_to_text(markup):
    """The words of a piece of OSIS markup: notes and speakers cut, tags stripped."""
    # Nothing after the end of the book is verse text (the WEB's glossary follows Rev 22:21).
    end = re.search(r'<div\b[^>]*\btype="(?:book|glossary)"', markup)
    if end:
        markup = markup[:end.start()]
    markup = re.sub(r"<note\b[^>]*/>|<note\b[^>]*>.*?</note>", NOTE, markup, flags=re.S)
    markup = re.sub(r"<speaker\b[^>]*>.*?</speaker>", " ", markup, flags=re.S)
    pieces = []
    for part in re.split(r"(<[^>]*>)", markup):
        if part.startswith("<"):
            tag = re.match(r"</?\s*([A-Za-z]+)", part)
            pieces.append(" " if tag and tag.group(1) in SEPARATING_TAGS else JOIN)
        else:
            pieces.append(html.unescape(part))
    text = "".join(pieces)
    out, last = [], 0
    for gap in re.finditer(r"[\s" + JOIN + NOTE + r"]+", text):
        out.append(text[last:gap.start()])
        out.append(resolve_gap(text, gap.start(), gap.end()))
        last = gap.end()
    out.append(text[last:])
    return "".join(out).strip()


def verse_text(preverse, body):
    """A verse's text, with the Psalm title (or acrostic letter) that precedes it."""
    titles = [markup_to_text(t) for t in re.findall(r"<title\b[^>]*>(.*?)</title>", preverse,
                                                   flags=re.S)]
    return " ".join([t for t in titles if t] + [markup_to_text(body)]).strip()


def read_module(source):
    """{osis: ({(c, v): text}, [(c, v), ...])} for the 66 books."""
    return {osis: ({ref: verse_text(*raw[ref]) for ref in order}, order)
            for osis, (raw, order) in read_raw(source["module"]).items()}


def cut_subscriptions(spanish):
    for osis, chapter, verse in SUBSCRIBED:
        texts = spanish[osis][0]
        text = texts.get((chapter, verse), "")
        cut = text.rfind("Amén.")
        if cut < 0 or not text[cut + len("Amén."):].strip():
            raise ExportError(f"{SPANISH['module']} {osis} {chapter}:{verse} has no "
                              f"subscription after its last 'Amén.': the module changed")
        texts[(chapter, verse)] = text[:cut + len("Amén.")]


def expand(spec, order, where):
    """The verses a rule side names, in the module's order."""
    refs = []
    for item in spec.split(","):
        match = re.fullmatch(r"\s*(\d+):(\d+)(?:-(?:(\d+):)?(\d+))?\s*", item)
        if match is None:
            raise ValueError(f"bad verse range {item!r} in REALIGN")
        first = (int(match.group(1)), int(match.group(2)))
        last = first if match.group(4) is None else (
            int(match.group(3) or match.group(1)), int(match.group(4)))
        if first not in order or last not in order:
            raise ExportError(f"{where}: REALIGN names {item.strip()}, which the module lacks")
        refs.extend(order[order.index(first):order.index(last) + 1])
    return refs


def format_ref(osis, refs):
    first, last = refs[0], refs[-1]
    if first == last:
        return f"{osis} {first[0]}:{first[1]}"
    if first[0] == last[0]:
        return f"{osis} {first[0]}:{first[1]}-{last[1]}"
    return f"{osis} {first[0]}:{first[1]}-{last[0]}:{last[1]}"


def align(english, spanish):
    """[(osis, English ref, english, spanish)] in canonical order, and the alignment counts."""
    stats = collections.Counter()
    dropped = collections.defaultdict(list)
    pairs = []
    for osis, _ in BOOKS:
        en_text, en_order = english[osis]
        es_text, es_order = spanish[osis]
        rules = {}          # first English verse of a rule -> (English refs, Spanish refs, drop)
        taken_en, taken_es = set(), set()
        for rule in REALIGN:
            if rule[0] != osis:
                continue
            en_refs = expand(rule[1], en_order, f"{ENGLISH['module']} {osis}")
            es_refs = expand(rule[2], es_order, f"{SPANISH['module']} {osis}")
            if taken_en & set(en_refs) or taken_es & set(es_refs):
                raise ValueError(f"REALIGN rules overlap at {osis} {rule[1]} = {rule[2]}")
            taken_en.update(en_refs)
            taken_es.update(es_refs)
            empty = [r for r in en_refs if not en_text[r]] + [r for r in es_refs if not es_text[r]]
            if empty:
                raise ExportError(f"REALIGN {osis} {rule[1]} = {rule[2]} names an empty verse: "
                                  f"the module changed")
            drop = len(rule) > 3 and rule[3] == "drop"
            if drop or len(en_refs) == len(es_refs):
                groups = [([e], [s]) for e, s in zip(en_refs, es_refs)]
                if drop:
                    groups = [(en_refs, es_refs)]
            elif len(en_refs) == 1 or len(es_refs) == 1:
                groups = [(en_refs, es_refs)]
            else:
                raise ValueError(f"REALIGN {osis} {rule[1]} = {rule[2]}: lengths differ")
            for en_group, es_group in groups:
                rules[en_group[0]] = (en_group, es_group, drop)
        for ref in en_order:
            if ref in rules:
                en_group, es_group, drop = rules[ref]
                if drop:
                    stats["dropped_by_rule_english_verses"] += len(en_group)
                    stats["dropped_by_rule_spanish_verses"] += len(es_group)
                    dropped["by_rule"].append(format_ref(osis, en_group))
                    continue
                stats["realigned_pairs"] += 1
                stats["realigned_english_verses"] += len(en_group)
                pairs.append((osis, format_ref(osis, en_group),
                              " ".join(en_text[r] for r in en_group),
                              " ".join(es_text[r] for r in es_group)))
                continue
            if ref in taken_en:
                continue        # inside a merged group, already paired
            en = en_text[ref]
            es = "" if ref in taken_es else es_text.get(ref, "")
            if not en or not es:
                side = "english" if not en else "spanish"
                stats[f"dropped_empty_{side}"] += 1
                dropped[f"empty_{side}"].append(format_ref(osis, [ref]))
                continue
            stats["same_number_pairs"] += 1
            pairs.append((osis, format_ref(osis, [ref]), en, es))
        # A Spanish verse no English verse of its number claims and no rule names is lost;
        # say so rather than drop it silently.
        for ref in es_order:
            if ref not in en_text and ref not in taken_es and es_text[ref]:
                stats["dropped_spanish_without_english_slot"] += 1
                dropped["spanish_without_english_slot"].append(format_ref(osis, [ref]))
    stats["pairs"] = len(pairs)
    return pairs, stats, dropped


def clean_field(text):
    return " ".join(text.split())


def write_atomically(files, out_dir):
    """Writes {name: text} under out_dir: all to temporary files first, then renamed in order."""
    temporary = []
    try:
        for name, text in files:
            handle, path = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=out_dir)
            temporary.append((path, os.path.join(out_dir, name)))
            with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as out:
                out.write(text)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(path, 0o644)
        for path, final in temporary:
            os.replace(path, final)
    finally:
        for path, _ in temporary:
            if os.path.exists(path):
                os.unlink(path)


def export(out_dir, with_refs):
    check_modules()
    english, spanish = read_module(ENGLISH), read_module(SPANISH)
    cut_subscriptions(spanish)
    pairs, stats, dropped = align(english, spanish)

    lines = {split: [] for split in SPLITS}
    refs = {split: [] for split in SPLITS}
    for osis, ref, en, es in pairs:
        en, es = clean_field(en), clean_field(es)
        if not en or not es:
            raise ExportError(f"{ref}: empty field after cleaning")
        split = SPLIT_OF_BOOK.get(osis, "train")
        lines[split].append(f"{en}\t{es}\n")
        refs[split].append(ref + "\n")

    sources = {}
    for role, source in (("english", ENGLISH), ("spanish", SPANISH)):
        conf = module_conf(source["module"])
        version = conf.get("Version")
        if version != source["verified_version"]:
            print(f"warning: {source['module']} is version {version}, the alignment table was "
                  f"checked against {source['verified_version']}", file=sys.stderr)
        sources[role] = {"module": source["module"], "description": conf.get("Description"),
                         "version": version, "versification": conf.get("Versification"),
                         "package": source["package"],
                         "package_version": package_version(source["package"])}
    summary = {
        "sources": sources,
        "diatheke_package_version": package_version("diatheke"),
        "splits": {split: {"pairs": len(lines[split]),
                           "books": sorted({o for o, *_ in pairs
                                            if SPLIT_OF_BOOK.get(o, "train") == split},
                                           key=[b for b, _ in BOOKS].index)
                           if split != "train" else "every other protocanonical book"}
                   for split in SPLITS},
        "total_pairs": len(pairs),
        "alignment": dict(sorted(stats.items())),
        "dropped": {k: v for k, v in sorted(dropped.items())},
    }
    files = [(f"{split}.tsv", "".join(lines[split])) for split in SPLITS]
    if with_refs:
        files += [(f"{split}.refs", "".join(refs[split])) for split in SPLITS]
    files.append(("export.json", json.dumps(summary, indent=2, ensure_ascii=False) + "\n"))
    os.makedirs(out_dir, exist_ok=True)
    write_atomically(files, out_dir)
    return summary


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", help="folder to write train/valid/test.tsv and export.json")
    parser.add_argument("--with-refs", action="store_true",
                        help="also write <split>.refs: the English reference of each line")
    args = parser.parse_args()
    try:
        summary = export(args.out_dir, args.with_refs)
    except ExportError as error:
        print(f"bible_pairs.py: error: {error}", file=sys.stderr)
        return 1
    counts = ", ".join(f"{s} {summary['splits'][s]['pairs']}" for s in SPLITS)
    print(f"wrote {summary['total_pairs']} pairs to {args.out_dir} ({counts})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
