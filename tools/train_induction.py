#!/usr/bin/python3
"""Train the zoo's induction model: a 2-layer ATTENTION-ONLY GPT-2 on the real
GPT-2 vocabulary (50257 ids), and write it in the Hugging Face layout.

    OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 tools/train_induction.py

writes models/zoo/induction-gpt2/{config.json, model.safetensors (F16),
eval.jsonl, circuit.json, MODEL_CARD.md}.  It never touches the tokenizer files
(vocab.json, merges.txt, TOKENIZER_NOTICE.md) that live in the same folder.

Data: BOS (50256) followed by a random sequence x of L distinct token ids drawn
uniformly from [TOK_LO, TOK_HI), then x again (L uniform in [20, 40]).  The
second copy is predictable by induction, the first is not.

Architecture: GPT-2 without MLPs and without ln_2 (see tests/golden/README.md):
    x0 = wte[ids] + wpe[0..T-1]
    x_{l+1} = x_l + c_proj(attn(LN_1(x_l)))          (c_attn / c_proj are Conv1D, [in, out])
    logits = LN_f(x_L) @ wte^T                        (tied unembedding)

Training uses a sampled softmax (the batch's target ids plus ids drawn from the
task's range and, after the circuit has formed, from the whole vocabulary),
because a full 50257-way softmax costs ~4 s a step on one CPU thread.  Every
number reported in the card is measured with the FULL 50257-way softmax, by an
independent float64 forward that reads the exported F16 weights back from disk.

Deterministic: fixed seeds, one thread.
"""

import argparse
import json
import math
import os
import sys
import time
from collections import OrderedDict

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch

torch.set_num_threads(1)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_io import read_safetensors, write_safetensors  # noqa: E402

VOCAB = 50257
BOS = 50256
TOK_LO, TOK_HI = 10000, 30000  # token ids used by the task (20000 ids)
LEN_LO, LEN_HI = 20, 40  # length of the random sequence x (inclusive)

CFG = OrderedDict(
    [
        ("model_type", "gpt2"),
        ("attn_only", True),
        ("n_layer", 2),
        ("n_head", 4),
        ("n_embd", 128),
        ("n_positions", 128),
        ("n_ctx", 128),
        ("vocab_size", VOCAB),
        ("layer_norm_epsilon", 1e-05),
        ("activation_function", "gelu_new"),
        ("n_inner", None),
        ("bos_token_id", BOS),
        ("eos_token_id", BOS),
        ("tie_word_embeddings", True),
        ("architectures", ["GPT2LMHeadModel"]),
    ]
)


# --------------------------------------------------------------------------- data
def make_batch(rng, batch, L=None):
    """Returns ids [batch, 1 + 2L] (int64) and L."""
    if L is None:
        L = int(rng.integers(LEN_LO, LEN_HI + 1))
    ids = np.empty((batch, 1 + 2 * L), dtype=np.int64)
    ids[:, 0] = BOS
    for b in range(batch):
        x = rng.choice(TOK_HI - TOK_LO, size=L, replace=False) + TOK_LO
        ids[b, 1 : 1 + L] = x
        ids[b, 1 + L :] = x
    return torch.from_numpy(ids), L


# --------------------------------------------------------------------------- model (training)
def init_params(seed):
    g = torch.Generator().manual_seed(seed)
    D, P, NL = CFG["n_embd"], CFG["n_positions"], CFG["n_layer"]

    def n(*shape, std):
        return (torch.randn(*shape, generator=g) * std).requires_grad_(True)

    p = OrderedDict()
    p["wte.weight"] = n(VOCAB, D, std=0.02)
    p["wpe.weight"] = n(P, D, std=0.02)
    for i in range(NL):
        p["h.%d.ln_1.weight" % i] = torch.ones(D, requires_grad=True)
        p["h.%d.ln_1.bias" % i] = torch.zeros(D, requires_grad=True)
        p["h.%d.attn.c_attn.weight" % i] = n(D, 3 * D, std=0.02)
        p["h.%d.attn.c_attn.bias" % i] = torch.zeros(3 * D, requires_grad=True)
        p["h.%d.attn.c_proj.weight" % i] = n(D, D, std=0.02 / math.sqrt(2 * NL))
        p["h.%d.attn.c_proj.bias" % i] = torch.zeros(D, requires_grad=True)
    p["ln_f.weight"] = torch.ones(D, requires_grad=True)
    p["ln_f.bias"] = torch.zeros(D, requires_grad=True)
    return p


