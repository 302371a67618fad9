#!/usr/bin/env bash
# The CLI's refusals: each bad command line must exit with the documented code (1 bad input,
# 2 bad usage) and say what was wrong on stderr, with no stack trace and no crash.
#   tests/cli_refusals.sh BUILD_DIR     (run from the source root)
set -uo pipefail
cli="$1/pathpatch"
zoo=models/zoo/ioi-llama
gold=tests/golden/gpt2
clean='When Mary and John went to the store, John gave a drink to'
corrupt='When Mary and John went to the store, Anna gave a drink to'
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0

# expect CODE 'TEXT ON STDERR' ARGS...
expect() {
  local want_rc=$1 want_text=$2
  shift 2
  "$cli" "$@" >"$tmp/out" 2>"$tmp/err"
  local rc=$?
  if [ "$rc" -ne "$want_rc" ] || ! grep -qF -- "$want_text" "$tmp/err" || grep -q "internal error" "$tmp/err"; then
    echo "FAIL: pathpatch $* -> exit $rc (want $want_rc), stderr:" >&2
    sed 's/^/    /' "$tmp/err" >&2
    echo "    (wanted to see: $want_text)" >&2
    failures=$((failures + 1))
  fi
}
sweep=(--clean "$clean" --corrupt "$corrupt" --answer ' Mary' --wrong ' John')

# Usage errors: 2.
expect 2 "A subcommand is required"
expect 2 "--model is required" forward --ids 1,2
expect 2 "" forward --model "$gold" --no-such-flag
# Bad input: 1, and the message names what and where.
expect 1 "/nonexistent: no such model folder" info --model /nonexistent
expect 1 "'x' is not an integer" forward --model "$gold" --ids 3,x
expect 1 "token id 999999 at row 0, position 0 is outside the vocabulary" forward --model "$gold" --ids 999999
expect 1 "has no tokenizer" forward --model "$gold" --text hi
expect 1 "/nonexistent/x.safetensors: cannot write (no such file or directory)" forward --model "$gold" --ids 3,4 --dump /nonexistent/x.safetensors
expect 1 "matches no activation" forward --model "$gold" --ids 3,4 --dump "$tmp/x.safetensors" --names 'zzz*'
expect 1 "patching needs the same length" paths --model "$zoo" --clean "$clean" --corrupt "When Mary went" \
  --answer ' Mary' --wrong ' John'
expect 1 "is not one token" patch --model "$zoo" --clean "$clean" --corrupt "$corrupt" --answer ' Mary Jane' --wrong ' John'
expect 1 "closest valid names: resid_pre" patch --model "$zoo" "${sweep[@]}" --sites rsid_pre
expect 1 "--positions 'bogus': expected all, each" patch --model "$zoo" "${sweep[@]}" --positions bogus
expect 1 "receiver kind 'zz'" paths --model "$zoo" "${sweep[@]}" --receiver zz:1.1
expect 1 "--senders mlp:L: expected one integer" paths --model "$zoo" "${sweep[@]}" --senders mlp:
expect 1 "sender head 9 does not exist" paths --model "$zoo" "${sweep[@]}" --senders 0.9
expect 1 "no head comes after it" paths --model "$zoo" "${sweep[@]}" --senders 2.1
expect 1 "expected one integer, got ''" trace --model "$zoo" --clean "$clean" --corrupt "$corrupt" --rule 'ln_final a1='
expect 1 "'a7' matches no path name of this model; closest valid names: a0" trace --model "$zoo" \
  --clean "$clean" --corrupt "$corrupt" --rule 'ln_final a7=1'
expect 1 'unknown output format "bogus"' trace --model "$zoo" --clean "$clean" --corrupt "$corrupt" \
  --rule 'ln_final a1=1' --render "$tmp/x.bogus"
