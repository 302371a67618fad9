#!/usr/bin/env bash
# Installs what is missing, builds the library and the whole test suite with AddressSanitizer +
# UndefinedBehaviorSanitizer (the `asan` preset: build-asan/, RelWithDebInfo, no examples or
# benchmarks) and runs the suite there; then the library and the thread tests with ThreadSanitizer
# (the `tsan` preset: build-tsan/). Any ASan, LeakSanitizer, UBSan or TSan report fails the run.
# Extra arguments go to the ASan ctest (e.g. -R tokenizer).
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

# ThreadSanitizer: the library and the thread tests. One BLAS thread: OpenBLAS's own workers are
# not instrumented, so TSan could not see how they hand results back.
cmake --preset tsan >/dev/null
cmake --build --preset tsan -j "$jobs"
tsan_built=$(date +%s)
TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 OPENBLAS_NUM_THREADS=1 \
  ctest --test-dir build-tsan --output-on-failure -j 1 || status=$?
echo "test-sanitizers: tsan build $((tsan_built - end)) s, tests $(($(date +%s) - tsan_built)) s"
exit "$status"
