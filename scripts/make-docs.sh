#!/usr/bin/env bash
# Regenerates the pictures the docs show, with the code as it stands: the tutorial's commands
# (into docs/images/tutorial/) and the README's images (the hidden "[.render]" test).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
rm -rf docs/images/tutorial
tests/run_doc_commands.sh docs/tutorial.md build docs/images/tutorial
find docs/images/tutorial -type f ! -name '*.svg' ! -name '*.png' -delete
build/tests/pathpatch_tests "[.render]"