# Faults: negative indices, full disks, what the file system refuses, sizes (exit 1, never 3).
expect 1 "layers and heads count from 0" paths --model "$zoo" "${sweep[@]}" --senders 0.-1
expect 1 "layers and heads count from 0" paths --model "$zoo" "${sweep[@]}" --receiver q:-1.0
expect 1 "layers count from 0" paths --model "$zoo" "${sweep[@]}" --senders mlp:-1
ln -s /dev/full "$tmp/full.csv"
expect 1 "full.csv: cannot write (no space left on device)" patch --model "$zoo" "${sweep[@]}" --sites resid_pre \
  --out "$tmp/full.csv"
expect 1 "cannot write (no space left on device)" forward --model "$gold" --ids 3,4 --dump /dev/full
touch "$tmp/a-file"
expect 1 "cannot make this folder" demo --out "$tmp/a-file"
expect 1 "--out: an empty folder name" demo --out ''
expect 1 "cannot make this folder" demo --out /proc/no-such-dir
mkdir "$tmp/loop"
ln -s config.json "$tmp/loop/config.json"
expect 1 "too many levels of symbolic links" info --model "$tmp/loop"
mkdir "$tmp/fifo"
mkfifo "$tmp/fifo/config.json"
expect 1 "a FIFO, not a regular file" info --model "$tmp/fifo"
mkdir "$tmp/zero"
ln -s /dev/zero "$tmp/zero/config.json"
expect 1 "not a regular file" info --model "$tmp/zero"
expect 1 "--cache-bytes: '12X'" forward --model "$gold" --ids 3,4 --cache-bytes 12X

# Output names are checked before the work, not after it.
expect 1 "--heatmap '$tmp/x.txt': expected a name ending in .svg, .png, .pdf" paths --model "$zoo" "${sweep[@]}" \
  --heatmap "$tmp/x.txt"
expect 1 "--out '/nonexistent/x.csv': the folder '/nonexistent' does not exist" patch --model "$zoo" "${sweep[@]}" \
  --out /nonexistent/x.csv
expect 1 "no activation named 'zz1'" forward --model "$gold" --ids 3,4 --dump "$tmp/x.safetensors" --names zz1

# Prompt files (pathpatch/prompts.hpp).
prompts=$zoo/eval.jsonl
expect 1 "the prompts come from the file; leave out --clean and --corrupt" paths --model "$zoo" --prompts "$prompts" \
  --clean "$clean"
expect 1 "gives them already, one per prompt" paths --model "$zoo" --prompts "$prompts" --answer ' Mary'
expect 1 "--limit applies to --prompts" paths --model "$zoo" "${sweep[@]}" --limit 3
printf '{"ids": [1, 2], "corrupt_ids": [1, 3]}\n{"ids": [1, 2], "corrupt_ids": [1, 2, 3]}\n' >"$tmp/bad.jsonl"
expect 1 "bad.jsonl:2: the clean prompt has 2 tokens, the corrupted one 3" patch --model "$zoo" --prompts "$tmp/bad.jsonl" \
  --answer-id 5 --wrong-id 6
expect 1 "no-such.jsonl: cannot read the prompt file (no such file or directory)" forward --model "$zoo" \
  --prompts "$tmp/no-such.jsonl"
# ... and what they compute: the first prompts of the file, per prompt and on average.
"$cli" paths --model "$zoo" --prompts "$prompts" --limit 4 --out "$tmp/p.csv" >"$tmp/out" 2>"$tmp/err" &&
  head -1 "$tmp/p.csv" | grep -qx "layer,head,value,row0,row1,row2,row3" ||
  { echo "FAIL: paths --prompts --limit 4 --out p.csv: no per-prompt columns" >&2; failures=$((failures + 1)); }

# Attention patterns: one picture per head, and where the last position looks.
expect 1 "layer 5: the model has layers 0..2" attention --model "$zoo" --text "$clean" --layer 5
expect 1 "head 4: the model has heads 0..3" attention --model "$zoo" --text "$clean" --layer 2 --head 4
"$cli" attention --model "$zoo" --text "$clean" --layer 2 --out "$tmp/att" >"$tmp/out" 2>&1 &&
  [ -s "$tmp/att/L2.H0.svg" ] && [ -s "$tmp/att/L2.H3.svg" ] && grep -q "head 2.0, from the last position:  ' John' (10)" "$tmp/out" ||
  { echo "FAIL: attention --layer 2: no pictures, or head 2.0 not looking at the subject" >&2; failures=$((failures + 1)); }

