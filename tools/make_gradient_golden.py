#!/usr/bin/python3
"""Write tests/golden/<model>/gradients.safetensors: gradients by torch autograd (float64).

Rerun with:

    /usr/bin/python3 tools/make_gradient_golden.py

after tools/make_golden.py (it reads the checkpoints that script writes, and runs
its float64 reference forward: the same independent description of each family).
Needs only numpy and torch.

For each model, on make_golden's "batch" case (3 rows, left padding) as the
input, and a corrupted copy of it (some real tokens changed) as the second
reference, it stores:

  * input_ids, attention_mask, corrupted_ids (F32, as make_golden stores ids),
    answer, wrong (one token per row);
  * "logit_diff/<activation>" for every hook activation: the gradient of
    mean over rows of logits[b, -1, answer[b]] - logits[b, -1, wrong[b]];
  * for the other metrics, "<metric>/ln_final.hook_normalized" and
    "<metric>/blocks.0.hook_resid_pre" (the metric-specific part is the head;
    the body is shared with the logit difference), each the gradient of the
    batch mean of:
      prob            p(answer) at the last position
      log_prob        log p(answer) at the last position
      cross_entropy   -log p(next input token) at every position but the last
      kl              KL(corrupted-run distribution || this run's) at the last
                      position: the input is the clean batch and the reference
                      "clean" distribution is the corrupted run's, so the
                      gradient is not zero
      normalized      (logit_diff - corrupted) / (clean - corrupted) with the
                      batch means of the two runs as references

The gradient of an activation is the total derivative of the metric with
respect to it (TransformerLens backward hooks): where a tensor is used twice
(resid_pre feeds the norm and the residual sum) both uses count.

And edge attribution on EAP-IG's graph (hannamw/EAP-IG, written from its
graph.py / attribute.py; not copied), for every model but the attention-only
one: "eap/scores", "eap_ig3/scores" and "eap_ig_act2/scores" [sources,
destinations], sources
input, a{L}.h{H} ..., m{L} in EAP-IG's forward order, destinations
a{L}.h{H}<q> (all heads), <k>, <v>, m{L}, ..., logits in its backward order,
0 where no edge. The forward here gives each head's q, k and v input and each
MLP's input and the final residual a copy of the residual of their own (EAP-IG's
split q/k/v input, hook_mlp_in; on grouped-query models each query head's k and v
from its own copy: ungrouped), so autograd gives the gradient at each
destination directly. score[s, d] = sum over rows and positions of
(corrupted - clean)[s] . grad[d] / rows, with the gradient of the batch mean of
the logit difference taken on the clean input (EAP), averaged over the
embeddings corrupted + k/3 (clean - corrupted), k = 0, 1, 2 (EAP-IG, 3 steps),
or averaged over clean runs in which one node's output (hook_embed, a layer's
hook_result, a hook_mlp_out) is the constant corrupted + k/2 (clean - corrupted),
k = 1, 2, each node in turn (EAP-IG on activations, 2 steps).
Sources are hook_embed, each head's hook_result and each hook_mlp_out.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import json  # noqa: E402
import sys  # noqa: E402
from collections import OrderedDict  # noqa: E402

import torch  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_golden as mg  # noqa: E402
from make_golden import F64  # noqa: E402
from safetensors_io import write_safetensors  # noqa: E402

MODELS = ["gpt2", "gpt2-attn-only", "gpt2-untied", "llama-gqa", "llama-tied", "llama3", "llama-linear", "mistral",
          "qwen2", "gemma2", "pythia", "neox-sequential", "gpt-neo"]
ANSWER = [11, 22, 33]
WRONG = [44, 55, 66]


def corrupted(ids, mask):
    """The same rows with every third real token replaced (same layout, so the same mask)."""
    out = [list(r) for r in ids]
    for b, row in enumerate(out):
        for t in range(len(row)):
            if mask[b][t] and t % 3 == 1:
                row[t] = (row[t] * 7 + 5) % 100
    return out


def run(cfg, w, ids, mask):
    for v in w.values():
        v.requires_grad_(True)
    acts = mg.forward(cfg, w, torch.tensor(ids), torch.tensor(mask))
    for v in acts.values():
        if v.requires_grad:
            v.retain_grad()
    return acts


def logit_diff(logits):
    last = logits[:, -1, :]
    rows = torch.arange(logits.shape[0])
    return last[rows, ANSWER] - last[rows, WRONG]


def metrics(acts, ids, ref_logits, clean_ld, corrupt_ld):
    logits = acts["logits"]
    lp = torch.log_softmax(logits, -1)
    rows = torch.arange(logits.shape[0])
    targets = torch.tensor(ids)[:, 1:]
    ref_lp = torch.log_softmax(ref_logits[:, -1, :], -1)
    return OrderedDict([
        ("logit_diff", logit_diff(logits).mean()),
        ("prob", lp[:, -1, :].exp()[rows, ANSWER].mean()),
        ("log_prob", lp[:, -1, :][rows, ANSWER].mean()),
        ("cross_entropy", -lp[:, :-1, :].gather(-1, targets.unsqueeze(-1)).squeeze(-1).mean(-1).mean()),
        ("kl", (ref_lp.exp() * (ref_lp - lp[:, -1, :])).sum(-1).mean()),
        ("normalized", ((logit_diff(logits) - corrupt_ld) / (clean_ld - corrupt_ld)).mean()),
    ])


def grads_of(name, d, ids, mask, bad_ids):
    cfg, w = mg.load_checkpoint(d)
    with torch.no_grad():
        ref = mg.forward(cfg, w, torch.tensor(bad_ids), torch.tensor(mask))["logits"]
        clean = mg.forward(cfg, w, torch.tensor(ids), torch.tensor(mask))["logits"]
    clean_ld, corrupt_ld = logit_diff(clean).mean(), logit_diff(ref).mean()
    out = OrderedDict()
    for metric in ("logit_diff", "prob", "log_prob", "cross_entropy", "kl", "normalized"):
        acts = run(cfg, w, ids, mask)
        value = metrics(acts, ids, ref, clean_ld, corrupt_ld)[metric]
        value.backward()
        names = [k for k in acts if k != "logits"]
        if metric != "logit_diff":
            names = ["ln_final.hook_normalized", "blocks.0.hook_resid_pre"]
        for k in names:
            g = acts[k].grad
            assert g is not None, (name, metric, k)
            out["%s/%s" % (metric, k)] = g.detach().to(torch.float32)
        out["%s/value" % metric] = value.detach().reshape(1).to(torch.float32)
    return out


def eap_forward(A, ids, mask, resid0=None, override=None):
    """The forward with a copy of the residual for every destination: (logits, inputs, sources).
    override: (node, value) sets a node's output ("input": hook_embed, "a{L}": the layer's
    hook_result [B,T,H,D], "m{L}": hook_mlp_out) to a constant."""
    pos = mg.position_ids_from_mask(mask)
    tok, pe = A.embed(ids, pos)
    if override is not None and override[0] == "input":
        tok = override[1].clone().requires_grad_(True)  # a leaf: everything after it has a gradient
    x = (tok if pe is None else tok + pe) if resid0 is None else resid0
    inputs, sources = OrderedDict(), OrderedDict([("input", tok)])
    kv_of = A.kv_of()

    def copy(t, name):
        c = t.clone()
        if c.requires_grad:  # (not in the runs that only read the sources)
            c.retain_grad()
        inputs[name] = c
        return c

    for L in range(A.n_layers):
        per_role = [[], [], []]
        for r, role in enumerate("qkv"):
            for h in range(A.H):
                xn = A.norm(copy(x, "a%d.h%d<%s>" % (L, h, role)), "ln1", L)
                per_role[r].append(A.proj_head(L, r, h if r == 0 else int(kv_of[h]), xn))
        q, k, v = (torch.stack(t, 2) for t in per_role)  # [B,T,H,E], k and v per query head
        if A.rotary:
            q, k = A.rope(q, pos), A.rope(k, pos)
        z = mg.attention(q, k, v, mask, **A.attn_kwargs(L))[2]
        result = A.result(L, z)
        if override is not None and override[0] == "a%d" % L:
            result = override[1]
        for h in range(A.H):
            sources["a%d.h%d" % (L, h)] = result[:, :, h]
        attn_out = A.attn_out(L, result=result)
        mid = x + attn_out
        mlp_out = A.mlp_parts(L, A.norm(copy(x if A.parallel else mid, "m%d" % L), "ln2", L))[3]
        if override is not None and override[0] == "m%d" % L:
            mlp_out = override[1]
        sources["m%d" % L] = mlp_out
        x = mid + mlp_out
    logits = A.unembed(A.norm(copy(x, "logits"), "final"))
    return logits, inputs, sources


def edge_scores(cfg, w, ids, mask, bad, steps, activations=False):
    """EAP (steps 0), EAP-IG with `steps` points, or (activations) EAP-IG interpolating each node's
    output in turn (k = 1 .. steps, the clean run otherwise; EAP-IG's get_scores_ig_activations):
    [sources, destinations]."""
    for v in w.values():
        v.requires_grad_(False)
    A = mg.Arch(cfg, w)
    ids_t, bad_t, mask_t = torch.tensor(ids), torch.tensor(bad), torch.tensor(mask)
    with torch.no_grad():
        _, _, clean_src = eap_forward(A, ids_t, mask_t)
        _, _, bad_src = eap_forward(A, bad_t, mask_t)
        pos = mg.position_ids_from_mask(mask_t)
        clean0, bad0 = A.resid0(ids_t, pos), A.resid0(bad_t, pos)
    names_src = list(clean_src)
    grads = None
    runs = []  # (resid0, override) per gradient
    if activations:
        nodes = ["input"] + [n for L in range(A.n_layers) for n in ("a%d" % L, "m%d" % L)]
        for node in nodes:
            if node.startswith("a"):
                heads = ["%s.h%d" % (node, h) for h in range(A.H)]
                c, b = (torch.stack([src[n] for n in heads], 2) for src in (clean_src, bad_src))
            else:
                c, b = clean_src[node], bad_src[node]
            for k in range(1, steps + 1):
                runs.append((None, (node, b + (k / steps) * (c - b))))
    else:
        for k in range(max(steps, 1)):
            runs.append((None if steps == 0 else bad0 + (k / steps) * (clean0 - bad0), None))
    for resid0, override in runs:
        if resid0 is None:  # the clean input, with a leaf to differentiate
            tok, pe = A.embed(ids_t, pos)
            resid0 = tok if pe is None else tok + pe
        resid0 = resid0.clone().requires_grad_(True)
        if override is not None and override[0] == "input":
            resid0 = None  # the embeddings are the override; the positions are added to it
        logits, inputs, _ = eap_forward(A, ids_t, mask_t, resid0, override)
        logit_diff(logits).mean().backward()
        step = OrderedDict((d, t.grad.detach().clone() if t.grad is not None else torch.zeros_like(t))
                           for d, t in inputs.items())
        grads = step if grads is None else OrderedDict((d, grads[d] + step[d]) for d in grads)
    names_dst = list(grads)
    n_heads, parallel = A.H, A.parallel
    scores = torch.zeros(len(names_src), len(names_dst), dtype=F64)
    B = len(ids)
    for j, d in enumerate(names_dst):
        if d == "logits":
            prev = len(names_src)
        else:
            layer = int(d[1:].split(".")[0].split("<")[0])
            prev = 1 + layer * (n_heads + 1)
            if d.startswith("m") and not parallel:
                prev += n_heads
        for i in range(prev):
            delta = bad_src[names_src[i]] - clean_src[names_src[i]]
            scores[i, j] = (delta * grads[d]).sum() / B / len(runs)
    return scores, names_src, names_dst


def main():
    ids, mask = mg.CASES["batch"]
    bad = corrupted(ids, mask)
    total = 0
    for name in MODELS:
        d = os.path.join(mg.GOLDEN, name)
        tensors = OrderedDict()
        tensors["input_ids"] = torch.tensor(ids, dtype=torch.float32)
        tensors["attention_mask"] = torch.tensor(mask, dtype=torch.float32)
        tensors["corrupted_ids"] = torch.tensor(bad, dtype=torch.float32)
        tensors["answer"] = torch.tensor(ANSWER, dtype=torch.float32)
        tensors["wrong"] = torch.tensor(WRONG, dtype=torch.float32)
        tensors.update(grads_of(name, d, ids, mask, bad))
        meta_names = {}
        if name != "gpt2-attn-only":  # EAP-IG's graph has MLPs (make_golden.Arch has no attention-only form)
            cfg, w = mg.load_checkpoint(d)
            for key, steps, act in (("eap", 0, False), ("eap_ig3", 3, False), ("eap_ig_act2", 2, True)):
                scores, src, dst = edge_scores(cfg, w, ids, mask, bad, steps, act)
                tensors[key + "/scores"] = scores.to(torch.float32)
            meta_names = {"sources": json.dumps(src), "destinations": json.dumps(dst)}
        path = os.path.join(d, "gradients.safetensors")
        meta = OrderedDict([("model", name), ("generator", "tools/make_gradient_golden.py"),
                            ("reference_precision", "float64")], **meta_names)
        write_safetensors(path, tensors, "F32", meta)
        size = os.path.getsize(path)
        total += size
        print("%-16s %3d tensors, %7d bytes, logit_diff %.4f" % (name, len(tensors), size,
                                                                 tensors["logit_diff/value"].item()))
    print("total %d bytes" % total)


if __name__ == "__main__":
    main()
