#!/usr/bin/env bash
# Runs, in order, every command of a Markdown document's ```console blocks (lines starting with
# "$ "), in a scratch folder, with the freshly built `pathpatch` first on PATH. Fails on the first
# command that fails, so a tutorial cannot drift from the code.
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
count=0
in_block=0
while IFS= read -r line; do
  case "$line" in
    '```console'*) in_block=1; continue ;;
    '```'*) in_block=0; continue ;;
  esac
  if [ "$in_block" = 1 ] && [ "${line#\$ }" != "$line" ]; then
    cmd=${line#\$ }
    echo "+ $cmd"
    if ! bash -c "$cmd" > out.log 2>&1; then
      cat out.log
      echo "FAILED: $cmd" >&2
      exit 1
    fi
    count=$((count + 1))
  fi
done < "$doc"
[ "$count" -gt 0 ] || { echo "no commands found in $doc" >&2; exit 1; }
[ -z "${3:-}" ] || rm -f models out.log
echo "$count commands of $(basename "$doc") ran"