# Zero and mean ablation: zeroing the IO task's two subject-suppressing heads (2.0, 2.1) hands the
# answer to the subject; a mean over two prompts does far less.
expect 1 "no activation named 'zz2'" forward --model "$zoo" --text "$clean" --zero zz2
expect 1 "head 9" forward --model "$zoo" --text "$clean" --zero z2:9
expect 1 "--method 'acdc': expected eap-ig, eap or eap-ig-activations" circuit --model "$zoo" "${sweep[@]}" --method acdc
expect 1 "--held-out 1: the experiment has 1 rows" circuit --model "$zoo" "${sweep[@]}" --held-out 1
expect 1 "--json '$tmp/c.txt': expected a name ending in .json" circuit --model "$zoo" "${sweep[@]}" --json "$tmp/c.txt"
expect 1 "top 999 edges: the graph has 262" circuit --model "$zoo" "${sweep[@]}" --top 999
expect 1 "--ablation 'zero': expected corrupted or mean" circuit --model "$zoo" "${sweep[@]}" --ablation zero
"$cli" forward --model "$zoo" --text "$clean" --top 1 --zero z2:0,1 2>&1 | grep -q "row 0 next token:  ' John'" &&
  "$cli" forward --model "$zoo" --text "$clean" --text 'When Alice and Bob went to the park, Bob gave a ball to' --top 1 \
    --mean z2:0,1 2>&1 | grep -q "row 0 next token:  ' Mary'" ||
  { echo "FAIL: forward --zero / --mean z2:0,1 did not change what they should" >&2; failures=$((failures + 1)); }

# A prompt file's rows differ in length: position ticks come from a row without padding (no '</s>').
printf '%s\n' '{"ids": [1, 385, 3], "corrupt_ids": [1, 385, 4], "answer_id": 5, "wrong_id": 6}' \
  '{"ids": [1, 385, 3, 324, 4], "corrupt_ids": [1, 385, 4, 324, 4], "answer_id": 5, "wrong_id": 6}' >"$tmp/rows.jsonl"
"$cli" patch --model "$zoo" --prompts "$tmp/rows.jsonl" --sites resid_pre --positions each \
  --heatmap "$tmp/rows.svg" >/dev/null 2>&1 && grep -q " Mary (2)" "$tmp/rows.svg" && ! grep -q "&lt;/s&gt;" "$tmp/rows.svg" ||
  { echo "FAIL: patch --prompts --positions each: padding among the position ticks" >&2; failures=$((failures + 1)); }

# Per-head heatmaps beside the sum over heads, on a fixed colour scale.
"$cli" patch --model "$zoo" "${sweep[@]}" --sites z --positions each --heatmap "$tmp/z.svg" --per-head --colour-limit 5 >/dev/null 2>&1 &&
  [ -s "$tmp/z.svg" ] && [ -s "$tmp/z-head0.svg" ] && [ -s "$tmp/z-head3.svg" ] && [ ! -e "$tmp/z-head4.svg" ] &&
  grep -q "head 0" "$tmp/z-head0.svg" ||
  { echo "FAIL: patch --sites z --per-head: no heatmap per head" >&2; failures=$((failures + 1)); }

