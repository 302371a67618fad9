"""Path patching on the shipped IOI model over its own prompt file (models/zoo/ioi-llama/eval.jsonl).

Over the file's prompts (all templates, held-out ones included), every head's path to the logits
is patched from the corrupted prompts (the subject's second mention replaced by a third name), and
the change in the logit difference IO - S is printed per head, on average and per prompt, and drawn
as a heatmap. Then the two heads that move it most are taken
as receivers, and every earlier head is swept as a sender into their queries, keys and values.

    PYTHONPATH=build/python python3 examples/python/ioi_path_patching.py [--prompts N] [--out DIR]
"""
import argparse
from pathlib import Path

import numpy as np

import pathpatch as pp

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models/zoo/ioi-llama"

parser = argparse.ArgumentParser()
parser.add_argument("--prompts", type=int, default=0, help="the first N prompts of the file (default: all)")
parser.add_argument("--out", default=".")
args = parser.parse_args()

model = pp.load_model(str(MODEL))
# Prompts of different lengths are left-padded into one batch: position -1 is every row's last token.
prompts = pp.read_prompts(model, MODEL / "eval.jsonl", limit=args.prompts)
clean, corrupt = prompts.clean, prompts.corrupted
metric = pp.Metric.logit_diff(answer=prompts.answer, wrong=prompts.wrong)
print(f"{len(prompts)} prompts, e.g. {prompts.texts[0]!r}")

cache = pp.Cache()  # shared: the sweeps reuse each other's work
senders = pp.sweep_senders(model, clean, corrupt, metric, include_mlps=True, cache=cache)
effect = senders.relative_to("clean")
print(f"\nlogit difference IO - S: clean {senders.clean:.3f}, corrupted {senders.corrupted:.3f}")
print("change when one sender's path to the logits reads the corrupted prompts (columns: heads, then the MLP):")
for layer, row in zip(effect.labels[0], effect.values):
    print(f"  layer {layer}: " + "  ".join(f"{v:+7.3f}" for v in row))
out = Path(args.out)
effect.heatmap(out / "ioi_senders.svg")
# The mean hides the spread: per prompt, how often does corrupting each head's path lower the answer?
per_prompt = effect.per_example  # layer x head x prompt
lowered = (per_prompt < 0).mean(axis=-1)
print("share of prompts whose logit difference falls, per sender (columns: heads, then the MLP):")
for layer, row in zip(effect.labels[0], lowered):
    print(f"  layer {layer}: " + "  ".join(f"{v:7.2f}" for v in row))

heads = [(l, h) for l in range(model.n_layers) for h in range(model.n_heads)]
top = sorted(heads, key=lambda lh: -abs(effect.values[lh]))[:2]
print("\nlargest effects on the logits: " + ", ".join(f"a{l}.head{h} {effect.values[l, h]:+.3f}" for l, h in top))
# Which earlier heads reach the logits through those two heads' queries, keys or values?
for kind in ("q", "k", "v"):
    receivers = [f"a{l}.head{h}.{kind}" for l, h in top]
    s = pp.sweep_senders(model, clean, corrupt, metric, receivers=receivers, cache=cache).relative_to("clean")
    values = np.nan_to_num(s.values[: min(l for l, _ in top)])  # senders before the receivers
    if values.size:
        l, h = np.unravel_index(np.argmax(np.abs(values)), values.shape)
        print(f"  through their {kind}: largest sender a{l}.head{h} {values[l, h]:+.3f}")
print(f"wrote {out / 'ioi_senders.svg'}")
