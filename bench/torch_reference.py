"""PyTorch eager baselines for bench/: the same GPT-2 on the same weights, done "the usual way".

Run by the C++ benchmarks (2 threads, OMP_WAIT_POLICY=PASSIVE); prints key=value lines.
    python3 bench/torch_reference.py --probe
    python3 bench/torch_reference.py forward --model DIR --batch 8 --seq 64
    python3 bench/torch_reference.py sweep --model DIR --kind senders|senders-mlp|act-z --batch 8 --seq 16 [--every N]
Sweeps follow the common hook-based recipe: two cached runs (clean, corrupted), then one forward
per variant with forward hooks that patch or freeze activations. `--every N` times every Nth
variant only and scales the time to the whole sweep (the C++ side says so).
"""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import argparse
import json
import math
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))
from safetensors_io import read_safetensors  # noqa: E402


class Attention(nn.Module):
    def __init__(self, w, p, n_head):
        super().__init__()
        self.n_head = n_head
        self.c_attn = nn.Linear(w[p + "c_attn.weight"].shape[0], w[p + "c_attn.weight"].shape[1])
        self.c_attn.weight.data = w[p + "c_attn.weight"].t().contiguous()
        self.c_attn.bias.data = w[p + "c_attn.bias"]
        self.c_proj = nn.Linear(w[p + "c_proj.weight"].shape[0], w[p + "c_proj.weight"].shape[1])
        self.c_proj.weight.data = w[p + "c_proj.weight"].t().contiguous()
        self.c_proj.bias.data = w[p + "c_proj.bias"]

    def forward(self, x):
        B, T, D = x.shape
        q, k, v = self.c_attn(x).split(D, dim=2)
        q, k, v = (t.view(B, T, self.n_head, D // self.n_head).transpose(1, 2) for t in (q, k, v))
        z = F.scaled_dot_product_attention(q, k, v, is_causal=True) if hasattr(F, "scaled_dot_product_attention") \
            else self._attn(q, k, v)
        z = z.transpose(1, 2).reshape(B, T, D)  # c_proj's input: the per-head z, concatenated
        return self.c_proj(z)

    @staticmethod
    def _attn(q, k, v):
        T = q.shape[-2]
        s = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
        mask = torch.ones(T, T, dtype=torch.bool).tril()
        return torch.softmax(s.masked_fill(~mask, float("-inf")), dim=-1) @ v


class Mlp(nn.Module):
    def __init__(self, w, p):
        super().__init__()
        self.c_fc = nn.Linear(*w[p + "c_fc.weight"].shape)
        self.c_fc.weight.data = w[p + "c_fc.weight"].t().contiguous()
        self.c_fc.bias.data = w[p + "c_fc.bias"]
        self.c_proj = nn.Linear(*w[p + "c_proj.weight"].shape)
        self.c_proj.weight.data = w[p + "c_proj.weight"].t().contiguous()
        self.c_proj.bias.data = w[p + "c_proj.bias"]

    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))


class Block(nn.Module):
    def __init__(self, w, i, cfg):
        super().__init__()
        p = "h.%d." % i
        D = cfg["n_embd"]
        self.ln_1 = nn.LayerNorm(D, eps=1e-5)
        self.ln_1.weight.data, self.ln_1.bias.data = w[p + "ln_1.weight"], w[p + "ln_1.bias"]
        self.attn = Attention(w, p + "attn.", cfg["n_head"])
        self.ln_2 = nn.LayerNorm(D, eps=1e-5)
        self.ln_2.weight.data, self.ln_2.bias.data = w[p + "ln_2.weight"], w[p + "ln_2.bias"]
        self.mlp = Mlp(w, p + "mlp.")

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT2(nn.Module):
    def __init__(self, folder):
        super().__init__()
        cfg = json.load(open(os.path.join(folder, "config.json")))
        w = {k: v.float() for k, v in read_safetensors(os.path.join(folder, "model.safetensors")).items()}
        self.wte = w["wte.weight"]
        self.wpe = w["wpe.weight"]
        self.h = nn.ModuleList(Block(w, i, cfg) for i in range(cfg["n_layer"]))
        self.ln_f = nn.LayerNorm(cfg["n_embd"], eps=1e-5)
        self.ln_f.weight.data, self.ln_f.bias.data = w["ln_f.weight"], w["ln_f.bias"]
        self.n_head = cfg["n_head"]

    def forward(self, ids):
        x = self.wte[ids] + self.wpe[: ids.shape[1]]
        for b in self.h:
            x = b(x)
        return self.ln_f(x) @ self.wte.t()