# A sweep stopped part-way (Ctrl-C, here sent by the process itself after 2 units) keeps its
# finished units without --resume, in a private folder; while another run holds that folder a run
# keeps none but still computes; the same command then goes on from the kept units to the numbers
# of an uninterrupted run, and leaves nothing behind; nor does a command that fails with nothing kept.
mkdir -p "$tmp/t" "$tmp/t2"
stop=(patch --model "$zoo" "${sweep[@]}" --sites z,resid_pre --positions each)
TMPDIR="$tmp/t" PATHPATCH_TEST_STOP_AFTER_UNITS=2 "$cli" "${stop[@]}" --out "$tmp/s1.csv" >/dev/null 2>"$tmp/err"
rc=$?
kept=$(ls -d "$tmp/t"/pathpatch-units-* 2>/dev/null)
{ [ "$rc" -eq 130 ] && grep -q "stopped; the finished units are kept in $tmp/t/pathpatch-units-$(id -u)-" "$tmp/err" &&
  [ "$(ls "$tmp/t" | wc -l)" -eq 1 ] && [ "$(stat -c %a "$kept")" = 700 ]; } ||
  { echo "FAIL: a stopped sweep: exit $rc, $(cat "$tmp/err")" >&2; failures=$((failures + 1)); }
TMPDIR="$tmp/t" flock "$kept" "$cli" "${stop[@]}" --out "$tmp/s0.csv" >/dev/null 2>"$tmp/err" &&
  grep -q "another run of this command keeps its units in $kept" "$tmp/err" && [ -d "$kept" ] ||
  { echo "FAIL: a run beside a live one: $(cat "$tmp/err")" >&2; failures=$((failures + 1)); }
TMPDIR="$tmp/t" "$cli" "${stop[@]}" --out "$tmp/s1.csv" >/dev/null 2>"$tmp/err" &&
  grep -q "resuming: 2 finished units read from $kept" "$tmp/err" && [ -z "$(ls "$tmp/t")" ] ||
  { echo "FAIL: the same command did not go on from the kept units: $(cat "$tmp/err")" >&2; failures=$((failures + 1)); }
TMPDIR="$tmp/t2" "$cli" "${stop[@]}" --out "$tmp/s2.csv" >/dev/null 2>&1
cmp -s "$tmp/s1-z.csv" "$tmp/s2-z.csv" && cmp -s "$tmp/s1-resid_pre.csv" "$tmp/s2-resid_pre.csv" &&
  cmp -s "$tmp/s0-z.csv" "$tmp/s2-z.csv" ||
  { echo "FAIL: the resumed sweep's numbers differ from an uninterrupted run's" >&2; failures=$((failures + 1)); }
TMPDIR="$tmp/t" "$cli" paths --model "$zoo" "${sweep[@]}" --receiver q:9.9 >/dev/null 2>"$tmp/err"
rc=$?
{ [ "$rc" -eq 1 ] && grep -q "receiver a9.head9 does not exist" "$tmp/err" && [ -z "$(ls "$tmp/t")" ]; } ||
  { echo "FAIL: a failed sweep: exit $rc, or it left its units' folder: $(cat "$tmp/err")" >&2; failures=$((failures + 1)); }

# A key/value group as the receiver: the same as each of its query heads as receivers together.
"$cli" paths --model "$zoo" "${sweep[@]}" --receiver k:2.g0 --out "$tmp/g.csv" >/dev/null 2>&1 &&
  "$cli" paths --model "$zoo" "${sweep[@]}" --receiver k:2.0 --receiver k:2.1 --out "$tmp/h.csv" >/dev/null 2>&1 &&
  "$cli" paths --model "$zoo" "${sweep[@]}" --receiver k:2.0 --out "$tmp/i.csv" >/dev/null 2>&1 &&
  cmp -s "$tmp/g.csv" "$tmp/h.csv" && ! cmp -s "$tmp/g.csv" "$tmp/i.csv" ||
  { echo "FAIL: --receiver k:2.g0 is not heads 2.0 and 2.1 together" >&2; failures=$((failures + 1)); }
expect 1 "the model has 2 key/value heads per layer" paths --model "$zoo" "${sweep[@]}" --receiver v:2.g2
expect 1 "queries are per head" paths --model "$zoo" "${sweep[@]}" --receiver q:2.g0
# A receiver's positions: -1 is the last of the 15; a position past them, the logits, an empty list.
expect 1 "receiver a2.head0.q position 15 is outside the input's 15 positions" \
  paths --model "$zoo" "${sweep[@]}" --receiver q:2.0@15
