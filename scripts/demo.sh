#!/usr/bin/env bash
# Installs what is missing, builds, and runs the demo on the shipped default model: path patching
# finds the induction circuit of models/zoo/induction-gpt2 and writes pictures and a summary to
# demo-out/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
build/pathpatch demo --out demo-out "$@"