def train_forward(p, ids, pats=None, wte=None):
    """Final normalized residual [B, T, D] (float32).  pats: optional list that
    receives each layer's attention pattern (detached).  wte: optional
    embedding table to use instead of p["wte.weight"] (with ids indexing it)."""
    D, H, NL = CFG["n_embd"], CFG["n_head"], CFG["n_layer"]
    E = D // H
    eps = CFG["layer_norm_epsilon"]
    B, T = ids.shape
    x = (p["wte.weight"] if wte is None else wte)[ids] + p["wpe.weight"][:T]
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    for i in range(NL):
        h = torch.nn.functional.layer_norm(x, (D,), p["h.%d.ln_1.weight" % i], p["h.%d.ln_1.bias" % i], eps)
        qkv = h @ p["h.%d.attn.c_attn.weight" % i] + p["h.%d.attn.c_attn.bias" % i]
        q, k, v = qkv.split(D, dim=-1)
        q = q.view(B, T, H, E).transpose(1, 2)
        k = k.view(B, T, H, E).transpose(1, 2)
        v = v.view(B, T, H, E).transpose(1, 2)
        s = (q @ k.transpose(-1, -2)) / math.sqrt(E)
        s = s.masked_fill(~causal, float("-inf"))
        a = s.softmax(-1)
        if pats is not None:
            pats.append(a.detach())
        z = (a @ v).transpose(1, 2).reshape(B, T, D)
        x = x + z @ p["h.%d.attn.c_proj.weight" % i] + p["h.%d.attn.c_proj.bias" % i]
    return torch.nn.functional.layer_norm(x, (D,), p["ln_f.weight"], p["ln_f.bias"], eps)


# --------------------------------------------------------------------------- reference forward (eval)
def ref_forward(w, ids, mean_ablate=None):
    """Independent float64 forward following tests/golden/README.md (HF GPT-2
    semantics, attention-only).  w: name -> float64 tensor.  ids: [B, T].
    mean_ablate: optional (layer, head) whose z is replaced by its mean over
    the batch and positions.  Returns logits [B, T, V] and the attention
    patterns [layer][B, H, T, T]."""
    D, H, NL = CFG["n_embd"], CFG["n_head"], CFG["n_layer"]
    E = D // H
    eps = CFG["layer_norm_epsilon"]
    B, T = ids.shape

    def ln(x, g, b):
        mu = x.mean(-1, keepdim=True)
        var = ((x - mu) ** 2).mean(-1, keepdim=True)  # biased variance
        return (x - mu) / torch.sqrt(var + eps) * g + b

    pos = torch.arange(T)
    x = w["wte.weight"][ids] + w["wpe.weight"][pos][None]
    mask = torch.arange(T)[None, :] > torch.arange(T)[:, None]  # j > i
    patterns = []
    for l in range(NL):
        h = ln(x, w["h.%d.ln_1.weight" % l], w["h.%d.ln_1.bias" % l])
        qkv = torch.einsum("btd,de->bte", h, w["h.%d.attn.c_attn.weight" % l]) + w["h.%d.attn.c_attn.bias" % l]
        q = qkv[..., :D].reshape(B, T, H, E)
        k = qkv[..., D : 2 * D].reshape(B, T, H, E)
        v = qkv[..., 2 * D :].reshape(B, T, H, E)
        scores = torch.einsum("bihe,bjhe->bhij", q, k) / math.sqrt(E)
        scores = scores.masked_fill(mask, float("-inf"))
        pat = torch.softmax(scores, dim=-1)
        patterns.append(pat)
        z = torch.einsum("bhij,bjhe->bihe", pat, v)
        if mean_ablate is not None and mean_ablate[0] == l:
            z = z.clone()
            z[:, :, mean_ablate[1]] = z[:, :, mean_ablate[1]].mean(dim=(0, 1))
        Wo = w["h.%d.attn.c_proj.weight" % l]
        attn_out = torch.einsum("bihe,hef->bif", z, Wo.reshape(H, E, D)) + w["h.%d.attn.c_proj.bias" % l]
        x = x + attn_out
    xf = ln(x, w["ln_f.weight"], w["ln_f.bias"])
    logits = xf @ w["wte.weight"].T
    return logits, patterns


