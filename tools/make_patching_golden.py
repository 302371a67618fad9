#!/usr/bin/python3
"""Write tests/golden/<model>/patching.safetensors for gpt2, llama-gqa, pythia,
neox-sequential, gpt-neo, qwen2, mistral, gemma2 and llama3 (independent
PyTorch float64 reference for activation / path patching and for
nano-path-patching style predicate scenarios).

Rerun with (from anywhere; paths are resolved relative to this file):

    /usr/bin/python3 tools/make_patching_golden.py

Run it AFTER tools/make_golden.py: it reads the checkpoints that script wrote
(tests/golden/<model>) back from disk, and make_golden.py recreates those
folders from scratch, which deletes patching.safetensors.
Needs only numpy and torch (Debian python3-torch, CPU). There is no
randomness; everything is computed in float64 on one thread and saved as F32,
so a second run gives byte-identical files (the script prints their sha256).

Only the low-level pieces (checkpoint loader, position ids, masked softmax
attention, and make_golden.Arch: norms, per-head projections, RoPE, output
projection, MLP, unembedding of every family) are imported from
make_golden.py; the model here is rebuilt per head so that every head's q, k
and v can read its own residual input. Its plain forward is checked against
make_golden.py's forward. GPT-NeoX's parallel residual (the MLP of block L
reads the residual entering the block) changes the path rules of the MLP;
see the Evaluator. The exact semantics of every tensor are in
tests/golden/README.md ("Patching cases"); the self-checks are listed there too.
"""

import os
import sys

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.dont_write_bytecode = True

import hashlib  # noqa: E402
from collections import OrderedDict  # noqa: E402

import torch  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_golden as mg  # noqa: E402  (importing it writes nothing)
from safetensors_io import write_safetensors  # noqa: E402

torch.set_num_threads(1)
F64 = torch.float64
GOLDEN = mg.GOLDEN
MODELS = ("gpt2", "llama-gqa", "pythia", "neox-sequential", "gpt-neo", "qwen2", "mistral", "gemma2", "llama3")

IDS_CLEAN = [[3, 14, 15, 92, 65, 35, 89], [0, 7, 1, 2, 3, 4, 5]]
IDS_CORRUPT = [[3, 14, 15, 92, 11, 35, 89], [0, 7, 1, 2, 9, 4, 5]]
MASK = [[1, 1, 1, 1, 1, 1, 1], [0, 1, 1, 1, 1, 1, 1]]


# --------------------------------------------------------------------------
# Per-head reference model (float64)
# --------------------------------------------------------------------------


