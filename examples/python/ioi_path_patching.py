"""Path patching on the shipped IOI model over its own prompt file (models/zoo/ioi-llama/eval.jsonl).

For one held-out template, every head's path to the logits is patched from the corrupted prompts
(the subject's second mention replaced by a third name), and the change in the logit difference
IO - S is printed per head and drawn as a heatmap. Then the two heads that move it most are taken
as receivers, and every earlier head is swept as a sender into their queries, keys and values.

    PYTHONPATH=build/python python3 examples/python/ioi_path_patching.py [--prompts N] [--out DIR]
"""
import argparse
import json
from pathlib import Path

import numpy as np

import pathpatch as pp

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models/zoo/ioi-llama"

parser = argparse.ArgumentParser()
parser.add_argument("--prompts", type=int, default=32)
parser.add_argument("--template", default="heldout_2")
parser.add_argument("--out", default=".")
args = parser.parse_args()

model = pp.load_model(str(MODEL))
rows = [json.loads(line) for line in (MODEL / "eval.jsonl").read_text().splitlines()]
rows = [r for r in rows if r["template"] == args.template][: args.prompts]  # one template: one length
clean = np.array([r["ids"] for r in rows])
corrupt = np.array([r["corrupt_ids"] for r in rows])
metric = pp.Metric.logit_diff(answer=[r["answer_id"] for r in rows], wrong=[r["wrong_id"] for r in rows])
print(f"{len(rows)} prompts of template {args.template}, e.g. {rows[0]['prompt']!r} -> {rows[0]['answer']!r}")

cache = pp.Cache()  # shared: the sweeps reuse each other's work
senders = pp.sweep_senders(model, clean, corrupt, metric, include_mlps=True, cache=cache)
effect = senders.relative_to("clean")
print(f"\nlogit difference IO - S: clean {senders.clean:.3f}, corrupted {senders.corrupted:.3f}")
print("change when one sender's path to the logits reads the corrupted prompts (columns: heads, then the MLP):")
for layer, row in zip(effect.labels[0], effect.values):
    print(f"  layer {layer}: " + "  ".join(f"{v:+7.3f}" for v in row))
out = Path(args.out)
effect.heatmap(out / "ioi_senders.svg")

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