def timed(fn, budget=3.0, min_reps=3):
    fn()
    times = []
    start = time.perf_counter()
    while len(times) < min_reps or time.perf_counter() - start < budget:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def inputs(batch, seq, vocab):
    ids = torch.tensor([[(b * 7919 + t * 104729) % vocab for t in range(seq)] for b in range(batch)])
    corrupt = ids.clone()
    corrupt[:, seq // 2] = (corrupt[:, seq // 2] + 1) % vocab
    return ids, corrupt


def sweep(model, kind, batch, seq, every):
    """One forward per variant with hooks; returns (seconds for the whole sweep, variants)."""
    L, H = len(model.h), model.n_head
    clean, corrupt = inputs(batch, seq, model.wte.shape[0])
    cache = {}

    def save(tag):
        hooks = []
        for i, b in enumerate(model.h):
            hooks.append(b.attn.c_proj.register_forward_pre_hook(
                lambda m, a, i=i: cache.__setitem__((tag, "z", i), a[0].detach().clone())))
            hooks.append(b.mlp.register_forward_hook(
                lambda m, a, o, i=i: cache.__setitem__((tag, "mlp", i), o.detach().clone())))
        return hooks

    with torch.inference_mode():
        for tag, ids in (("clean", clean), ("corrupt", corrupt)):
            hs = save(tag)
            model(ids)
            for h in hs:
                h.remove()

        D = model.wte.shape[1]
        E = D // H

        def z_hook(layer, sender):
            def hook(m, a):
                z = cache[("clean", "z", layer)].clone()  # every other head frozen at clean
                if sender is not None:
                    h, sl = sender
                    z.view(batch, seq, H, E)[:, sl, h] = cache[("corrupt", "z", layer)].view(batch, seq, H, E)[:, sl, h]
                return (z,)
            return hook

        variants = []
        if kind in ("senders", "senders-mlp"):
            variants = [(l, h, slice(None)) for l in range(L) for h in range(H)]
        elif kind == "act-z":
            variants = [(l, h, p) for l in range(L) for h in range(H) for p in range(seq)]

        def run(v):
            l, h, sl = v
            hooks = []
            for i, b in enumerate(model.h):
                if kind == "act-z":
                    if i == l:  # patch one head at one position; everything else recomputed
                        def act_hook(m, a, h=h, p=sl, i=i):
                            z = a[0].clone()
                            z.view(batch, seq, H, E)[:, p, h] = cache[("corrupt", "z", i)].view(batch, seq, H, E)[:, p, h]
                            return (z,)
                        hooks.append(b.attn.c_proj.register_forward_pre_hook(act_hook))
                    continue
                if i >= l:  # heads at and after the sender's layer: frozen, the sender patched
                    hooks.append(b.attn.c_proj.register_forward_pre_hook(z_hook(i, (h, sl) if i == l else None)))
                if kind == "senders":  # MLPs frozen at their clean outputs
                    hooks.append(b.mlp.register_forward_hook(lambda m, a, o, i=i: cache[("clean", "mlp", i)]))
            logits = model(clean)
            for hk in hooks:
                hk.remove()
            return logits

        chosen = variants[::every]
        t0 = time.perf_counter()
        for v in chosen:
            run(v)
        elapsed = time.perf_counter() - t0
    return elapsed * len(variants) / len(chosen), len(variants), len(chosen)


def main():
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    ap = argparse.ArgumentParser()
    ap.add_argument("command", nargs="?", default="")
    ap.add_argument("--probe", action="store_true")
    ap.add_argument("--model")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--kind", default="senders")
    ap.add_argument("--every", type=int, default=1)
    a = ap.parse_args()
    if a.probe:
        print("torch=%s threads=%d" % (torch.__version__, torch.get_num_threads()))
        return
    model = GPT2(a.model).eval()
    if a.command == "forward":
        ids, _ = inputs(a.batch, a.seq, model.wte.shape[0])
        with torch.inference_mode():
            s = timed(lambda: model(ids))
        print("ms=%.3f" % (s * 1e3))
    elif a.command == "sweep":
        s, n, measured = sweep(model, a.kind, a.batch, a.seq, a.every)
        print("seconds=%.3f variants=%d measured=%d" % (s, n, measured))


if __name__ == "__main__":
    main()
