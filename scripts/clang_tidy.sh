#!/bin/bash
# Runs clang-tidy (the checks of .clang-tidy) over qkv's own sources, src/ and tools/, as the
# release build compiles them (build/release/compile_commands.json), two files at a time.
# Fails when clang-tidy reports anything: a warning from a check, or an error.
#
#   scripts/clang_tidy.sh                 # everything
#   scripts/clang_tidy.sh src/qkv/io      # only files under these paths
#
# Environment: QKV_BUILD_DIR (default build/release), CLANG_TIDY (default clang-tidy, the
# Debian package clang-tidy-14), JOBS (default 2), CLANG_TIDY_RUNNER (run-clang-tidy where it
# is installed, else xargs).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

build_dir=${QKV_BUILD_DIR:-build/release}
clang_tidy=${CLANG_TIDY:-clang-tidy}
jobs=${JOBS:-2}
command -v "$clang_tidy" >/dev/null || { echo "clang_tidy: $clang_tidy not found" >&2; exit 2; }
if [[ ! -f "$build_dir/compile_commands.json" ]]; then
  # Configuring writes it (CMAKE_EXPORT_COMPILE_COMMANDS in CMakeLists.txt); nothing is built.
  cmake --preset release >/dev/null
fi

# The translation units of src/ and tools/ in the database (not tests/, bench/, nor generated
# files), optionally narrowed to the paths given.
mapfile -t files < <(/usr/bin/python3 - "$build_dir/compile_commands.json" "$root" "$@" <<'EOF'
import json, os, sys
database, root, *only = sys.argv[1:]
prefixes = [os.path.join(root, d) + os.sep for d in ("src", "tools")]
only = [os.path.abspath(p) for p in only]
seen = set()
for entry in json.load(open(database)):
    path = os.path.normpath(os.path.join(entry["directory"], entry["file"]))
    if not any(path.startswith(p) for p in prefixes) or path in seen:
        continue
    if only and not any(path == o or path.startswith(o + os.sep) for o in only):
        continue
    seen.add(path)
    print(path)
EOF
)
if ((${#files[@]} == 0)); then
  echo "clang_tidy: no source files of src/ or tools/ in $build_dir/compile_commands.json" >&2
  exit 2
fi

# Diagnostics in qkv's own headers too, not those of GoogleTest, oneDNN or the standard library.
escape_regex() { sed 's/[][\.*^$+?(){}|]/\\&/g'; }
header_filter="^$(printf '%s' "$root" | escape_regex)/(src|tools)/"
# The database holds GCC's command lines: clang does not know some of GCC's warning flags
# (-Wno-restrict), and the compiler's own warnings are GCC's job (-Werror there), not this one.
extra_args=(-extra-arg=-Wno-unknown-warning-option -extra-arg=-Wno-error)

log=$(mktemp)
trap 'rm -f "$log"' EXIT
echo "clang_tidy: ${#files[@]} files, $jobs at a time" >&2
status=0
runner=${CLANG_TIDY_RUNNER:-$(command -v run-clang-tidy >/dev/null && echo run-clang-tidy || echo xargs)}
if [[ "$runner" == run-clang-tidy ]]; then
  # run-clang-tidy takes regular expressions; each file's path, escaped, matches only itself.
  mapfile -t patterns < <(printf '%s\n' "${files[@]}" | escape_regex | sed 's/^/^/; s/$/$/')
  run-clang-tidy -clang-tidy-binary "$(command -v "$clang_tidy")" -p "$build_dir" -j "$jobs" \
    -quiet -header-filter "$header_filter" "${extra_args[@]}" "${patterns[@]}" \
    >"$log" 2>&1 || status=$?
else
  printf '%s\0' "${files[@]}" |
    xargs -0 -P "$jobs" -n 1 "$clang_tidy" -p "$build_dir" --quiet \
      --header-filter="$header_filter" "${extra_args[@]}" >"$log" 2>&1 || status=$?
fi

# run-clang-tidy-14 always passes --use-color; the log is read without the colour codes.
# Paths are shown relative to the repository ("src/qkv/../qkv/core/x.h" is src/qkv/core/x.h).
sed -i -e 's/\x1b\[[0-9;]*m//g' -e "s|${root}/src/qkv/\.\./qkv/|src/qkv/|g" -e "s|${root}/||g" "$log"
# A finding is a "file:line:column: warning|error:" line (with its context lines below it);
# "N warnings generated." only counts what was filtered out of other headers. A header's
# finding is reported once for each file that includes it, so they are counted once.
grep -vE '^[0-9]+ warnings? (and [0-9]+ errors? )?generated\.$|^Suppressed [0-9]+ warnings|^Use -header-filter=|^[^ ]*clang-tidy[-0-9]* .* -p=|^Running clang-tidy|^Enabled checks:' "$log" |
  grep -v '^$' || true
mapfile -t findings < <(grep -E '^[^ ]+:[0-9]+:[0-9]+: (warning|error):' "$log" | sort -u)
if ((${#findings[@]} > 0 || status != 0)); then
  echo "clang_tidy: ${#findings[@]} finding(s) (runner $runner, exit status $status):" >&2
  printf '  %s\n' "${findings[@]}" >&2
  exit 1
fi
echo "clang_tidy: no findings" >&2
