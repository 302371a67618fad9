#!/usr/bin/env bash
# Installs what is missing, builds, and runs the demo on the shipped default model.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
build/pathpatch info --model tests/golden/gpt2 | head -20
build/pathpatch forward --model tests/golden/gpt2 --ids 3,14,15,92,65,35,89 --ids 5,17,2
