"""PyTorch eager baselines for bench/: the same models on the same weights, done "the usual way".
GPT-2 (forwards and sweeps), GPT-NeoX and Gemma-2 (forwards), as Hugging Face's modules compute
them, from the checkpoint the C++ benchmark writes.

Run by the C++ benchmarks (2 threads, OMP_WAIT_POLICY=PASSIVE); prints key=value lines.
    python3 bench/torch_reference.py --probe
    python3 bench/torch_reference.py forward --model DIR --batch 8 --seq 64
    python3 bench/torch_reference.py sweep --model DIR --kind senders|senders-mlp|act-z --batch 8 --seq 16 [--every N]
    python3 bench/torch_reference.py atp --model DIR --batch 8 --seq 16
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


def rotate(x, pos, dims, theta):
    """RoPE (rotate_half) on the first `dims` of the last axis; x [B, H, T, E]."""
    inv = 1.0 / (theta ** (torch.arange(0, dims, 2, dtype=torch.float32) / dims))
    ang = pos[:, None].float() * inv[None, :]
    cos, sin = torch.cat([ang, ang], -1).cos(), torch.cat([ang, ang], -1).sin()
    r, rest = x[..., :dims], x[..., dims:]
    half = dims // 2
    rot = torch.cat([-r[..., half:], r[..., :half]], -1)
    return torch.cat([r * cos + rot * sin, rest], -1)


def causal_attention(q, k, v, scale, softcap=0.0, window=0):
    """q [B, H, T, E], k/v [B, H, T, E] -> [B, H, T, E], with soft-cap and sliding window."""
    T = q.shape[-2]
    s = (q @ k.transpose(-1, -2)) * scale
    if softcap:
        s = torch.tanh(s / softcap) * softcap
    i = torch.arange(T)
    mask = i[None, :] <= i[:, None]
    if window:
        mask &= (i[:, None] - i[None, :]) < window
    return torch.softmax(s.masked_fill(~mask, float("-inf")), dim=-1) @ v


def linear(w, prefix, bias=True):
    m = nn.Linear(w[prefix + "weight"].shape[1], w[prefix + "weight"].shape[0], bias=bias)
    m.weight.data = w[prefix + "weight"]
    if bias:
        m.bias.data = w[prefix + "bias"]
    return m


class NeoX(nn.Module):
    """GPT-NeoX (Pythia): fused per-head query_key_value, partial RoPE, parallel residual."""

    def __init__(self, folder):
        super().__init__()
        cfg = json.load(open(os.path.join(folder, "config.json")))
        w = {k: v.float() for k, v in read_safetensors(os.path.join(folder, "model.safetensors")).items()}
        self.D, self.H = cfg["hidden_size"], cfg["num_attention_heads"]
        self.E = self.D // self.H
        self.rot = int(self.E * cfg.get("rotary_pct", 0.25))
        self.parallel = cfg.get("use_parallel_residual", True)
        self.emb = w["gpt_neox.embed_in.weight"]
        self.layers = nn.ModuleList()
        for i in range(cfg["num_hidden_layers"]):
            p = "gpt_neox.layers.%d." % i
            layer = nn.Module()
            layer.ln1 = nn.LayerNorm(self.D)
            layer.ln1.weight.data, layer.ln1.bias.data = w[p + "input_layernorm.weight"], w[p + "input_layernorm.bias"]
            layer.ln2 = nn.LayerNorm(self.D)
            layer.ln2.weight.data, layer.ln2.bias.data = (w[p + "post_attention_layernorm.weight"],
                                                          w[p + "post_attention_layernorm.bias"])
            layer.qkv = linear(w, p + "attention.query_key_value.")
            layer.dense = linear(w, p + "attention.dense.")
            layer.up = linear(w, p + "mlp.dense_h_to_4h.")
            layer.down = linear(w, p + "mlp.dense_4h_to_h.")
            self.layers.append(layer)
        self.lnf = nn.LayerNorm(self.D)
        self.lnf.weight.data, self.lnf.bias.data = w["gpt_neox.final_layer_norm.weight"], w["gpt_neox.final_layer_norm.bias"]
        self.out = w["embed_out.weight"]

    def attn(self, layer, x):
        B, T, _ = x.shape
        qkv = layer.qkv(x).view(B, T, self.H, 3 * self.E).transpose(1, 2)
        q, k, v = qkv.chunk(3, dim=-1)
        pos = torch.arange(T)
        q, k = rotate(q, pos, self.rot, 10000.0), rotate(k, pos, self.rot, 10000.0)
        z = causal_attention(q, k, v, self.E ** -0.5)
        return layer.dense(z.transpose(1, 2).reshape(B, T, self.D))

    def forward(self, ids):
        x = self.emb[ids]
        for layer in self.layers:
            if self.parallel:
                x = x + self.attn(layer, layer.ln1(x)) + layer.down(F.gelu(layer.up(layer.ln2(x))))
            else:
                x = x + self.attn(layer, layer.ln1(x))
                x = x + layer.down(F.gelu(layer.up(layer.ln2(x))))
        return self.lnf(x) @ self.out.t()


class Gemma2(nn.Module):
    """Gemma-2: RMSNorm (1 + w) before and after each sub-layer, soft-caps, sliding windows on even
    layers, grouped-query attention, GeGLU."""

    def __init__(self, folder):
        super().__init__()
        cfg = json.load(open(os.path.join(folder, "config.json")))
        w = {k: v.float() for k, v in read_safetensors(os.path.join(folder, "model.safetensors")).items()}
        self.cfg = cfg
        self.D, self.H, self.G, self.E = (cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"],
                                          cfg["head_dim"])
        self.emb = w["model.embed_tokens.weight"]
        self.layers = []
        for i in range(cfg["num_hidden_layers"]):
            p = "model.layers.%d." % i
            self.layers.append({
                "norms": [w[p + n + ".weight"] for n in ("input_layernorm", "post_attention_layernorm",
                                                         "pre_feedforward_layernorm", "post_feedforward_layernorm")],
                "q": linear(w, p + "self_attn.q_proj.", False), "k": linear(w, p + "self_attn.k_proj.", False),
                "v": linear(w, p + "self_attn.v_proj.", False), "o": linear(w, p + "self_attn.o_proj.", False),
                "gate": linear(w, p + "mlp.gate_proj.", False), "up": linear(w, p + "mlp.up_proj.", False),
                "down": linear(w, p + "mlp.down_proj.", False),
            })
        self.norm = w["model.norm.weight"]

    def rms(self, x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.cfg["rms_norm_eps"]) * (1.0 + w)

    def forward(self, ids):
        B, T = ids.shape
        x = self.emb[ids] * (self.D ** 0.5)
        pos = torch.arange(T)
        for i, l in enumerate(self.layers):
            h = self.rms(x, l["norms"][0])
            q = l["q"](h).view(B, T, self.H, self.E).transpose(1, 2)
            k = l["k"](h).view(B, T, self.G, self.E).transpose(1, 2)
            v = l["v"](h).view(B, T, self.G, self.E).transpose(1, 2)
            q, k = rotate(q, pos, self.E, self.cfg["rope_theta"]), rotate(k, pos, self.E, self.cfg["rope_theta"])
            k, v = k.repeat_interleave(self.H // self.G, 1), v.repeat_interleave(self.H // self.G, 1)
            z = causal_attention(q, k, v, self.cfg["query_pre_attn_scalar"] ** -0.5, self.cfg["attn_logit_softcapping"],
                                 self.cfg["sliding_window"] if i % 2 == 0 else 0)
            x = x + self.rms(l["o"](z.transpose(1, 2).reshape(B, T, self.H * self.E)), l["norms"][1])
            h = self.rms(x, l["norms"][2])
            x = x + self.rms(l["down"](F.gelu(l["gate"](h), approximate="tanh") * l["up"](h)), l["norms"][3])
        logits = self.rms(x, self.norm) @ self.emb.t()
        cap = self.cfg["final_logit_softcapping"]
        return torch.tanh(logits / cap) * cap


def load(folder):
    kind = json.load(open(os.path.join(folder, "config.json")))["model_type"]
    return {"gpt2": GPT2, "gpt_neox": NeoX, "gemma2": Gemma2}[kind](folder).eval()


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


def atp(model, batch, seq):
    """Attribution patching of every (layer, position, head) z, noising, the usual way: a clean forward
    whose hooks keep each z and its gradient, one backward, a corrupted forward caching z. The
    weights need no gradient (the fast setting); the embeddings' output is the leaf that does."""
    L, H = len(model.h), model.n_head
    D = model.wte.shape[1]
    E = D // H
    clean, corrupt = inputs(batch, seq, model.wte.shape[0])
    for p in model.parameters():
        p.requires_grad_(False)
    answer, wrong = 100, 200

    def once():
        acts, grads, bad = {}, {}, {}

        def keep(m, a, i):
            acts[i] = a[0]
            a[0].register_hook(lambda g: grads.__setitem__(i, g))

        hooks = [b.attn.c_proj.register_forward_pre_hook(lambda m, a, i=i: keep(m, a, i)) for i, b in enumerate(model.h)]
        x = (model.wte[clean] + model.wpe[:seq]).requires_grad_(True)
        for b in model.h:
            x = b(x)
        logits = model.ln_f(x) @ model.wte.t()
        (logits[:, -1, answer] - logits[:, -1, wrong]).mean().backward()
        for h in hooks:
            h.remove()
        with torch.inference_mode():
            hooks = [b.attn.c_proj.register_forward_pre_hook(lambda m, a, i=i: bad.__setitem__(i, a[0]))
                     for i, b in enumerate(model.h)]
            model(corrupt)
            for h in hooks:
                h.remove()
            return torch.stack([((bad[i] - acts[i].detach()) * grads[i]).view(batch, seq, H, E).sum(-1).sum(0)
                                for i in range(L)])  # [L, T, H]

    return timed(once)


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
    model = load(a.model)
    if a.command == "forward":
        vocab = json.load(open(os.path.join(a.model, "config.json")))["vocab_size"]
        ids, _ = inputs(a.batch, a.seq, vocab)
        with torch.inference_mode():
            s = timed(lambda: model(ids))
        print("ms=%.3f" % (s * 1e3))
    elif a.command == "atp":
        print("seconds=%.4f" % atp(model, a.batch, a.seq))
    elif a.command == "sweep":
        s, n, measured = sweep(model, a.kind, a.batch, a.seq, a.every)
        print("seconds=%.3f variants=%d measured=%d" % (s, n, measured))


if __name__ == "__main__":
    main()
