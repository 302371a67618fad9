"""nano-path-patching's quick start from Python: two prompts, and two predicates over paths.

`branch` splits the computation at attention layer 1 (its residual and its attention get separate
paths); `which` lets every path through layer 1's attention read the corrupted prompt.

    PYTHONPATH=build/python python3 examples/python/nano_quickstart.py [model folder]
"""
import sys
from pathlib import Path

import pathpatch as pp

ROOT = Path(__file__).resolve().parents[2]
PROMPT = "When Mary and John went to the store, John gave a drink to"
CORRUPT = "When Mary and John went to the store, Anna gave a drink to"

model = pp.load_model(sys.argv[1] if len(sys.argv) > 1 else str(ROOT / "models/zoo/ioi-llama"))
clean, corrupt = model.to_tokens(PROMPT), model.to_tokens(CORRUPT)


def branch(path):
    return pp.Split.EDGES if path[-1] == "a1" else pp.Split.NONE


def which(path):
    return 1 if "a1" in path else 0


r = pp.run(model, [clean, corrupt], which, branch)

mary, john = model.next_token(PROMPT, " Mary"), model.next_token(PROMPT, " John")
plain = pp.forward(model, clean).logits
print(f"logit( Mary) - logit( John): clean {plain[0, -1, mary] - plain[0, -1, john]:.3f}, "
      f"with layer 1's attention reading the corrupted prompt {r.logits[0, -1, mary] - r.logits[0, -1, john]:.3f}")
print(f"{r.stats['steps']} distinct steps, {r.stats['computed']} computed, {r.stats['node_visits']} node visits")
r.provenance("nano_quickstart.svg", input_names=["clean", "corrupted"])
print("wrote nano_quickstart.svg")
