#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz (the `fuzz` preset: build-fuzz/, clang,
# -fsanitize=fuzzer,address,undefined) and runs each for a bounded time on its seeds, going on past
# crashes. Prints, per target, the executions run and the crashes found; crashing inputs are kept in
# build-fuzz/crashes/<target>/ and the full output in build-fuzz/logs/<target>.log.
#
#   scripts/fuzz.sh [seconds-per-target] [target...]     (default: 60 s, all five targets)
#
# Seeds: tests/fuzz/seeds/<name>/ (a few small hand-made files) plus seeds made here from the shipped
# files (tests/golden's configs and small safetensors files, the GPT-2 tokenizer golden texts, the rule
# patterns of tests/test_rules.cpp) in build-fuzz/seeds/<name>/. What the fuzzer finds new goes to
# build-fuzz/corpus/<name>/ and is reused by the next run. Replay one input: build-fuzz/tests/fuzz/<target> FILE
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
[ $# -gt 0 ] && shift
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(fuzz_safetensors fuzz_config fuzz_bpe fuzz_rules fuzz_model_dir)

scripts/setup.sh --with-extras
jobs=$(nproc 2>/dev/null || echo 2)
# PATHPATCH_BUILD_LOCK=FILE: build under `flock FILE` (machines shared by several builds); the fuzzing
# itself runs without the lock.
lock=()
[ -n "${PATHPATCH_BUILD_LOCK:-}" ] && lock=(flock "$PATHPATCH_BUILD_LOCK")
"${lock[@]}" cmake --preset fuzz >/dev/null
"${lock[@]}" cmake --build --preset fuzz -j "$jobs" --target "${targets[@]}"

out=build-fuzz
bin=$out/tests/fuzz
seeds=$out/seeds
rm -rf "$seeds"
mkdir -p "$seeds"/{safetensors,config,bpe,rules,model_dir} "$out/logs"

# ---- seeds from the shipped files ----
le16() { printf "\\x$(printf %02x $(($1 & 255)))\\x$(printf %02x $((($1 >> 8) & 255)))"; }
n=0
for f in tests/golden/*/*.safetensors; do
  n=$((n + 1))
  # the JSON header alone (fuzz_safetensors also parses its whole input as a header)
  len=$(od -An -t u8 -N8 "$f" | tr -d ' ')
  head -c "$((len + 8))" "$f" | tail -c +9 >"$seeds/safetensors/header-$n.json"
  # small files whole
  if [ "$(stat -c %s "$f")" -le 100000 ]; then cp "$f" "$seeds/safetensors/file-$n.safetensors"; fi
done
for d in tests/golden/*/; do
  name=$(basename "$d")
  cp "$d/config.json" "$seeds/config/$name.json"
  clen=$(stat -c %s "$d/config.json")
  # model folder: config only, and config + weights where the weights are small
  { printf '\x01'; le16 "$clen"; cat "$d/config.json"; } >"$seeds/model_dir/$name-config-only.bin"
  if [ -f "$d/model.safetensors" ] && [ "$(stat -c %s "$d/model.safetensors")" -le 200000 ]; then
    { printf '\x03'; le16 "$clen"; cat "$d/config.json" "$d/model.safetensors"; } >"$seeds/model_dir/$name.bin"
  fi
done
if command -v python3 >/dev/null; then
  python3 - "$seeds/bpe" <<'PY'
import json, sys
for i, line in enumerate(open("tests/data/gpt2_tokenizer_golden.jsonl", encoding="utf-8")):
    with open(f"{sys.argv[1]}/golden-{i:04d}.txt", "wb") as f:
        f.write(json.loads(line)["text"].encode("utf-8", "surrogatepass"))
PY
else  # the texts with their JSON escapes left in: still fine seeds
  i=0
  sed -n 's/^{"text":"\(.*\)","ids":.*/\1/p' tests/data/gpt2_tokenizer_golden.jsonl | while IFS= read -r t; do
    i=$((i + 1)); printf '%s' "$t" >"$seeds/bpe/golden-$i.txt"
  done
fi
i=0
grep -oh 'add("[^"]*"' tests/test_rules.cpp | sed 's/^add("//; s/"$//' | sort -u | while IFS= read -r p; do
  i=$((i + 1)); { printf '\x07'; printf '%s' "$p"; } >"$seeds/rules/test-$i.txt"
done

# ---- run ----
seed_name() { echo "${1#fuzz_}"; }
# Longest input: room for the whole small model files among the seeds; long enough elsewhere for deep
# nesting and long texts, short enough to keep the executions fast.
max_len_of() {
  case "$1" in
    fuzz_safetensors | fuzz_model_dir) echo 262144 ;;
    fuzz_rules) echo 16384 ;;
    *) echo 65536 ;;
  esac
}
dict_of() {
  case "$1" in
    fuzz_safetensors) echo tests/fuzz/safetensors.dict ;;
    fuzz_config | fuzz_model_dir) echo tests/fuzz/config.dict ;;
    fuzz_rules) echo tests/fuzz/rules.dict ;;
    *) echo "" ;;
  esac
}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
summary=()
total_crashes=0
for t in "${targets[@]}"; do
  s=$(seed_name "$t")
  corpus=$out/corpus/$s
  crashes=$out/crashes/$t
  log=$out/logs/$t.log
  mkdir -p "$corpus" "$crashes"
  dict=$(dict_of "$t")
  args=(-fork=1 -ignore_crashes=1 -ignore_ooms=1 -ignore_timeouts=1 -max_total_time="$secs" -timeout=10
        -rss_limit_mb=2048 -max_len="$(max_len_of "$t")" -print_final_stats=1 -artifact_prefix="$crashes/")
  [ -n "$dict" ] && args+=(-dict="$dict")
  echo "fuzz: $t for $secs s (log: $log)"
  find "$crashes" -type f | sort >"$out/logs/$t.before"
  "$bin/$t" "${args[@]}" "$corpus" "$seeds/$s" "tests/fuzz/seeds/$s" >"$log" 2>&1 || true
  new_files=$(find "$crashes" -type f | sort | comm -13 "$out/logs/$t.before" - || true)
  rm -f "$out/logs/$t.before"
  count() { [ -z "$new_files" ] && echo 0 || echo "$new_files" | grep -c "/$1-" || true; }
  n_crash=$(count crash) n_leak=$(count leak) n_oom=$(count oom) n_timeout=$(count timeout)
  new=$((n_crash + n_leak + n_oom + n_timeout))
  total_crashes=$((total_crashes + new))
  # Executions: fork mode's tally of the finished jobs (a job that crashes, or is cut off at the end,
  # is not counted), from its last "#RUNS: cov: ..." line.
  execs=$(grep -E '^#[0-9]+: cov:' "$log" | tail -1 | sed -n 's/^#\([0-9]*\):.*/\1/p' || true)
  line=$(printf '%-17s %10s executions   %d crashing inputs (crash %d, leak %d, oom %d, timeout %d)' \
    "$t" "${execs:-?}" "$new" "$n_crash" "$n_leak" "$n_oom" "$n_timeout")
  summary+=("$line")
  echo "  $line"
  [ -z "$new_files" ] || echo "$new_files" | sed 's/^/    /'
  grep -h '^SUMMARY: ' "$log" | sort | uniq -c | sed 's/^/    /' || true
done
echo
echo "fuzz: summary ($secs s per target)"
printf '  %s\n' "${summary[@]}"
echo "fuzz: crashing inputs kept in $out/crashes/ ($total_crashes new this run)"
[ "$total_crashes" -eq 0 ]
