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
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import sys  # noqa: E402
from collections import OrderedDict  # noqa: E402

import torch  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_golden as mg  # noqa: E402
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
        path = os.path.join(d, "gradients.safetensors")
        meta = OrderedDict([("model", name), ("generator", "tools/make_gradient_golden.py"),
                            ("reference_precision", "float64")])
        write_safetensors(path, tensors, "F32", meta)
        size = os.path.getsize(path)
        total += size
        print("%-16s %3d tensors, %7d bytes, logit_diff %.4f" % (name, len(tensors), size,
                                                                 tensors["logit_diff/value"].item()))
    print("total %d bytes" % total)


if __name__ == "__main__":
    main()
