#!/usr/bin/env bash
# `mpirun -np N pathpatch patch|paths` against the same command in one process: the numbers
# (CSV, printed with 9 significant digits, enough to give a float back exactly) must be the same
# bytes. One BLAS thread everywhere: OpenBLAS's results depend on its thread count. Then --resume:
# a second run reads every unit back, and a folder of another experiment is refused.
#   tests/cli_mpi.sh BUILD_DIR MPIEXEC     (run from the source root)
set -uo pipefail
cli="$(realpath "$1")/pathpatch"
mpiexec=$2
export OPENBLAS_NUM_THREADS=1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}
sweep=(--model models/zoo/ioi-llama --clean 'When Mary and John went to the store, John gave a drink to'
       --corrupt 'When Mary and John went to the store, Anna gave a drink to' --answer ' Mary' --wrong ' John')

# same NAME ARGS...: one process, then 2 and 3 processes, the same CSV bytes.
same() {
  local name=$1
  shift
  "$cli" "$@" --out "$tmp/$name-1.csv" >/dev/null 2>"$tmp/err" || fail "$name, one process: $(cat "$tmp/err")"
  for n in 2 3; do
    "$mpiexec" -np "$n" "$cli" "$@" --out "$tmp/$name-$n.csv" >"$tmp/out" 2>"$tmp/err" ||
      fail "$name over $n processes: $(cat "$tmp/err")"
    for f in "$tmp/$name-1"*.csv; do
      g=${f/$name-1/$name-$n}
      cmp -s "$f" "$g" || fail "$name over $n processes: $(basename "$g") differs from $(basename "$f")"
    done
  done
}
same patch patch "${sweep[@]}" --sites z,resid_pre --positions each
same senders paths "${sweep[@]}" --include-mlps --mlps-on-path
same receivers paths "${sweep[@]}" --senders 0.1,0.3 --receiver-kind v

# --resume: the first run keeps every unit, the second reads them all back to the same numbers.
"$mpiexec" -np 2 "$cli" patch "${sweep[@]}" --sites z --positions each --resume "$tmp/units" --out "$tmp/r1.csv" \
  >/dev/null 2>"$tmp/err" || fail "resume, first run: $(cat "$tmp/err")"
"$mpiexec" -np 3 "$cli" patch "${sweep[@]}" --sites z --positions each --resume "$tmp/units" --out "$tmp/r2.csv" \
  >/dev/null 2>"$tmp/err" || fail "resume, second run: $(cat "$tmp/err")"
units=$(awk -F, 'NR > 1 { print $2 }' "$tmp/r1.csv" | sort -u | wc -l)  # one unit per position
grep -q "resuming: $units finished units" "$tmp/err" || fail "resume: expected $units units read back, stderr: $(cat "$tmp/err")"
cmp -s "$tmp/r1.csv" "$tmp/r2.csv" || fail "resume: the resumed numbers differ"
cmp -s "$tmp/r1.csv" "$tmp/patch-1-z.csv" || fail "resume: the numbers differ from one process"
"$mpiexec" -np 2 "$cli" patch "${sweep[@]}" --sites z --positions last --resume "$tmp/units" >/dev/null 2>"$tmp/err"
rc=$?
[ $rc -eq 1 ] && grep -q "holds the finished units of another experiment" "$tmp/err" ||
  fail "resume with another experiment's folder: exit $rc, stderr: $(cat "$tmp/err")"
[ "$(grep -c "another experiment" "$tmp/err")" -eq 1 ] || fail "the refusal should be said once, by rank 0"

[ $failures -eq 0 ] && echo "mpi cli: all passed"
exit $((failures > 0))