expect 1 "the logits take no positions" paths --model "$zoo" "${sweep[@]}" --receiver logits@-1
expect 1 "no positions after '@'" paths --model "$zoo" "${sweep[@]}" --receiver q:2.0@
expect 1 "receiver a1.head0.k position 20 is outside" paths --model "$zoo" "${sweep[@]}" --senders 0.1 --receiver-kind k@20
"$cli" paths --model "$zoo" "${sweep[@]}" --receiver q:2.0@-1 --out "$tmp/end.csv" >/dev/null 2>&1 &&
  "$cli" paths --model "$zoo" "${sweep[@]}" --receiver q:2.0@14 --out "$tmp/p14.csv" >/dev/null 2>&1 &&
  "$cli" paths --model "$zoo" "${sweep[@]}" --receiver q:2.0@3 --out "$tmp/p3.csv" >/dev/null 2>&1 &&
  cmp -s "$tmp/end.csv" "$tmp/p14.csv" && ! cmp -s "$tmp/end.csv" "$tmp/p3.csv" ||
  { echo "FAIL: --receiver q:2.0@-1 is not position 14 of 15, or position 3 is the same" >&2; failures=$((failures + 1)); }
# Prompt filters: one template and order puts IOI's IO in one column (2 of 15).
expect 1 "--where applies to --prompts" paths --model "$zoo" "${sweep[@]}" --where template=heldout_0
expect 1 "expected FIELD=VALUE" paths --model "$zoo" --prompts "$zoo/eval.jsonl" --where template
expect 1 "no line has template=zzz" paths --model "$zoo" --prompts "$zoo/eval.jsonl" --where template=zzz
"$cli" paths --model "$zoo" --prompts "$zoo/eval.jsonl" --where template=heldout_0 --where order=ABBA \
  --receiver k:2.0@2 --out "$tmp/io.csv" >/dev/null 2>&1 &&
  "$cli" paths --model "$zoo" --prompts "$zoo/eval.jsonl" --where template=heldout_0 --where order=ABBA \
    --receiver k:2.0@io --out "$tmp/io-named.csv" >/dev/null 2>&1 && cmp -s "$tmp/io.csv" "$tmp/io-named.csv" ||
  { echo "FAIL: --where template=heldout_0 --where order=ABBA: k:2.0@io is not k:2.0@2" >&2; failures=$((failures + 1)); }
# Named positions: one column in every row, or refused; names the file gives; a file to name them.
expect 1 "position 'io' is column" paths --model "$zoo" --prompts "$zoo/eval.jsonl" --limit 20 --receiver k:2.0@io
expect 1 "the prompt file names the positions io, s1, s2" \
  paths --model "$zoo" --prompts "$zoo/eval.jsonl" --receiver k:2.0@zz
expect 1 "a named position needs --prompts" paths --model "$zoo" "${sweep[@]}" --receiver k:2.0@s2
# A sender's positions: they meet the receiver's; outside the input; given twice.
expect 1 "sender a0.head1 at positions 3 sends nothing to receiver a1.head0.q at positions 4" \
  paths --model "$zoo" "${sweep[@]}" --senders 0.1@3 --receiver-kind q@4
expect 1 "sender position 99 is outside the input's 15 positions" \
  paths --model "$zoo" "${sweep[@]}" --sender-positions 99
expect 1 "--sender-positions: with --senders, give each sender its positions" \
  paths --model "$zoo" "${sweep[@]}" --senders 0.1 --sender-positions -1