class Model:
    """Per-head model built from make_golden.Arch's pieces (norms, projections, RoPE, attention options,
    output projection, MLP, unembedding), so that every head's q, k and v can read its own residual."""

    def __init__(self, cfg, w, mask):
        self.cfg, self.w = cfg, w
        self.A = A = mg.Arch(cfg, w)
        self.D, self.H, self.G, self.E = A.D, A.H, A.G, A.E
        self.n_layers = A.n_layers
        self.parallel = A.parallel
        self.mask = mask
        self.pos = mg.position_ids_from_mask(mask)

    # --- pieces -----------------------------------------------------------
    def embed(self, ids):
        return self.A.resid0(ids, self.pos)

    def _proj(self, L, part, h, x):
        """Head h's q (part 0), k (1) or v (2) from residual input x [B,T,D] -> [B,T,E].

        Norm first, then the projection restricted to that head's rows / columns (bias
        included); k/v of query head h use kv head h // (H/G); q and k get RoPE (partial
        for NeoX)."""
        A = self.A
        xn = A.norm(x, "ln1", L)
        g = h if part == 0 else h // (self.H // self.G)
        out = A.proj_head(L, part, g, xn)
        if part < 2 and A.rotary:
            out = A.rope(out.unsqueeze(2), self.pos).squeeze(2)
        return out

    def z(self, L, xq, xk, xv):
        """xq/xk/xv: lists (one per query head) of residual inputs [B,T,D]. -> z [B,T,H,E]."""
        q = torch.stack([self._proj(L, 0, h, xq[h]) for h in range(self.H)], 2)
        k = torch.stack([self._proj(L, 1, h, xk[h]) for h in range(self.H)], 2)
        v = torch.stack([self._proj(L, 2, h, xv[h]) for h in range(self.H)], 2)
        return mg.attention(q, k, v, self.mask, **self.A.attn_kwargs(L))[2]

    def result(self, L, z):
        """Per-head output z_h @ W_O[h] -> [B,T,H,D] (no bias)."""
        return self.A.result(L, z)

    def attn_out(self, L, z):
        """Sum of the heads + output bias (Gemma-2: then post_attention_layernorm)."""
        return self.A.attn_out(L, z)

    def attn(self, L, x):
        xs = [x] * self.H
        return self.attn_out(L, self.z(L, xs, xs, xs))

    def mlp(self, L, x):
        """MLP sub-layer (norm included; Gemma-2 post-feedforward norm included) from residual x."""
        return self.A.mlp(L, x)

    def ln_final(self, x):
        return self.A.norm(x, "final")

    def unembed(self, xf):
        """Unembedding (Gemma-2: then the final logit soft-cap)."""
        return self.A.unembed(xf)

    # --- plain forward with an optional z override --------------------------
    def run(self, ids, z_patch=None):
        """z_patch: optional (layer, head, z_value [B,T,H,E]) replacing head's z.

        "a_val" is the value of node aL (resid_pre + attn_out; the hook_resid_mid
        of a sequential block).  In a parallel block the MLP reads resid_pre."""
        acts = {"resid_pre": [], "z": [], "attn_out": [], "a_val": [], "mlp_out": [], "resid_post": []}
        x = self.embed(ids)
        for L in range(self.n_layers):
            acts["resid_pre"].append(x)
            xs = [x] * self.H
            z = self.z(L, xs, xs, xs)
            if z_patch is not None and z_patch[0] == L:
                z = z.clone()
                z[:, :, z_patch[1]] = z_patch[2][:, :, z_patch[1]]
            acts["z"].append(z)
            a = self.attn_out(L, z)
            acts["attn_out"].append(a)
            m = self.mlp(L, x) if self.parallel else None
            x_mid = x + a
            acts["a_val"].append(x_mid)
            if m is None:
                m = self.mlp(L, x_mid)
            acts["mlp_out"].append(m)
            x = x_mid + m
            acts["resid_post"].append(x)
        acts["hidden"] = self.ln_final(x)
        acts["logits"] = self.unembed(acts["hidden"])
        return acts


# --------------------------------------------------------------------------
# nano-path-patching predicate semantics (recursive, no cache)
# --------------------------------------------------------------------------


