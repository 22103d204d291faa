#!/usr/bin/python3
"""Checks that every #include "qkv/<layer>/..." points at the including file's own layer or one
below it.

The layers and what lies below each are read from src/qkv/CMakeLists.txt: the qkv_layer(name
... DEPS ...) calls and any target_link_libraries(qkv_<name> ...) after them, closed
transitively. Reading them, rather than keeping a list here, keeps the check true when a layer
is added or gains a dependency: the link graph is the design, and this enforces it for headers,
which the linker cannot see (an upward include of an inline or template function links fine).

Rules:
  * src/qkv/<layer>/**: its own layer and the layers below it.
  * *_test.cc / *_test.h there: the same, plus qkv/testing/ (test-only helpers).
  * src/qkv/testing/**: any layer (it is linked only into tests).
  * tools/**: the top; any layer, and qkv/testing/ only from tests.
  * A directory of src/qkv/ that CMakeLists.txt does not declare, or an include of one, is an
    error: the check cannot place it.

Usage: check_layering.py [--root REPO]   (default: the repository holding this script)
Exit status 0 when every include is allowed, 1 naming each one that is not, 2 when
src/qkv/CMakeLists.txt declares no layers (a parse failure must not pass as a clean tree).
"""

import argparse
import pathlib
import re
import sys

SOURCE_SUFFIXES = {".h", ".hh", ".hpp", ".cc", ".cpp", ".cxx", ".inc"}
TESTING = "testing"
INCLUDE = re.compile(r'^\s*#\s*include\s*["<]qkv/([^/">]+)/([^">]*)[">]')
CALL = re.compile(r"\b(qkv_layer|target_link_libraries)\s*\(")
TARGET = re.compile(r"^qkv_([A-Za-z0-9_]+)$")


class NoLayers(Exception):
    """src/qkv/CMakeLists.txt declared no layers."""


def strip_cmake_comments(text):
    """Drops # comments (outside quoted strings) so a commented-out call is not read."""
    lines = []
    for line in text.splitlines():
        in_string = False
        for i, char in enumerate(line):
            if char == '"':
                in_string = not in_string
            elif char == "#" and not in_string:
                line = line[:i]
                break
        lines.append(line)
    return "\n".join(lines)


def cmake_calls(text):
    """Yields (command, [arguments]) for each qkv_layer / target_link_libraries call."""
    for match in CALL.finditer(text):
        depth, start = 1, match.end()
        end = start
        while end < len(text) and depth > 0:
            if text[end] == "(":
                depth += 1
            elif text[end] == ")":
                depth -= 1
            end += 1
        yield match.group(1), text[start : end - 1].split()


def read_layer_graph(cmake_path):
    """Returns {layer: set of layers it links directly}, from the CMakeLists at cmake_path."""
    text = strip_cmake_comments(cmake_path.read_text())
    direct = {}
    links = []
    for command, args in cmake_calls(text):
        if not args:
            continue
        if command == "qkv_layer":
            name = args[0]
            deps = []
            # Everything after DEPS (until another keyword of qkv_layer) is linked; PUBLIC and
            # PRIVATE only say how, and both make the layer's sources see the headers.
            collecting = False
            for arg in args[1:]:
                if arg in ("SOURCES", "DEPS"):
                    collecting = arg == "DEPS"
                elif collecting:
                    deps.append(arg)
            direct.setdefault(name, set())
            links.append((name, deps))
        else:
            target = TARGET.match(args[0])
            if target:
                links.append((target.group(1), args[1:]))
    for name, deps in links:
        if name not in direct:
            continue  # the umbrella target qkv, qkv_options, ...: not layers
        for dep in deps:
            target = TARGET.match(dep)
            if target and target.group(1) in direct and target.group(1) != name:
                direct[name].add(target.group(1))
    return direct


def closure(direct):
    """{layer: the layers strictly below it}."""
    below = {}
    for layer in direct:
        seen, stack = set(), list(direct[layer])
        while stack:
            dep = stack.pop()
            if dep not in seen:
                seen.add(dep)
                stack.extend(direct[dep])
        below[layer] = seen
    return below


def is_test(path):
    return path.stem.endswith("_test")


def source_files(directory):
    if not directory.is_dir():
        return []
    return sorted(
        p for p in directory.rglob("*") if p.is_file() and p.suffix in SOURCE_SUFFIXES
    )


def check(root):
    """Returns (errors, files checked, includes checked)."""
    src = root / "src" / "qkv"
    cmake = src / "CMakeLists.txt"
    direct = read_layer_graph(cmake)
    if not direct:
        raise NoLayers(f"{cmake}: no qkv_layer(...) calls found")
    below = closure(direct)
    errors = []
    for layer in sorted(direct):
        cycle = sorted(other for other in below[layer] if layer in below[other])
        if cycle:
            errors.append(f"{cmake}: layer '{layer}' and {cycle} depend on each other (a cycle)")

    def describe(layer):
        allowed = sorted(below[layer] | {layer})
        return ", ".join(allowed)

    files = []  # (path, layer or None for tools/)
    for path in source_files(src):
        relative = path.relative_to(src)
        if len(relative.parts) < 2:
            continue  # src/qkv/<file> directly: no layer
        files.append((path, relative.parts[0]))
    files += [(path, None) for path in source_files(root / "tools")]

    undeclared = set()
    include_count = 0
    for path, layer in files:
        shown = path.relative_to(root)
        if layer is not None and layer != TESTING and layer not in direct:
            if layer not in undeclared:
                undeclared.add(layer)
                errors.append(
                    f"{shown}: directory src/qkv/{layer}/ is not a layer of {cmake.relative_to(root)}"
                    f" (declare it with qkv_layer({layer} ... DEPS ...))"
                )
            continue
        test = is_test(path)
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            match = INCLUDE.match(line)
            if not match:
                continue
            include_count += 1
            target = match.group(1)
            header = f"qkv/{target}/{match.group(2)}"
            who = f"'{layer}'" if layer is not None else "tools (the top)"
            if target == TESTING:
                if not test and layer != TESTING:
                    errors.append(
                        f"{shown}:{number}: {who} includes {header} from 'testing', which only"
                        f" tests (*_test.cc) may include"
                    )
                continue
            if target not in direct:
                errors.append(
                    f"{shown}:{number}: {who} includes {header} from '{target}', which is not a"
                    f" layer of {cmake.relative_to(root)}"
                )
                continue
            if layer is None or layer == TESTING or target == layer or target in below[layer]:
                continue
            errors.append(
                f"{shown}:{number}: layer '{layer}' includes {header} from layer '{target}',"
                f" which is not below it ('{layer}' may include: {describe(layer)}"
                f"{', testing' if test else ''})"
            )
    return errors, len(files), include_count


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--root",
        type=pathlib.Path,
        default=pathlib.Path(__file__).resolve().parent.parent,
        help="the repository root (holding src/qkv/CMakeLists.txt)",
    )
    args = parser.parse_args()
    root = args.root.resolve()
    try:
        errors, file_count, include_count = check(root)
    except (NoLayers, OSError) as error:
        print(f"check_layering: {error}", file=sys.stderr)
        return 2
    for error in errors:
        print(error, file=sys.stderr)
    if errors:
        print(f"check_layering: {len(errors)} layering violation(s)", file=sys.stderr)
        return 1
    print(f"check_layering: {include_count} qkv includes in {file_count} files follow the layers")
    return 0


if __name__ == "__main__":
    sys.exit(main())