def evaluate(w, seqs, head_ablation=None):
    """seqs: list of (ids tensor [T], L).  Full-vocab metrics.  head_ablation:
    optional (layer, head) whose output z is replaced by its mean over the
    batch's positions (mean ablation)."""
    tot = {"loss_first": [], "loss_repeat": [], "acc_repeat": [], "prev": None, "ind": None}
    NL, H = CFG["n_layer"], CFG["n_head"]
    prev_scores = torch.zeros(NL, H, dtype=torch.float64)
    prev_first = torch.zeros(NL, H, dtype=torch.float64)
    n_first = 0
    NB = (2 * LEN_HI + 9) // 10  # query-position buckets 1-10, 11-20, ... (t <= 2L)
    prev_bucket = torch.zeros(NL, H, NB, dtype=torch.float64)
    n_bucket = torch.zeros(NB, dtype=torch.float64)
    ind_scores = torch.zeros(NL, H, dtype=torch.float64)
    n_prev = n_ind = 0
    # group by length so that each group is one batch
    by_len = OrderedDict()
    for ids, L in seqs:
        by_len.setdefault(L, []).append(ids)
    for L, group in by_len.items():
        ids = torch.stack(group)
        logits, pats = ref_forward(w, ids, head_ablation)
        lp = torch.log_softmax(logits, -1)
        tgt = ids[:, 1:]
        nll = -lp[:, :-1].gather(-1, tgt[..., None])[..., 0]  # [B, T-1]; position t predicts t+1
        # first copy: predictions of x[1..L-1] made at positions 1..L-1 (x[0] after BOS also unpredictable)
        # repeated copy: predictions of the 2nd-copy tokens x[1..L-1] made at positions L+1..2L-1
        tot["loss_first"].append(nll[:, 1:L].reshape(-1))
        tot["loss_repeat"].append(nll[:, L + 1 : 2 * L].reshape(-1))
        pred = lp[:, L + 1 : 2 * L].argmax(-1)
        tot["acc_repeat"].append((pred == ids[:, L + 2 : 2 * L + 1]).double().reshape(-1))
        T = ids.shape[1]
        for l in range(NL):
            p = pats[l]  # [B, H, T, T]
            t = torch.arange(1, T)
            prev_scores[l] += p[:, :, t, t - 1].sum(dim=(0, 2))
            t1 = torch.arange(1, L + 2)  # BOS excluded: the first copy and the first token of the second
            prev_first[l] += p[:, :, t1, t1 - 1].sum(dim=(0, 2))
            bk = (t - 1) // 10
            prev_bucket[l].index_add_(1, bk, p[:, :, t, t - 1].sum(0))
            t2 = torch.arange(L + 1, 2 * L + 1)  # queries in the second copy
            ind_scores[l] += p[:, :, t2, t2 - L + 1].sum(dim=(0, 2))
        n_prev += ids.shape[0] * (T - 1)
        n_first += ids.shape[0] * (L + 1)
        n_bucket.index_add_(0, (torch.arange(1, T) - 1) // 10, torch.full((T - 1,), float(ids.shape[0]), dtype=torch.float64))
        n_ind += ids.shape[0] * L
    out = OrderedDict()
    out["loss_first_half"] = torch.cat(tot["loss_first"]).mean().item()
    out["loss_repeated_half"] = torch.cat(tot["loss_repeat"]).mean().item()
    out["top1_acc_repeated_half"] = torch.cat(tot["acc_repeat"]).mean().item()
    out["prev_token_scores"] = (prev_scores / n_prev).tolist()
    out["prev_token_scores_first_copy"] = (prev_first / n_first).tolist()
    out["prev_token_scores_layer0_by_position"] = (prev_bucket[0] / n_bucket.clamp(min=1)).tolist()
    out["induction_scores"] = (ind_scores / n_ind).tolist()
    return out


def catch_up(w, m, v, n, lr, betas, eps):
    """In place: the movement dense Adam would have made on rows w (moments m, v)
    over n[i] steps without gradient (see main)."""
    n = n.clamp(min=0).to(w.dtype)[:, None]
    r = betas[0] / math.sqrt(betas[1])
    w.sub_(lr * m / (v.sqrt() + eps) * (r * (1 - r ** n) / (1 - r)))
    m.mul_(betas[0] ** n)
    v.mul_(betas[1] ** n)


# --------------------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="models/zoo/induction-gpt2")
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--neg", type=int, default=1024, help="sampled negatives per step from the task's id range")
    ap.add_argument("--neg-out", type=int, default=512, help="sampled negatives per step from the whole vocabulary")
    ap.add_argument("--neg-out-start", type=int, default=2000, help="first step that uses --neg-out")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--eval-seqs", type=int, default=300)
    ap.add_argument("--train-only", action="store_true", help="experiments: skip export and evaluation")
    ap.add_argument("--result-json", default=None, help="also write all results and the log to this file")
    args = ap.parse_args()

    t0 = time.time()
    torch.manual_seed(args.seed)
    params = init_params(args.seed)
    rng = np.random.default_rng(args.seed)
    # The embedding (50257 x D) is updated lazily, as a dense Adam would update
    # it but touching only the rows that occur in a step (inputs, targets,
    # sampled negatives).  A row that got no gradient for n steps would, under
    # dense Adam, keep moving on its decaying moments; that movement is applied
    # in closed form when the row is next touched (and for all rows at the end):
    #   m <- b1^n m,  v <- b2^n v,  w <- w - lr * m/sqrt(v) * sum_{k=1..n} (b1/sqrt(b2))^k
    # (the current lr and no bias correction for the skipped steps; both are
    # close to exact after warm-up).  Without this catch-up (plain lazy Adam, as
    # torch.optim.SparseAdam) rarely seen rows learn ~10x slower and the
    # induction circuit did not form in 3000 steps.
    wte = params["wte.weight"].detach()
    wte_m = torch.zeros_like(wte)
    wte_v = torch.zeros_like(wte)
    wte_last = torch.full((VOCAB,), -1, dtype=torch.long)  # last step at which the row was updated
    others = [(k, v) for k, v in params.items() if k != "wte.weight"]
    decay = [v for k, v in others if v.dim() == 2]
    no_decay = [v for k, v in others if v.dim() != 2]
    betas, adam_eps = (0.9, 0.98), 1e-8
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr,
        betas=betas,
        eps=adam_eps,
    )
    warm = 100

    def lr_at(step):
        if step < warm:
            return args.lr * (step + 1) / warm
        f = (step - warm) / max(1, args.steps - warm)
        return args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * f)))

    log = []
    for step in range(args.steps):
        lr = lr_at(step)
        for gr in opt.param_groups:
            gr["lr"] = lr
        ids, L = make_batch(rng, args.batch)
        tgt = ids[:, 1:]
        neg = torch.from_numpy(rng.integers(TOK_LO, TOK_HI, size=args.neg))
        if step >= args.neg_out_start:
            neg = torch.cat([neg, torch.from_numpy(rng.integers(0, VOCAB, size=args.neg_out))])
        cand, inv = torch.unique(torch.cat([tgt.reshape(-1), neg]), return_inverse=True)
        tix = inv[: tgt.numel()].view_as(tgt)
        # rows of wte touched this step: the inputs (BOS + targets) and the candidates
        rows = torch.unique(torch.cat([ids.reshape(-1), cand]))
        sub = wte[rows].clone().requires_grad_(True)
        pats = []
        xf = train_forward(params, torch.searchsorted(rows, ids), pats, wte=sub)[:, :-1]  # [B, T-1, D]
        logits = xf @ sub[torch.searchsorted(rows, cand)].T  # [B, T-1, C]
        nll = torch.nn.functional.cross_entropy(logits.reshape(-1, cand.numel()), tix.reshape(-1), reduction="none")
        nll = nll.view(tgt.shape)
        loss = nll.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([v for _, v in others] + [sub], 1.0)
        opt.step()
        with torch.no_grad():
            w_rows = sub.detach().clone()
            m = wte_m[rows]
            v = wte_v[rows]
            catch_up(w_rows, m, v, step - 1 - wte_last[rows], lr, betas, adam_eps)
            g = sub.grad
            m.mul_(betas[0]).add_(g, alpha=1 - betas[0])
            v.mul_(betas[1]).addcmul_(g, g, value=1 - betas[1])
            bc1 = 1 - betas[0] ** (step + 1)
            bc2 = 1 - betas[1] ** (step + 1)
            wte[rows] = w_rows - lr * (m / bc1) / ((v / bc2).sqrt() + adam_eps)
            wte_m[rows] = m
            wte_v[rows] = v
            wte_last[rows] = step
        if step % 100 == 0 or step == args.steps - 1:
            lf = nll[:, 1:L].mean().item()
            lr_ = nll[:, L + 1 :].mean().item()
            T = ids.shape[1]
            t = torch.arange(1, T)
            prev = pats[0][:, :, t, t - 1].mean(dim=(0, 2)).max().item()
            t2 = torch.arange(L + 1, 2 * L + 1)
            ind = pats[1][:, :, t2, t2 - L + 1].mean(dim=(0, 2)).max().item()
            msg = "step %5d  L %2d  loss %.3f  first %.3f  repeat %.3f  (sampled softmax, %d cand)  prev %.2f  ind %.2f  %.0fs" % (
                step, L, loss.item(), lf, lr_, cand.numel(), prev, ind, time.time() - t0)
            print(msg, flush=True)
            log.append(msg)
    with torch.no_grad():  # bring every row to the last step
        catch_up(wte, wte_m, wte_v, args.steps - 1 - wte_last, lr_at(args.steps - 1), betas, adam_eps)
    train_time = time.time() - t0
    if args.train_only:
        return

    # ---------------------------------------------------------------- export
    out = args.out
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(CFG, f, indent=2)
        f.write("\n")
    params["wte.weight"] = wte
    tensors = OrderedDict((k, v.detach()) for k, v in params.items())
    write_safetensors(os.path.join(out, "model.safetensors"), tensors, dtype="F16", metadata={"format": "pt"})

    # ---------------------------------------------------------------- eval from the F16 file
    w = read_safetensors(os.path.join(out, "model.safetensors"))
    w = OrderedDict((k, v.to(torch.float64)) for k, v in w.items())
    erng = np.random.default_rng(args.seed + 1)  # fresh sequences, never used in training
    seqs = []
    for _ in range(args.eval_seqs):
        ids, L = make_batch(erng, 1)
        seqs.append((ids[0], L))
    with torch.no_grad():
        metrics = evaluate(w, seqs)
    prev = torch.tensor(metrics["prev_token_scores"])
    prevf = torch.tensor(metrics["prev_token_scores_first_copy"])
    ind = torch.tensor(metrics["induction_scores"])
    ph = int(prevf[0].argmax())
    ih = int(ind[1].argmax())
    abl = OrderedDict()
    with torch.no_grad():
        for l in range(CFG["n_layer"]):
            for h in range(CFG["n_head"]):
                m = evaluate(w, seqs[:60], head_ablation=(l, h))
                abl["%d.%d" % (l, h)] = round(m["loss_repeated_half"], 4)

    # fixed evaluation sequences for the C++ tests
    frng = np.random.default_rng(20240601)
    fixed = []
    for _ in range(100):
        ids, L = make_batch(frng, 1)
        fixed.append((ids[0], L))
    with torch.no_grad():
        fm = evaluate(w, fixed)
    with open(os.path.join(out, "eval.jsonl"), "w") as f:
        for ids, L in fixed:
            f.write(json.dumps({"ids": ids.tolist(), "repeat_from": L + 1}) + "\n")

    circuit = OrderedDict()
    circuit["found_by"] = "tools/train_induction.py (attention scores and mean ablation on %d fresh sequences, F16 weights)" % args.eval_seqs
    circuit["token_range"] = [TOK_LO, TOK_HI]  # read by `pathpatch demo` to make its prompts
    circuit["bos"] = BOS
    circuit["previous_token_head"] = [0, ph]
    circuit["induction_head"] = [1, ih]
    circuit["previous_token_score"] = round(float(prevf[0, ph]), 4)
    circuit["previous_token_score_all_positions"] = round(float(prev[0, ph]), 4)
    circuit["induction_score"] = round(float(ind[1, ih]), 4)
    circuit["prev_token_scores"] = [[round(float(s), 4) for s in row] for row in prevf]
    circuit["prev_token_scores_all_positions"] = [[round(float(s), 4) for s in row] for row in prev]
    circuit["induction_scores"] = [[round(float(s), 4) for s in row] for row in ind]
    circuit["prev_token_scores_layer0_by_query_position"] = OrderedDict(
        ("%d-%d" % (10 * b + 1, 10 * b + 10), [round(float(row[b]), 4) for row in metrics["prev_token_scores_layer0_by_position"]])
        for b in range(len(metrics["prev_token_scores_layer0_by_position"][0])))
    circuit["score_definitions"] = {
        "previous_token": "mean attention weight from query t to key t-1, over t = 1..L+1 (the first copy and the "
        "first token of the second: the keys the induction head reads); *_all_positions: over all t >= 1",
        "induction": "mean attention weight from a query t in the second copy (t = L+1..2L) to key t-L+1, "
        "the token after the previous occurrence of the current token",
    }
    circuit["repeated_half_loss_clean"] = round(metrics["loss_repeated_half"], 4)
    circuit["repeated_half_loss_mean_ablated"] = abl
    with open(os.path.join(out, "circuit.json"), "w") as f:
        json.dump(circuit, f, indent=2)
        f.write("\n")

    res = OrderedDict(
        train_time_s=round(train_time, 1),
        metrics=metrics,
        fixed_eval=fm,
        ablation=abl,
        prev_head=[0, ph],
        induction_head=[1, ih],
        log=log,
        args=vars(args),
    )
    if args.result_json:
        with open(args.result_json, "w") as f:
            json.dump(res, f, indent=1)
    print(json.dumps({k: v for k, v in res.items() if k != "log"}, indent=1))
    write_card(out, args, res)


