#!/usr/bin/env bash
# Runs, in order, every command of a Markdown document's ```console blocks (lines starting with
# "$ "), in a scratch folder, with the freshly built `pathpatch` first on PATH. The lines after a
# command, up to the next one, are output the document quotes: each must appear in what the command
# printed (a run of its words; numbers of 3 or more decimals within two units of their last digit,
# as other CPUs round differently; "..." stands for lines left out). Fails on the first command that fails or
# prints otherwise, so a tutorial cannot drift from the code, nor its numbers from the model.
#   tests/run_doc_commands.sh docs/tutorial.md build [KEEP_DIR]
# With KEEP_DIR, the commands run there and what they write stays (scripts/make-docs.sh).
set -euo pipefail
doc=$(realpath "$1")
build=$(realpath "$2")
repo=$(realpath "$(dirname "$0")/..")
if [ -n "${3:-}" ]; then
  mkdir -p "$3"
  work=$(realpath "$3")
else
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
fi
cd "$work"
[ -e models ] || ln -s "$repo/models" models
export PATH="$build:$PATH"

# Exit 0 if some line of file $2 holds the words of line $1 in a row (numbers as said above).
quoted_in() {
  awk -v want="$1" '
    function core(s) { return match(s, /^[(=]*[-+]?[0-9]+(\.[0-9]+)?[),:;]*$/) ? s : "" }
    function value(s) { gsub(/[^-+0-9.]/, "", s); return s + 0 }
    function digits(s) { gsub(/[^-+0-9.]/, "", s); return index(s, ".") ? length(s) - index(s, ".") : 0 }
    function same(a, b,   d) {
      if ((a "") == (b "")) return 1  # as strings: 1.10 is not 1.1
      if (core(a) == "" || core(b) == "") return 0
      d = digits(a)  # fewer than 3 decimals: a name (head 1.1) or a rounded figure, exactly
      return d >= 3 && digits(b) == d && (value(a) - value(b))^2 <= (2.01 * 10 ^ -d)^2
    }
    BEGIN { sub(/^[ \t]+/, "", want); sub(/[ \t]+$/, "", want); n = split(want, w, /[ \t]+/); found = 0 }
    {
      line = $0
      sub(/^[ \t]+/, "", line)
      sub(/[ \t]+$/, "", line)
      m = split(line, t, /[ \t]+/)
      for (i = 1; i + n - 1 <= m && !found; ++i) {
        ok = 1
        for (j = 1; j <= n && ok; ++j) ok = same(w[j], t[i + j - 1])
        found = ok
      }
    }
    END { exit found ? 0 : 1 }' "$2"
}

count=0
in_block=0
cmd=""
expected=()
# Runs the pending command and checks the output quoted after it.
run_pending() {
  [ -n "$cmd" ] || return 0
  echo "+ $cmd"
  if ! bash -c "$cmd" > out.log 2>&1; then
    cat out.log
    echo "FAILED: $cmd" >&2
    exit 1
  fi
  for want in "${expected[@]}"; do
    if ! quoted_in "$want" out.log; then
      echo "--- it printed:" >&2
      cat out.log >&2
      echo "FAILED: $cmd" >&2
      echo "  the document quotes a line it did not print: $want" >&2
      exit 1
    fi
  done
  count=$((count + 1))
  cmd=""
  expected=()
}
while IFS= read -r line; do
  case "$line" in
    '```console'*) in_block=1; continue ;;
    '```'*) run_pending; in_block=0; continue ;;
  esac
  [ "$in_block" = 1 ] || continue
  if [ "${line#\$ }" != "$line" ]; then
    run_pending
    cmd=${line#\$ }
  elif [ -n "$cmd" ] && [ -n "${line// /}" ] && [ "$(echo "$line" | tr -d ' ')" != "..." ]; then
    expected+=("$line")
  fi
done < "$doc"
[ "$count" -gt 0 ] || { echo "no commands found in $doc" >&2; exit 1; }
[ -z "${3:-}" ] || rm -f models out.log
echo "$count commands of $(basename "$doc") ran"