class Evaluator:
    """value(node, path) as described in tests/golden/README.md.

    branch(path) -> None | "edges" | "positions"; which(path) -> input index
    (0 clean, 1 corrupt), asked only at "emb".

    Parallel residual (GPT-NeoX use_parallel_residual): the graph is the same,
    but the MLP sub-layer of fL reads the residual that enters the block (the
    node before aL), not aL.  fL split: the residual edge continues at aL, the
    MLP edge at the node before aL.  fL not split: aL is evaluated on the path
    and the MLP reads the very value aL's residual edge read."""

    def __init__(self, model, embs, branch, which):
        self.m, self.embs, self.branch, self.which = model, embs, branch, which
        self.T = embs[0].shape[1]

    def prev(self, node):
        L = int(node[1:])
        if node[0] == "a":
            return "emb" if L == 0 else "f%d" % (L - 1)
        return "a%d" % L

    def sub_input_node(self, node):
        """The node whose value the sub-layer of `node` reads (parallel MLP: the node before aL)."""
        if node[0] == "f" and self.m.parallel:
            return self.prev("a" + node[1:])
        return self.prev(node)

    def hidden(self):
        path = ["ln_final"]
        return self.m.ln_final(self.value("f%d" % (self.m.n_layers - 1), path))

    def value(self, node, path):
        if node == "emb":
            k = self.which(path + ["emb"])
            assert k in (0, 1), k
            return self.embs[k]
        return self._value(node, path)[0]

    def _value(self, node, path):
        """-> (value of node, the value its residual edge read)."""
        pp = path + [node]
        s = self.branch(pp)
        prev = self.prev(node)
        if s is None:
            if node[0] == "f" and self.m.parallel:
                a_val, r = self._value(prev, pp)  # aL on the path; the MLP reads what aL's residual read
                return a_val + self.m.mlp(int(node[1:]), r), a_val
            r = self.value(prev, pp)
            return r + self.plain_sub(node, r), r
        if s == "edges":
            r = self.value(prev, path)  # the residual edge's path does not include node
            return r + self.sub(node, pp), r
        raise ValueError("unsupported branch %r at %r" % (s, pp))

    def plain_sub(self, node, x):
        L = int(node[1:])
        return self.m.attn(L, x) if node[0] == "a" else self.m.mlp(L, x)

    def assembled(self, prev, p, node):
        rows = [self.value(prev, p + ["%s.head.pos%d" % (node, P)])[:, P] for P in range(self.T)]
        return torch.stack(rows, 1)

    def sub(self, node, pp):
        L = int(node[1:])
        p = pp + [node + ".head"]
        s = self.branch(p)
        prev = self.sub_input_node(node)
        if s is None:
            return self.plain_sub(node, self.value(prev, p))
        if s == "positions":
            return self.plain_sub(node, self.assembled(prev, p, node))
        if s == "edges" and node[0] == "a":
            xq, xk, xv = [], [], []
            for h in range(self.m.H):
                ph = p + ["%s.head%d" % (node, h)]
                s2 = self.branch(ph)
                if s2 is None:
                    x = self.value(prev, ph)
                    xq.append(x), xk.append(x), xv.append(x)
                elif s2 == "edges":
                    xq.append(self.value(prev, ph + ["%s.head%d.q" % (node, h)]))
                    xk.append(self.value(prev, ph + ["%s.head%d.k" % (node, h)]))
                    xv.append(self.value(prev, ph + ["%s.head%d.v" % (node, h)]))
                else:
                    raise ValueError("unsupported branch %r at %r" % (s2, ph))
            return self.m.attn_out(L, self.m.z(L, xq, xk, xv))
        raise ValueError("unsupported branch %r at %r" % (s, p))


SCENARIOS = OrderedDict(
    [
        (1, (lambda p: "edges" if p[-1] == "a1" else None,
             lambda p: 1 if "a1" in p else 0)),
        (2, (lambda p: "edges" if p[-1] in ("a1", "a1.head") else None,
             lambda p: 1 if "a1.head2" in p else 0)),
        (3, (lambda p: "edges" if p[-1] in ("a1", "a1.head", "a1.head1") else None,
             lambda p: 1 if ("a1.head1.k" in p or "a1.head1.v" in p) else 0)),
        (4, (lambda p: "edges" if p[-1] == "f0" else ("positions" if p[-1] == "f0.head" else None),
             lambda p: 1 if "f0.head.pos4" in p else 0)),
        (5, (lambda p: "edges" if p[-1] == "a1" else ("positions" if p[-1] == "a1.head" else None),
             lambda p: 0 if "a1.head.pos6" in p else 1)),
        (6, (lambda p: "edges" if (p[-1] == "f1" or (p[-1] in ("a1", "a0") and "f1" not in p)) else None,
             lambda p: 1 if ("a0" in p and "f1.head" not in p) else 0)),
    ]
)


# --------------------------------------------------------------------------
# One model
# --------------------------------------------------------------------------


def maxdiff(a, b):
    return (a - b).abs().max().item()