"$cli" paths --model "$zoo" "${sweep[@]}" --senders 0.1@10,-1,0.2 --receiver-kind v --out "$tmp/sp.csv" >/dev/null 2>&1 &&
  "$cli" paths --model "$zoo" "${sweep[@]}" --senders 0.1@10,14,0.2 --receiver-kind v --out "$tmp/sq.csv" >/dev/null 2>&1 &&
  "$cli" paths --model "$zoo" "${sweep[@]}" --senders 0.1,0.2 --receiver-kind v --out "$tmp/sr.csv" >/dev/null 2>&1 &&
  cmp -s "$tmp/sp.csv" "$tmp/sq.csv" && ! cmp -s "$tmp/sp.csv" "$tmp/sr.csv" ||
  { echo "FAIL: --senders 0.1@10,-1,0.2 is not 0.1 at 10 and 14 with 0.2 everywhere" >&2; failures=$((failures + 1)); }

# The logit lens, direct logit attribution and generation.
expect 1 "dla: give --answer" dla --model "$zoo" --text "$clean"
expect 1 "position 99 is outside the input's 15 positions" lens --model "$zoo" --text "$clean" --position 99
expect 1 "--row 3: the input has 1 rows" lens --model "$zoo" --text "$clean" --row 3
expect 1 "--prompts: the prompts come from the file; leave out --text" dla --model "$zoo" --text "$clean" \
  --prompts "$zoo/eval.jsonl"
# Gemma-2's heads have shares too (through the post-norm, its scale frozen): a grid to draw.
"$cli" dla --model tests/golden/gemma2 --ids 3,4,5 --answer-id 7 --heatmap "$tmp/g.svg" >/dev/null 2>&1 && [ -s "$tmp/g.svg" ] ||
  { echo "FAIL: dla --heatmap on Gemma-2 drew nothing" >&2; failures=$((failures + 1)); }
expect 1 "generate: -1 tokens asked for" generate --model "$zoo" --text "$clean" --tokens -1
expect 1 "exceed the model's context" generate --model "$gold" --ids 3,4 --tokens 100000
expect 2 "--corrupt" dla --model "$zoo" --text "$clean" --corrupt "$corrupt" --answer ' Mary'
"$cli" dla --model "$zoo" --text "$clean" --answer ' Mary' --wrong ' John' --out "$tmp/dla.csv" >"$tmp/dla.txt" 2>&1 &&
  grep -q "the 19 parts sum to it" "$tmp/dla.txt" && grep -q "^2,mlp," "$tmp/dla.csv" ||
  { echo "FAIL: dla: no shares, or no CSV" >&2; failures=$((failures + 1)); }
"$cli" lens --model "$zoo" --text "$clean" --heatmap "$tmp/lens.svg" >"$tmp/lens.txt" 2>&1 &&
  grep -q "KL(model || reading)" "$tmp/lens.txt" && grep -q "resid_post2 .*' Mary' 1.00.* +0.0000" "$tmp/lens.txt" &&
  grep -q "p(next token)" "$tmp/lens.svg" ||
  { echo "FAIL: lens: no table or no heatmap" >&2; failures=$((failures + 1)); }

# Warnings: the command succeeds (exit 0) and says on stderr what may not be what was meant.
expect 0 "warning: the clean and corrupted inputs are identical" paths --model "$zoo" --clean "$clean" \
  --corrupt "$clean" --answer ' Mary' --wrong ' John'
expect 0 "warning: on 1 of 1 rows the clean run prefers the wrong token" paths --model "$zoo" --clean "$clean" \
  --corrupt "$corrupt" --answer ' John' --wrong ' Mary'
expect 0 "warning: no cell of 'senders' has an experiment" paths --model "$zoo" "${sweep[@]}" --receiver q:0.0
expect 0 "warning: --metric ce scores against the clean run's own tokens" patch --model "$zoo" "${sweep[@]}" \
  --metric ce --sites resid_pre
expect 0 "warning: --metric ce scores against the clean run's own tokens" circuit --model "$zoo" "${sweep[@]}" \
  --metric ce --method eap --top 5
expect 0 "warning: the rule 'a2 a1 => 1' changes nothing" trace --model "$zoo" --clean "$clean" --corrupt "$corrupt" \
  --rule 'a2 a1=1'

[ "$failures" -eq 0 ] && echo "all CLI refusals as documented"
exit $((failures > 0))
