"""Induction heads in the shipped 2-layer model: scores read off attention patterns, then activation
patching of every head's output (z) from a run whose first copy differs, per head and per position;
the per-head table is plotted with matplotlib when it is installed (printed either way).

    PYTHONPATH=build/python python3 examples/python/induction_sweep.py [--out DIR]
"""
import argparse
from pathlib import Path

import numpy as np

import pathpatch as pp

ROOT = Path(__file__).resolve().parents[2]
parser = argparse.ArgumentParser()
parser.add_argument("--out", default=".")
args = parser.parse_args()

model = pp.load_model(str(ROOT / "models/zoo/induction-gpt2"))
# [BOS] + 20 random tokens + the same 20 again; the corrupted rows have a different first copy.
clean = pp.repeated_tokens(rows=8, half=20, lo=10000, hi=30000, seed=1, bos=50256)
corrupt = pp.unrepeated_tokens(clean, lo=10000, hi=30000, seed=2)

print("induction score (attention to the token after the previous copy), layer x head:")
print(np.array2string(pp.induction_scores(model, clean), precision=2))
print("previous-token score, layer x head:")
print(np.array2string(pp.previous_token_scores(model, clean.batch), precision=2))

# Loss on the repeated half: low when induction works. Patch each head's z at each position from
# the corrupted run (noising) and see which raise it.
metric = pp.Metric.cross_entropy(positions=list(range(clean.first_repeat, clean.batch.seq - 1)))
z = pp.activation_patching(model, clean.batch, corrupt, metric, sites=["z"], positions="all", direction="noise")["z"]
print(f"\nloss on the repeat: clean {z.clean:.3f}, corrupted {z.corrupted:.3f}")
total = z.relative_to("clean").values
print("change in loss when one head's z (all positions) comes from the corrupted run, layer x head:")
print(np.array2string(total, precision=3))
by_position = pp.activation_patching(model, clean.batch, corrupt, metric, sites=["z"], positions="each",
                                     direction="noise")["z"]
out = Path(args.out)
by_position.heatmap(out / "induction_z.svg", baseline="clean", reduce_axis="head", reduce="sum")
print(f"wrote {out / 'induction_z.svg'}")

try:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    print("matplotlib is not installed: no induction_heads.png (apt install python3-matplotlib)")
else:
    fig, ax = plt.subplots(figsize=(4, 3))
    im = ax.imshow(total, cmap="RdBu_r", vmin=-abs(total).max(), vmax=abs(total).max())
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    ax.set_title("change in loss on the repeat")
    fig.colorbar(im)
    fig.savefig(out / "induction_heads.png", dpi=120, bbox_inches="tight")
    print(f"wrote {out / 'induction_heads.png'}")