def make_model_file(name):
    d = os.path.join(GOLDEN, name)
    cfg, w = mg.load_checkpoint(d)
    ids_c = torch.tensor(IDS_CLEAN, dtype=torch.long)
    ids_x = torch.tensor(IDS_CORRUPT, dtype=torch.long)
    mask = torch.tensor(MASK, dtype=torch.long)
    m = Model(cfg, w, mask)
    NL, H = m.n_layers, m.H
    assert NL == 2, "the scenarios assume 2 layers"

    clean, corrupt = m.run(ids_c), m.run(ids_x)

    # Check the per-head model against make_golden.py's forward.
    worst = 0.0
    for ids, acts in ((ids_c, clean), (ids_x, corrupt)):
        ref = mg.forward(cfg, w, ids, mask)
        for L in range(NL):
            a = "blocks.%d." % L
            worst = max(worst, maxdiff(acts["z"][L], ref[a + "attn.hook_z"]),
                        maxdiff(acts["attn_out"][L], ref[a + "hook_attn_out"]),
                        maxdiff(acts["resid_post"][L], ref[a + "hook_resid_post"]))
        worst = max(worst, maxdiff(acts["logits"], ref["logits"]))
    assert worst < 1e-12, worst
    print("%s: per-head model vs make_golden forward max |diff| %.1e" % (name, worst))

    # 1-3: activation patching of z and path patching to the final residual.
    act_z, direct, via_mlp = [], [], []
    direct_hid, mlp_hid, mlp_x = {}, {}, {}
    for L in range(NL):
        ra, rb, rc = [], [], []
        for h in range(H):
            ra.append(m.run(ids_c, z_patch=(L, h, corrupt["z"][L]))["logits"])
            z = clean["z"][L].clone()
            z[:, :, h] = corrupt["z"][L][:, :, h]
            patched = m.attn_out(L, z)
            # (2) direct: MLPs frozen
            fin = clean["resid_post"][NL - 1] - clean["attn_out"][L] + patched
            direct_hid[L, h] = fin
            rb.append(m.unembed(m.ln_final(fin)))
            # (3) MLPs on the path recomputed, later attention frozen
            x = clean["resid_pre"][L] + patched
            mlp_x[L, h] = x
            if m.parallel:
                x = x + clean["mlp_out"][L]  # the sender's own MLP reads resid_pre(L), not aL: it stays clean
            else:
                x = x + m.mlp(L, x)
            for k in range(L + 1, NL):
                if m.parallel:
                    mo = m.mlp(k, x)  # reads resid_pre(k), which carries the patched attention
                    x = x + clean["attn_out"][k]
                    x = x + mo
                else:
                    x = x + clean["attn_out"][k]
                    x = x + m.mlp(k, x)
            mlp_hid[L, h] = x
            rc.append(m.unembed(m.ln_final(x)))
        act_z.append(torch.stack(ra))
        direct.append(torch.stack(rb))
        via_mlp.append(torch.stack(rc))
    act_z, direct, via_mlp = torch.stack(act_z), torch.stack(direct), torch.stack(via_mlp)

    # Checks for 1-3.
    last = NL - 1
    d23 = maxdiff(direct, via_mlp)
    assert d23 > 1e-3, d23
    w_mlp = 0.0
    for h in range(H):
        # last layer: (3) - (2) == MLP_last(patched resid_mid) - clean mlp_out_last (exactly, up to rounding);
        # parallel residual: the last MLP does not read the patched attention, so (3) == (2).
        if m.parallel:
            expect = torch.zeros_like(clean["mlp_out"][last])
        else:
            expect = m.mlp(last, mlp_x[last, h]) - clean["mlp_out"][last]
        w_mlp = max(w_mlp, maxdiff(mlp_hid[last, h] - direct_hid[last, h], expect))
    assert w_mlp < 1e-12, w_mlp
    d_act_last = maxdiff(act_z[last], via_mlp[last])  # nothing but MLP_last downstream of the last layer
    assert d_act_last < 1e-12, d_act_last
    d_act_0 = maxdiff(act_z[0], via_mlp[0])  # layer-1 attention is recomputed in (1), frozen in (3)
    assert d_act_0 > 1e-3, d_act_0
    print("  max |direct - mlp| %.3g; last layer: |(mlp-direct) - (MLP_last(x) - clean mlp_out)| %.1e; "
          "|act_z - mlp| layer %d %.1e, layer 0 %.3g; |act_z - clean| %.3g"
          % (d23, w_mlp, last, d_act_last, d_act_0, maxdiff(act_z, clean["logits"])))

    # 4: scenarios.
    embs = [m.embed(ids_c), m.embed(ids_x)]

    def ev(branch, which):
        return Evaluator(m, embs, branch, which).hidden()

    s1b = SCENARIOS[1][0]
    e0 = maxdiff(ev(s1b, lambda p: 0), clean["hidden"])
    e1 = maxdiff(ev(s1b, lambda p: 1), corrupt["hidden"])
    e6 = maxdiff(ev(SCENARIOS[6][0], lambda p: 0), clean["hidden"])
    assert max(e0, e1, e6) < 1e-12, (e0, e1, e6)
    print("  S1 branch, which==0 vs clean %.1e, which==1 vs corrupt %.1e; S6 branch, which==0 vs clean %.1e"
          % (e0, e1, e6))

    # Closed forms of each scenario, built from the plain pieces.  fin(L, a, r): the block output from aL's
    # value a and the residual r that entered the block (the MLP reads a, or r under the parallel residual).
    C, X = clean, corrupt

    def fin(L, a, r):
        return a + m.mlp(L, r if m.parallel else a)

    a1 = C["resid_pre"][1] + m.attn(1, X["resid_pre"][1])
    closed = {1: fin(1, a1, C["resid_pre"][1])}
    xs = [C["resid_pre"][1]] * H
    xs_h2 = list(xs)
    xs_h2[2] = X["resid_pre"][1]
    a1 = C["resid_pre"][1] + m.attn_out(1, m.z(1, xs_h2, xs_h2, xs_h2))
    closed[2] = fin(1, a1, C["resid_pre"][1])
    xkv = list(xs)
    xkv[1] = X["resid_pre"][1]
    a1 = C["resid_pre"][1] + m.attn_out(1, m.z(1, xs, xkv, xkv))
    closed[3] = fin(1, a1, C["resid_pre"][1])
    mo = C["mlp_out"][0].clone()  # the MLP is position-wise: row 4 of its input corrupt = row 4 of its output
    mo[:, 4] = X["mlp_out"][0][:, 4]
    f0 = C["a_val"][0] + mo
    a1 = f0 + m.attn(1, f0)
    closed[4] = fin(1, a1, f0)
    xin = X["resid_pre"][1].clone()
    xin[:, 6] = C["resid_pre"][1][:, 6]
    a1 = X["resid_pre"][1] + m.attn(1, xin)
    closed[5] = fin(1, a1, X["resid_pre"][1])
    a0 = embs[0] + m.attn(0, embs[1])
    f0 = fin(0, a0, embs[0])
    closed[6] = f0 + m.attn(1, f0) + C["mlp_out"][1]

    out = OrderedDict()
    out["input_ids_clean"] = ids_c.to(torch.float32)
    out["input_ids_corrupt"] = ids_x.to(torch.float32)
    out["attention_mask"] = mask.to(torch.float32)
    out["clean_logits"] = clean["logits"]
    out["corrupt_logits"] = corrupt["logits"]
    out["act_patch_z_logits"] = act_z
    out["path_patch_direct_logits"] = direct
    out["path_patch_mlp_logits"] = via_mlp
    for i, (branch, which) in SCENARIOS.items():
        hid = ev(branch, which)
        dc = maxdiff(m.ln_final(closed[i]), hid)
        assert dc < 1e-12, (i, dc)
        d_clean, d_corrupt = maxdiff(hid, C["hidden"]), maxdiff(hid, X["hidden"])
        assert min(d_clean, d_corrupt) > 1e-3, (i, d_clean, d_corrupt)
        print("  S%d: max |hidden - clean| %.3g, |hidden - corrupt| %.3g, vs closed form %.1e"
              % (i, d_clean, d_corrupt, dc))
        out["scenario%d_hidden" % i] = hid
        out["scenario%d_logits" % i] = m.unembed(hid)
    # S2 is the same thing as activation-patching head 2's z in layer 1.
    d22 = maxdiff(out["scenario2_logits"], act_z[1, 2])
    assert d22 < 1e-12, d22
    print("  S2 logits vs act_patch_z_logits[1,2] %.1e" % d22)

    meta = OrderedDict([("model", name), ("case", "patching"), ("generator", "tools/make_patching_golden.py"),
                        ("reference_precision", "float64")])
    path = os.path.join(d, "patching.safetensors")
    write_safetensors(path, out, "F32", meta)
    return path


def main():
    total = 0
    for name in MODELS:
        path = make_model_file(name)
        size = os.path.getsize(path)
        total += size
        with open(path, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()[:16]
        print("%s: %d bytes (%.1f KiB), sha256 %s" % (os.path.relpath(path, mg.ROOT), size, size / 1024, digest))
    print("total %d bytes (%.1f KiB)" % (total, total / 1024))


if __name__ == "__main__":
    main()
