#!/usr/bin/env bash
# Installs what is missing, builds the library and the whole test suite with AddressSanitizer +
# UndefinedBehaviorSanitizer (the `asan` preset: build-asan/, RelWithDebInfo, no examples or
# benchmarks) and runs the suite there. Any ASan, LeakSanitizer or UBSan report fails the run.
# Extra arguments go to ctest (e.g. -R tokenizer).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh   # g++'s sanitizer runtimes (libasan, libubsan) come with build-essential
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export LSAN_OPTIONS=suppressions=$PWD/tests/lsan-suppressions.txt  # third-party libraries' own leaks
jobs=$(nproc 2>/dev/null || echo 2)
start=$(date +%s)
cmake --preset asan >/dev/null
cmake --build --preset asan -j "$jobs"
built=$(date +%s)
status=0
ctest --test-dir build-asan --output-on-failure -j "$jobs" "$@" || status=$?
end=$(date +%s)
echo "test-sanitizers: build $((built - start)) s, tests $((end - built)) s"
exit "$status"