def write_card(out, args, res):
    m = res["metrics"]
    fm = res["fixed_eval"]
    ph, ih = res["prev_head"], res["induction_head"]
    prev = m["prev_token_scores_first_copy"]
    prev_all = m["prev_token_scores"]
    pb = m["prev_token_scores_layer0_by_position"]
    nb = len(pb[0])
    ptbl_pos = "| query positions | " + " | ".join("head 0.%d" % h for h in range(len(pb))) + " |\n"
    ptbl_pos += "|---|" + "---|" * len(pb) + "\n"
    for b in range(nb):
        ptbl_pos += "| %d-%d | " % (10 * b + 1, 10 * b + 10) + " | ".join("%.3f" % pb[h][b] for h in range(len(pb))) + " |\n"
    ind = m["induction_scores"]

    def tbl(rows):
        s = "| layer | " + " | ".join("head %d" % h for h in range(len(rows[0]))) + " |\n"
        s += "|---|" + "---|" * len(rows[0]) + "\n"
        for l, r in enumerate(rows):
            s += "| %d | " % l + " | ".join("%.3f" % x for x in r) + " |\n"
        return s

    D = CFG["n_embd"]
    nparams = VOCAB * D + CFG["n_positions"] * D + CFG["n_layer"] * (2 * D + 3 * D * D + 3 * D + D * D + D) + 2 * D
    card = """# induction-gpt2

A 2-layer **attention-only** GPT-2 (no MLPs, no `ln_2`) on the real GPT-2
vocabulary (50257 ids), trained to continue repeated random token sequences.
It has a previous-token head in layer 0 and an induction head in layer 1.
Written by `tools/train_induction.py`.

The GPT-2 tokenizer files in this folder (`vocab.json`, `merges.txt`,
`TOKENIZER_NOTICE.md`) are shipped separately and are not written by the
training script. The model never saw text: its inputs are token ids.

## Architecture

| key | value |
|---|---|
| layers | 2, attention only |
| d_model | {D} |
| heads | {H} (d_head {E}) |
| n_positions | {P} |
| vocab | 50257 (GPT-2), unembedding tied to `wte` |
| norms | `ln_1` per layer and `ln_f`, LayerNorm with weight and bias, eps 1e-5 |
| parameters | {nparams:,} ({wte:,} of them in `wte`) |
| weights on disk | F16 (`model.safetensors`, names without the `transformer.` prefix) |

Tensors: `wte.weight [50257,{D}]`, `wpe.weight [{P},{D}]`,
`h.{{i}}.ln_1.weight/bias`, `h.{{i}}.attn.c_attn.weight [{D},{D3}]` (Conv1D `[in,out]`,
columns q | k | v), `h.{{i}}.attn.c_attn.bias`, `h.{{i}}.attn.c_proj.weight [{D},{D}]`,
`h.{{i}}.attn.c_proj.bias`, `ln_f.weight/bias`. `config.json` sets
`"attn_only": true`; `activation_function` is unused.

## Data

Each sequence is `[BOS=50256] + x + x`, where `x` is {lo}..{hi} **distinct** token ids
(length uniform, drawn per batch in training) sampled uniformly without
replacement from ids **{tlo} <= id < {thi}** (20000 ids). Positions: 0 = BOS,
1..L = first copy, L+1..2L = second copy. Fresh random sequences every step
(numpy PCG64, seed {seed}); no fixed training set.

## Recipe

* Init: `wte` N(0, 0.02²), `wpe` N(0, 0.02²), `c_attn` N(0, 0.02²), `c_proj` N(0, (0.02/2)²), LayerNorm 1/0, biases 0 (torch seed {seed}).
* AdamW, lr {lr} (100 warm-up steps, cosine to 10%), betas (0.9, 0.98), weight
  decay 0.01 on the 2-D attention/position weights (none on `wte`, norms, biases),
  gradient clipping 1.0 (global norm), float32, batch {batch} sequences, {steps} steps.
  `wte` (50257 rows) uses Adam with the same hyper-parameters and no weight
  decay, applied lazily: each step only the rows that occur (inputs, targets,
  sampled negatives) are read and written, and the movement a dense Adam would
  have made on a row's decaying moments in the steps it was not seen is applied
  in closed form when it is next touched (see `catch_up` in the script).
* Loss: next-token cross-entropy at every position, with a **sampled softmax**
  (a full 50257-way softmax costs ~4 s a step on one CPU thread): the
  candidates at each step are the batch's target ids, {neg} ids drawn uniformly
  from the task's range, and from step {nos} on also {nout} ids drawn uniformly
  from the whole vocabulary (so that ids the task never uses rank below the
  task's ids). With whole-vocabulary negatives from the start, the model first
  learns "in range vs out of range" and the induction circuit did not form in
  1500-3000 steps in our trial runs; with in-range negatives only it forms
  around step 1000-1300 (see the previous-token and induction scores in the
  training log below). All metrics below use the full 50257-way softmax.
* Training time: **{tt:.0f} s** wall clock on one CPU thread (torch {tv}), on a
  2-core machine shared with other jobs, so an idle machine should be faster.

Training log (sampled-softmax losses on the step's batch; prev / ind: the best
previous-token / induction score in layer 0 / 1 on that batch):

```
{curve}
```

Reproduce (from the repository root, byte-identical output expected on the same torch build):

    OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 tools/train_induction.py --steps {steps} --batch {batch} --neg {neg} --neg-out {nout} --neg-out-start {nos} --lr {lr} --seed {seed}

## Evaluation (full softmax, independent float64 forward from the exported F16 weights)

On {ne} fresh sequences (seed {seed}+1, never seen in training):

| metric | value |
|---|---|
| mean loss, first copy (predicting x[1..L-1]) | {lf:.3f} nats (log 20000 = {l20:.3f}) |
| mean loss, repeated copy (predicting x[1..L-1] again) | **{lr_:.4f}** nats |
| top-1 accuracy, repeated copy | **{acc:.4f}** |

On the 100 fixed sequences of `eval.jsonl`: first copy {flf:.3f}, repeated copy
{flr:.4f} nats, top-1 {facc:.4f}.

`eval.jsonl`: one `{{"ids": [...], "repeat_from": k}}` per line, where `k = L+1`
is the position at which the second copy starts (`ids[k+i] == ids[1+i]`).

## Circuit

* Previous-token head: **{ph0}.{ph1}** (layer.head), mean attention from t to t-1
  over the first copy (t = 1..L+1, the keys the induction head reads) = **{ps:.3f}**;
  over all positions t >= 1 it is {psa:.3f}, because layer 0 computes no
  previous-token information for the later positions of the second copy, where
  nothing reads it (table by position below).
* Induction head: **{ih0}.{ih1}**, mean attention (queries in the second copy) to the
  token after the previous occurrence of the current token = **{is_:.3f}**.
  {n_ind} of the {nh} layer-1 heads have an induction score above 0.5 (table
  below); where several share the work, ablating one of them costs less than
  ablating the previous-token head.

Previous-token score (mean attention weight from t to t-1, t = 1..L+1):

{ptbl}
The same over all t >= 1:

{ptbl_all}
Layer 0, attention from t to t-1 by query position t (on the evaluation
sequences, T = 2L+1 = 41..81):

{ptbl_pos}
Induction score (mean attention weight from t in L+1..2L to t-L+1):

{itbl}
Mean ablation (a head's z replaced by its mean over the batch and positions;
first 60 evaluation sequences), loss on the repeated copy (clean: {lr_:.4f}):

{abl}

The same numbers are in `circuit.json`.
""".format(
        D=D, H=CFG["n_head"], E=D // CFG["n_head"], P=CFG["n_positions"], D3=3 * D, nparams=nparams, wte=VOCAB * D,
        lo=LEN_LO, hi=LEN_HI, tlo=TOK_LO, thi=TOK_HI, seed=args.seed, lr=args.lr, batch=args.batch,
        steps=args.steps, neg=args.neg, nout=args.neg_out, nos=args.neg_out_start, curve="\n".join(l for i, l in enumerate(res["log"]) if i % 5 == 0 or i == len(res["log"]) - 1), tt=res["train_time_s"], tv=torch.__version__, ne=args.eval_seqs,
        lf=m["loss_first_half"], l20=math.log(TOK_HI - TOK_LO), lr_=m["loss_repeated_half"],
        acc=m["top1_acc_repeated_half"], flf=fm["loss_first_half"], flr=fm["loss_repeated_half"],
        facc=fm["top1_acc_repeated_half"], ph0=ph[0], ph1=ph[1], ps=prev[0][ph[1]], psa=prev_all[0][ph[1]], n_ind=sum(1 for x in ind[1] if x > 0.5), nh=CFG["n_head"], ptbl_all=tbl(prev_all), ptbl_pos=ptbl_pos, ih0=ih[0], ih1=ih[1],
        is_=ind[1][ih[1]], ptbl=tbl(prev), itbl=tbl(ind),
        abl="| head | " + " | ".join(res["ablation"].keys()) + " |\n|---|" + "---|" * len(res["ablation"]) + "\n| loss | "
        + " | ".join("%.3f" % v for v in res["ablation"].values()) + " |\n",
    )
    with open(os.path.join(out, "MODEL_CARD.md"), "w") as f:
        f.write(card)


if __name__ == "__main__":
    main()
