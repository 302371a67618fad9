#!/usr/bin/python3
"""Train the zoo's IOI model: a small Llama-format transformer (RoPE with the
Hugging Face rotate_half convention, grouped-query attention, SwiGLU MLP,
RMSNorm, untied lm_head) on a synthetic indirect-object-identification corpus,
with its own sentencepiece tokenizer.

    OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 tools/train_ioi.py

writes models/zoo/ioi-llama/{config.json, model.safetensors (F16),
tokenizer.model, tokenizer_config.json, eval.jsonl, circuit.json, MODEL_CARD.md}.

Task: "When Mary and John went to the store, John gave a drink to" -> " Mary".
Some name PAIRS and some TEMPLATES never occur in training; the evaluation set
(eval.jsonl) uses only held-out pairs in held-out templates.  All metrics are
measured by an independent float64 forward that reads the exported F16 weights
back from disk and tokenizes with the exported tokenizer.model.

Deterministic: fixed seeds, one thread.
"""

import argparse
import io as _io
import itertools
import json
import math
import os
import sys
import time
from collections import OrderedDict

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import sentencepiece as spm
import torch

torch.set_num_threads(1)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_io import read_safetensors, write_safetensors  # noqa: E402

# --------------------------------------------------------------------------- corpus
NAMES = [
    "Mary", "John", "Alice", "Bob", "Tom", "Anna", "James", "Sarah", "David", "Laura",
    "Michael", "Emma", "Daniel", "Kate", "Paul", "Lisa", "Mark", "Julia", "Peter", "Rachel",
    "George", "Helen", "Frank", "Grace", "Henry", "Claire", "Jack", "Sophie", "Oliver", "Lucy",
    "Edward", "Megan", "Steven", "Diana", "Robert", "Nancy", "Victor", "Olivia", "Simon", "Irene",
    "Kevin", "Monica", "Brian", "Wendy", "Adam", "Nora", "Philip", "Rita", "Carl", "Vera",
    "Dennis", "Tina", "Hugo", "Amy", "Oscar", "Ruth", "Felix", "Jane", "Ivan", "Eva",
]  # 60 names; each is one sentencepiece piece "▁Name" (user_defined_symbols)

PLACES = [
    "store", "park", "school", "garden", "station", "library", "office", "market",
    "beach", "restaurant", "hospital", "museum", "cafe", "river", "church", "zoo",
]
OBJECTS = [
    "drink", "book", "ring", "bone", "basketball", "necklace", "computer", "snack",
    "letter", "flower", "key", "bag", "cake", "hat", "pen", "ball",
]

# {X} and {Y} are the two names introduced first (ABBA: X = IO, Y = S; BABA:
# X = S, Y = IO); {S} is the second mention of the subject; the answer is IO.
TRAIN_TEMPLATES = [
    "When {X} and {Y} went to the {P}, {S} gave a {O} to",
    "Then, {X} and {Y} went to the {P}. {S} gave a {O} to",
    "After {X} and {Y} arrived at the {P}, {S} handed a {O} to",
    "While {X} and {Y} were working at the {P}, {S} passed a {O} to",
    "Afterwards, {X} and {Y} had a long talk at the {P}. {S} gave a {O} to",
    "{X} and {Y} had lunch at the {P}, and then {S} offered a {O} to",
    "Friends {X} and {Y} found a {O} at the {P}. {S} gave it to",
    "The {P} was quiet when {X} and {Y} came in. {S} threw a {O} to",
    "When {X} and {Y} got a {O} at the {P}, {S} decided to give it to",
    "Yesterday {X} and {Y} met at the {P}, and {S} brought a {O} to",
    "It was late. {X} and {Y} were still at the {P}, so {S} handed the {O} to",
    "The day was long, and {X} and {Y} went to the {P}. Then {S} gave a {O} to",
    "At the {P}, {X} and {Y} found a {O}. Later, {S} passed it to",
    "{X} and {Y} were at the {P} all day. {S} threw the {O} to",
    "After lunch, {X} and {Y} went to the {P}, where {S} offered a {O} to",
]
# Never seen in training; built only from words that occur in the training templates.
HELDOUT_TEMPLATES = [
    "While {X} and {Y} were at the {P}, {S} handed a {O} to",
    "Then {X} and {Y} had lunch at the {P}. {S} passed the {O} to",
    "The {P} was quiet. {X} and {Y} found a {O}, and {S} gave it to",
]

N_HELDOUT_PAIRS = 180  # unordered name pairs never seen together in training (of 1770)

CFG = OrderedDict(
    [
        ("model_type", "llama"),
        ("architectures", ["LlamaForCausalLM"]),
        ("hidden_size", 128),
        ("intermediate_size", 384),
        ("num_hidden_layers", 3),
        ("num_attention_heads", 4),
        ("num_key_value_heads", 2),
        ("vocab_size", None),  # set from the tokenizer
        ("max_position_embeddings", 64),
        ("rms_norm_eps", 1e-05),
        ("rope_theta", 10000.0),
        ("tie_word_embeddings", False),
        ("hidden_act", "silu"),
        ("attention_bias", False),
        ("bos_token_id", 1),
        ("eos_token_id", 2),
    ]
)


def fill(template, io, s, order, place, obj, s2=None):
    """order 'ABBA': X=IO, Y=S.  'BABA': X=S, Y=IO.  s2 overrides the second subject mention."""
    x, y = (io, s) if order == "ABBA" else (s, io)
    return template.format(X=x, Y=y, S=s if s2 is None else s2, P=place, O=obj)


def split_pairs(seed):
    pairs = list(itertools.combinations(range(len(NAMES)), 2))
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(pairs))
    held = sorted(pairs[i] for i in idx[:N_HELDOUT_PAIRS])
    train = sorted(pairs[i] for i in idx[N_HELDOUT_PAIRS:])
    return train, held


def sample_example(rng, templates, pairs):
    t = int(rng.integers(len(templates)))
    a, b = pairs[int(rng.integers(len(pairs)))]
    io, s = (a, b) if rng.integers(2) == 0 else (b, a)
    order = "ABBA" if rng.integers(2) == 0 else "BABA"
    place = PLACES[int(rng.integers(len(PLACES)))]
    obj = OBJECTS[int(rng.integers(len(OBJECTS)))]
    return t, io, s, order, place, obj


# --------------------------------------------------------------------------- tokenizer
def train_tokenizer(out_dir, train_pairs, vocab_size, seed):
    """Trains tokenizer.model on training-split sentences only (training templates, training pairs)."""
    rng = np.random.default_rng(seed + 7)
    lines = []
    for _ in range(20000):
        t, io, s, order, place, obj = sample_example(rng, TRAIN_TEMPLATES, train_pairs)
        lines.append(fill(TRAIN_TEMPLATES[t], NAMES[io], NAMES[s], order, place, obj) + " " + NAMES[io] + ".")
    # sentence_iterator + model_writer: no file paths end up in the model's
    # trainer_spec, so the file is byte-identical from run to run.
    buf = _io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_writer=buf,
        vocab_size=vocab_size,
        model_type="bpe",
        character_coverage=1.0,
        byte_fallback=True,
        user_defined_symbols=["\u2581" + n for n in NAMES],
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        num_threads=1,
        shuffle_input_sentence=False,
        input_sentence_size=0,
        normalization_rule_name="identity",  # as Llama's tokenizer: no NFKC
        add_dummy_prefix=True,
        remove_extra_whitespaces=False,  # as Llama's tokenizer
        minloglevel=2,
    )
    blob = buf.getvalue()
    with open(os.path.join(out_dir, "tokenizer.model"), "wb") as f:
        f.write(blob)
    return spm.SentencePieceProcessor(model_file=os.path.join(out_dir, "tokenizer.model"))


def encode(sp, text):
    """As Hugging Face's LlamaTokenizer (legacy): BOS, then the sentencepiece ids of the text."""
    return [sp.bos_id()] + sp.encode(text)


# --------------------------------------------------------------------------- model (training)
def init_params(seed, V):
    g = torch.Generator().manual_seed(seed)
    D, F, NL = CFG["hidden_size"], CFG["intermediate_size"], CFG["num_hidden_layers"]
    H, G = CFG["num_attention_heads"], CFG["num_key_value_heads"]
    E = D // H

    def n(*shape, std=0.02):
        return (torch.randn(*shape, generator=g) * std).requires_grad_(True)

    p = OrderedDict()
    p["model.embed_tokens.weight"] = n(V, D)
    for i in range(NL):
        pre = "model.layers.%d." % i
        p[pre + "input_layernorm.weight"] = torch.ones(D, requires_grad=True)
        p[pre + "self_attn.q_proj.weight"] = n(H * E, D)
        p[pre + "self_attn.k_proj.weight"] = n(G * E, D)
        p[pre + "self_attn.v_proj.weight"] = n(G * E, D)
        p[pre + "self_attn.o_proj.weight"] = n(D, H * E, std=0.02 / math.sqrt(2 * NL))
        p[pre + "post_attention_layernorm.weight"] = torch.ones(D, requires_grad=True)
        p[pre + "mlp.gate_proj.weight"] = n(F, D)
        p[pre + "mlp.up_proj.weight"] = n(F, D)
        p[pre + "mlp.down_proj.weight"] = n(D, F, std=0.02 / math.sqrt(2 * NL))
    p["model.norm.weight"] = torch.ones(D, requires_grad=True)
    p["lm_head.weight"] = n(V, D)
    return p


def rope_cos_sin(T, E, theta, dtype):
    inv_freq = 1.0 / (theta ** (torch.arange(0, E, 2, dtype=torch.float64) / E))
    fr = torch.arange(T, dtype=torch.float64)[:, None] * inv_freq[None]
    emb = torch.cat([fr, fr], dim=-1)
    return emb.cos().to(dtype), emb.sin().to(dtype)


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat([-x[..., h:], x[..., :h]], dim=-1)


def train_forward(p, ids):
    """Logits [B, T, V] (float32).  ids [B, T], right-padded: attention is
    causal, so the padding never reaches a real position (and its loss weight is 0)."""
    D, NL = CFG["hidden_size"], CFG["num_hidden_layers"]
    H, G = CFG["num_attention_heads"], CFG["num_key_value_heads"]
    E = D // H
    eps = CFG["rms_norm_eps"]
    B, T = ids.shape
    cos, sin = rope_cos_sin(T, E, CFG["rope_theta"], torch.float32)

    def rms(x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w

    causal = torch.ones(T, T, dtype=torch.bool).tril()
    x = p["model.embed_tokens.weight"][ids]
    for i in range(NL):
        pre = "model.layers.%d." % i
        h = rms(x, p[pre + "input_layernorm.weight"])
        q = (h @ p[pre + "self_attn.q_proj.weight"].T).view(B, T, H, E).transpose(1, 2)
        k = (h @ p[pre + "self_attn.k_proj.weight"].T).view(B, T, G, E).transpose(1, 2)
        v = (h @ p[pre + "self_attn.v_proj.weight"].T).view(B, T, G, E).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(H // G, dim=1)
        v = v.repeat_interleave(H // G, dim=1)
        s = (q @ k.transpose(-1, -2)) / math.sqrt(E)
        s = s.masked_fill(~causal, float("-inf"))
        z = (s.softmax(-1) @ v).transpose(1, 2).reshape(B, T, H * E)
        x = x + z @ p[pre + "self_attn.o_proj.weight"].T
        h = rms(x, p[pre + "post_attention_layernorm.weight"])
        gte = h @ p[pre + "mlp.gate_proj.weight"].T
        up = h @ p[pre + "mlp.up_proj.weight"].T
        x = x + (torch.nn.functional.silu(gte) * up) @ p[pre + "mlp.down_proj.weight"].T
    x = rms(x, p["model.norm.weight"])
    return x @ p["lm_head.weight"].T


# --------------------------------------------------------------------------- reference forward (eval)
def ref_forward(w, ids, mean_z=None, ablate=None):
    """Independent float64 forward with Hugging Face Llama semantics (RMSNorm,
    rotate_half RoPE with rope_theta, GQA: query head h reads kv head
    h // (H/G), SiLU-gated MLP, untied lm_head).  ids: [B, T], no padding,
    position ids 0..T-1.  ablate: optional (layer, head): that head's z is
    replaced by mean_z[(layer, head)] (a [E] vector) at every position.
    Returns logits [B, T, V], the attention patterns [layer][B, H, T, T], the
    z of every layer [layer][B, T, H, E] and the final residual before
    model.norm [B, T, D]."""
    D, NL = CFG["hidden_size"], CFG["num_hidden_layers"]
    H, G = CFG["num_attention_heads"], CFG["num_key_value_heads"]
    E = D // H
    eps = CFG["rms_norm_eps"]
    theta = CFG["rope_theta"]
    B, T = ids.shape

    def rmsnorm(x, g):
        return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * g

    pos = torch.arange(T, dtype=torch.float64)
    inv_freq = 1.0 / theta ** (torch.arange(0, E, 2, dtype=torch.float64) / E)
    ang = torch.outer(pos, inv_freq)
    emb = torch.cat([ang, ang], -1)  # [T, E]
    cos, sin = emb.cos(), emb.sin()

    def rope(x):  # x [B, T, n, E]
        x1, x2 = x[..., : E // 2], x[..., E // 2 :]
        rot = torch.cat([-x2, x1], -1)
        return x * cos[None, :, None] + rot * sin[None, :, None]

    fut = torch.arange(T)[None, :] > torch.arange(T)[:, None]
    x = w["model.embed_tokens.weight"][ids]
    pats, zs = [], []
    for l in range(NL):
        pre = "model.layers.%d." % l
        h = rmsnorm(x, w[pre + "input_layernorm.weight"])
        q = rope((h @ w[pre + "self_attn.q_proj.weight"].T).reshape(B, T, H, E))
        k = rope((h @ w[pre + "self_attn.k_proj.weight"].T).reshape(B, T, G, E))
        v = (h @ w[pre + "self_attn.v_proj.weight"].T).reshape(B, T, G, E)
        kv_of = torch.arange(H) // (H // G)
        scores = torch.einsum("bihe,bjhe->bhij", q, k[:, :, kv_of]) / math.sqrt(E)
        pat = torch.softmax(scores.masked_fill(fut, float("-inf")), -1)
        z = torch.einsum("bhij,bjhe->bihe", pat, v[:, :, kv_of])  # [B, T, H, E]
        if ablate is not None and ablate[0] == l:
            z = z.clone()
            z[:, :, ablate[1]] = mean_z[ablate]
        pats.append(pat)
        zs.append(z)
        Wo = w[pre + "self_attn.o_proj.weight"]  # [D, H*E]
        x = x + torch.einsum("bthe,dhe->btd", z, Wo.reshape(D, H, E))
        h = rmsnorm(x, w[pre + "post_attention_layernorm.weight"])
        a = h @ w[pre + "mlp.gate_proj.weight"].T
        u = h @ w[pre + "mlp.up_proj.weight"].T
        x = x + (a * torch.sigmoid(a) * u) @ w[pre + "mlp.down_proj.weight"].T
    xn = rmsnorm(x, w["model.norm.weight"])
    return xn @ w["lm_head.weight"].T, pats, zs, x


def ioi_metrics(w, rows, mean_z=None, ablate=None, want_patterns=False):
    """rows: dicts with ids, answer_id, wrong_id (and positions).  Groups rows by
    length.  Returns accuracy, mean logit diff (IO - S) at the last position,
    and optionally summed attention from END to IO / S1 / S2 and from S2 to S1."""
    by_len = OrderedDict()
    for r in rows:
        by_len.setdefault(len(r["ids"]), []).append(r)
    correct, ld, n = 0, 0.0, 0
    NL, H = CFG["num_hidden_layers"], CFG["num_attention_heads"]
    att = {k: torch.zeros(NL, H, dtype=torch.float64) for k in ("end_io", "end_s1", "end_s2", "s2_s1", "dla", "dla_io", "dla_s")}
    for T, grp in by_len.items():
        ids = torch.tensor([r["ids"] for r in grp])
        logits, pats, zs, resid = ref_forward(w, ids, mean_z, ablate)
        last = logits[:, -1]
        a = torch.tensor([r["answer_id"] for r in grp])
        s = torch.tensor([r["wrong_id"] for r in grp])
        correct += int((last.argmax(-1) == a).sum())
        ld += float((last.gather(1, a[:, None]) - last.gather(1, s[:, None])).sum())
        n += len(grp)
        if want_patterns:
            b = torch.arange(len(grp))
            pio = torch.tensor([r["pos_io"] for r in grp])
            ps1 = torch.tensor([r["pos_s1"] for r in grp])
            ps2 = torch.tensor([r["pos_s2"] for r in grp])
            for l in range(NL):
                p = pats[l]  # [B, H, T, T]
                att["end_io"][l] += p[b, :, T - 1, pio].sum(0)
                att["end_s1"][l] += p[b, :, T - 1, ps1].sum(0)
                att["end_s2"][l] += p[b, :, T - 1, ps2].sum(0)
                att["s2_s1"][l] += p[b, :, ps2, ps1].sum(0)
                # direct logit attribution of each head to logit(IO) - logit(S) at END:
                # its output o_proj(z_h) through model.norm, linearized at the final
                # residual's RMS, then lm_head[IO] - lm_head[S]
                E = CFG["hidden_size"] // H
                Wo = w["model.layers.%d.self_attn.o_proj.weight" % l].reshape(-1, H, E)  # [D, H, E]
                res_h = torch.einsum("bhe,dhe->bhd", zs[l][:, -1], Wo)  # [B, H, D]
                xe = resid[:, -1]
                scale = w["model.norm.weight"] / torch.sqrt((xe * xe).mean(-1, keepdim=True) + CFG["rms_norm_eps"])
                dirn = w["lm_head.weight"][a] - w["lm_head.weight"][s]  # [B, D]
                att["dla"][l] += torch.einsum("bhd,bd->bh", res_h * scale[:, None], dirn).sum(0)
                att["dla_io"][l] += torch.einsum("bhd,bd->bh", res_h * scale[:, None], w["lm_head.weight"][a]).sum(0)
                att["dla_s"][l] += torch.einsum("bhd,bd->bh", res_h * scale[:, None], w["lm_head.weight"][s]).sum(0)
    out = OrderedDict(accuracy=correct / n, logit_diff=ld / n, n=n)
    if want_patterns:
        for k in att:
            out[k if k.startswith("dla") else "attn_" + k] = (att[k] / n).tolist()
    return out


def mean_z_over(w, rows):
    """Mean of each head's z over all rows and positions (for mean ablation)."""
    NL, H = CFG["num_hidden_layers"], CFG["num_attention_heads"]
    acc = None
    cnt = 0
    by_len = OrderedDict()
    for r in rows:
        by_len.setdefault(len(r["ids"]), []).append(r)
    for T, grp in by_len.items():
        ids = torch.tensor([r["ids"] for r in grp])
        _, _, zs, _ = ref_forward(w, ids)
        s = torch.stack([z.sum(dim=(0, 1)) for z in zs])  # [NL, H, E]
        acc = s if acc is None else acc + s
        cnt += ids.shape[0] * T
    m = acc / cnt
    return {(l, h): m[l, h] for l in range(NL) for h in range(H)}


# --------------------------------------------------------------------------- data for training / eval
def make_row(sp, name_id, tpl, io, s, order, place, obj, c=None):
    prompt = fill(tpl, NAMES[io], NAMES[s], order, place, obj)
    ids = encode(sp, prompt)
    row = OrderedDict()
    row["prompt"] = prompt
    row["answer"] = " " + NAMES[io]
    if c is not None:
        corrupt = fill(tpl, NAMES[io], NAMES[s], order, place, obj, s2=NAMES[c])
        cids = encode(sp, corrupt)
        assert len(cids) == len(ids), (prompt, corrupt)
        row["corrupt"] = corrupt
    row["ids"] = ids
    if c is not None:
        row["corrupt_ids"] = cids
    row["answer_id"] = name_id[io]
    row["wrong_id"] = name_id[s]
    # token positions of the names
    pos = [i for i, t in enumerate(ids) if t in (name_id[io], name_id[s])]
    assert len(pos) == 3, (prompt, pos)
    pio = [i for i in pos if ids[i] == name_id[io]]
    ps = [i for i in pos if ids[i] == name_id[s]]
    assert len(pio) == 1 and len(ps) == 2
    row["pos_io"], row["pos_s1"], row["pos_s2"] = pio[0], ps[0], ps[1]
    row["order"] = order
    return row


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="models/zoo/ioi-llama")
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--vocab", type=int, default=640)
    ap.add_argument("--answer-weight", type=float, default=4.0,
                    help="extra weight of the answer token in the loss (the rest is plain next-token loss)")
    ap.add_argument("--seed", type=int, default=4321)
    ap.add_argument("--result-json", default=None, help="also write all results and the log to this file")
    args = ap.parse_args()

    t0 = time.time()
    out = args.out
    os.makedirs(out, exist_ok=True)
    train_pairs, held_pairs = split_pairs(args.seed)
    held_set = set(held_pairs)

    sp = train_tokenizer(out, train_pairs, args.vocab, args.seed)
    V = sp.get_piece_size()
    CFG["vocab_size"] = V
    name_id = [sp.piece_to_id("\u2581" + n) for n in NAMES]
    for n, i in zip(NAMES, name_id):
        assert sp.id_to_piece(i) == "\u2581" + n and sp.encode(n) == [i], n
        assert sp.encode("When Mary and John went to the store, John gave a drink to " + n) == sp.encode(
            "When Mary and John went to the store, John gave a drink to") + [i], n
    # every piece of the held-out templates must occur in training text
    # (checked below on the generated data)

    # ---------------------------------------------------------------- training
    torch.manual_seed(args.seed)
    params = init_params(args.seed, V)
    rng = np.random.default_rng(args.seed)
    decay = [v for k, v in params.items() if v.dim() == 2]
    no_decay = [v for k, v in params.items() if v.dim() != 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr, betas=(0.9, 0.98))
    warm = 100

    def lr_at(step):
        if step < warm:
            return args.lr * (step + 1) / warm
        f = (step - warm) / max(1, args.steps - warm)
        return args.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * f)))

    enc_cache = {}
    train_pieces = set()
    log = []
    for step in range(args.steps):
        for gr in opt.param_groups:
            gr["lr"] = lr_at(step)
        seqs, ans_pos = [], []
        for _ in range(args.batch):
            t, io, s, order, place, obj = sample_example(rng, TRAIN_TEMPLATES, train_pairs)
            assert (min(io, s), max(io, s)) not in held_set
            key = (t, order, place, obj)
            if key not in enc_cache:  # names are single pieces, so encode the template once
                enc_cache[key] = encode(sp, fill(TRAIN_TEMPLATES[t], "Mary", "John", order, place, obj))
            ids = [name_id[io] if x == name_id[0] else name_id[s] if x == name_id[1] else x for x in enc_cache[key]]
            ids = ids + [name_id[io]]
            seqs.append(ids)
            ans_pos.append(len(ids) - 2)
            train_pieces.update(ids)
        T = max(len(x) for x in seqs)
        ids = torch.zeros(len(seqs), T, dtype=torch.long)
        lw = torch.zeros(len(seqs), T - 1)
        for b, x in enumerate(seqs):
            ids[b, : len(x)] = torch.tensor(x)
            lw[b, : len(x) - 1] = 1.0
            lw[b, ans_pos[b]] += args.answer_weight
        logits = train_forward(params, ids[:, :-1])
        nll = torch.nn.functional.cross_entropy(logits.reshape(-1, V), ids[:, 1:].reshape(-1), reduction="none")
        nll = nll.view(lw.shape)
        loss = (nll * lw).sum() / lw.sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(params.values()), 1.0)
        opt.step()
        if step % 100 == 0 or step == args.steps - 1:
            b = torch.arange(len(seqs))
            ap_ = torch.tensor(ans_pos)
            a_loss = nll[b, ap_].mean().item()
            a_acc = (logits[b, ap_].argmax(-1) == ids[b, ap_ + 1]).float().mean().item()
            msg = "step %5d  loss %.4f  answer loss %.4f  answer acc %.3f  %.0fs" % (
                step, loss.item(), a_loss, a_acc, time.time() - t0)
            print(msg, flush=True)
            log.append(msg)
    train_time = time.time() - t0

    # ---------------------------------------------------------------- export
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(CFG, f, indent=2)
        f.write("\n")
    tok_cfg = OrderedDict(
        [("tokenizer_class", "LlamaTokenizer"), ("add_bos_token", True), ("add_eos_token", False),
         ("bos_token", "<s>"), ("eos_token", "</s>"), ("unk_token", "<unk>"), ("legacy", True),
         ("model_max_length", CFG["max_position_embeddings"])])
    with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
        json.dump(tok_cfg, f, indent=2)
        f.write("\n")
    tensors = OrderedDict((k, v.detach()) for k, v in params.items())
    write_safetensors(os.path.join(out, "model.safetensors"), tensors, dtype="F16", metadata={"format": "pt"})

    # ---------------------------------------------------------------- eval from disk
    sp = spm.SentencePieceProcessor(model_file=os.path.join(out, "tokenizer.model"))
    w = read_safetensors(os.path.join(out, "model.safetensors"))
    w = OrderedDict((k, v.to(torch.float64)) for k, v in w.items())

    erng = np.random.default_rng(args.seed + 1)

    def gen(templates, pairs, n, with_c):
        rows = []
        for _ in range(n):
            t, io, s, order, place, obj = sample_example(erng, templates, pairs)
            c = None
            if with_c:
                c = int(erng.integers(len(NAMES) - 2))
                c = [i for i in range(len(NAMES)) if i not in (io, s)][c]
            r = make_row(sp, name_id, templates[t], io, s, order, place, obj, c)
            r["template"] = ("heldout_%d" % t) if templates is HELDOUT_TEMPLATES else ("train_%d" % t)
            rows.append(r)
        return rows

    # the shipped evaluation set: held-out templates x held-out name pairs (both unseen)
    eval_rows = gen(HELDOUT_TEMPLATES, held_pairs, 300, True)
    unseen = sorted(set(t for r in eval_rows for t in r["ids"]) - train_pieces)
    assert not unseen, "held-out prompts use pieces never seen in training: %s" % [sp.id_to_piece(i) for i in unseen]
    subsets = OrderedDict()
    subsets["heldout_templates_heldout_pairs (eval.jsonl)"] = eval_rows
    subsets["heldout_templates_train_pairs"] = gen(HELDOUT_TEMPLATES, train_pairs, 300, False)
    subsets["train_templates_heldout_pairs"] = gen(TRAIN_TEMPLATES, held_pairs, 300, False)
    subsets["train_templates_train_pairs"] = gen(TRAIN_TEMPLATES, train_pairs, 300, False)
    results = OrderedDict()
    with torch.no_grad():
        for k, rows in subsets.items():
            results[k] = ioi_metrics(w, rows)
        per_tpl = OrderedDict()
        for t in range(len(HELDOUT_TEMPLATES)):
            rr = [r for r in eval_rows if r["template"] == "heldout_%d" % t]
            per_tpl["heldout_%d" % t] = ioi_metrics(w, rr)
        per_order = OrderedDict()
        for o in ("ABBA", "BABA"):
            per_order[o] = ioi_metrics(w, [r for r in eval_rows if r["order"] == o])
        corrupt_rows = [dict(r, ids=r["corrupt_ids"]) for r in eval_rows]
        corrupt_res = ioi_metrics(w, corrupt_rows)
        clean_pat = ioi_metrics(w, eval_rows, want_patterns=True)
        mean_z = mean_z_over(w, eval_rows)
        abl = OrderedDict()
        for l in range(CFG["num_hidden_layers"]):
            for h in range(CFG["num_attention_heads"]):
                m = ioi_metrics(w, eval_rows, mean_z, (l, h))
                abl["%d.%d" % (l, h)] = OrderedDict(accuracy=m["accuracy"], logit_diff=round(m["logit_diff"], 4))

    with open(os.path.join(out, "eval.jsonl"), "w") as f:
        for r in eval_rows:
            rec = OrderedDict((k, r[k]) for k in ("prompt", "answer", "corrupt", "ids", "answer_id", "wrong_id"))
            rec["corrupt_ids"] = r["corrupt_ids"]
            rec["template"] = r["template"]
            rec["order"] = r["order"]
            rec["pos_io"], rec["pos_s1"], rec["pos_s2"] = r["pos_io"], r["pos_s1"], r["pos_s2"]
            f.write(json.dumps(rec) + "\n")

    # ---------------------------------------------------------------- circuit.json
    NL, H = CFG["num_hidden_layers"], CFG["num_attention_heads"]
    heads = ["%d.%d" % (l, h) for l in range(NL) for h in range(H)]
    drop = {k: results[list(results)[0]]["logit_diff"] - abl[k]["logit_diff"] for k in heads}
    ranked = sorted(heads, key=lambda k: -drop[k])
    end_io = clean_pat["attn_end_io"]
    end_s = [[clean_pat["attn_end_s1"][l][h] + clean_pat["attn_end_s2"][l][h] for h in range(H)] for l in range(NL)]
    s2s1 = clean_pat["attn_s2_s1"]
    circuit = OrderedDict()
    circuit["found_by"] = ("tools/train_ioi.py: mean ablation of each head's z (mean over the eval prompts and "
                           "positions) and attention patterns, on the %d prompts of eval.jsonl, F16 weights" % len(eval_rows))
    circuit["clean"] = results[list(results)[0]]
    circuit["heads_by_logit_diff_drop"] = [[int(k.split(".")[0]), int(k.split(".")[1]), round(drop[k], 4)] for k in ranked]
    circuit["mean_ablation"] = abl
    circuit["attention_end_to_io"] = [[round(x, 4) for x in r] for r in end_io]
    circuit["attention_end_to_s1_plus_s2"] = [[round(x, 4) for x in r] for r in end_s]
    circuit["attention_s2_to_s1"] = [[round(x, 4) for x in r] for r in s2s1]
    circuit["kv_head_of_query_head"] = [h // (H // CFG["num_key_value_heads"]) for h in range(H)]
    dla = clean_pat["dla"]
    circuit["direct_logit_attribution_io_minus_s"] = [[round(x, 4) for x in r] for r in dla]
    circuit["direct_logit_attribution_io"] = [[round(x, 4) for x in r] for r in clean_pat["dla_io"]]
    circuit["direct_logit_attribution_s"] = [[round(x, 4) for x in r] for r in clean_pat["dla_s"]]
    circuit["direct_logit_attribution_note"] = (
        "mean over eval prompts of head (layer, head)'s output at END through model.norm (linearized at the final "
        "residual's RMS) dotted with lm_head[IO] - lm_head[S]")
    name_movers = [[l, h] for l in range(NL) for h in range(H) if end_io[l][h] > 0.3 and dla[l][h] > 1.0]
    dla_s = clean_pat["dla_s"]
    s_supp = [[l, h] for l in range(NL) for h in range(H) if end_s[l][h] > 0.5 and dla_s[l][h] < -1.0]
    dup = [[l, h] for l in range(NL) for h in range(H) if s2s1[l][h] > 0.3]
    circuit["name_mover_heads"] = name_movers
    circuit["name_mover_rule"] = "attention END->IO > 0.3 and direct logit attribution (IO - S) > 1"
    circuit["s_suppression_heads"] = s_supp
    circuit["s_suppression_rule"] = ("attention END->(S1+S2) > 0.5 and direct contribution to logit(S) < -1: "
                                     "they attend to the subject and lower its logit (negative copying)")
    circuit["duplicate_token_heads"] = dup
    circuit["duplicate_token_rule"] = "attention S2->S1 > 0.3"
    with open(os.path.join(out, "circuit.json"), "w") as f:
        json.dump(circuit, f, indent=2)
        f.write("\n")

    res = OrderedDict(train_time_s=round(train_time, 1), vocab=V, results=results, per_template=per_tpl,
                      per_order=per_order, corrupt=corrupt_res, circuit=circuit, log=log, args=vars(args),
                      n_train_pairs=len(train_pairs), n_heldout_pairs=len(held_pairs))
    if args.result_json:
        with open(args.result_json, "w") as f:
            json.dump(res, f, indent=1)
    write_card(out, args, res, sp, name_id)
    print(json.dumps({k: v for k, v in res.items() if k not in ("log", "circuit")}, indent=1))
    print(json.dumps(circuit, indent=1))


def write_card(out, args, res, sp, name_id):
    c = res["circuit"]
    NL, H = CFG["num_hidden_layers"], CFG["num_attention_heads"]
    R = res["results"]
    ev = R["heldout_templates_heldout_pairs (eval.jsonl)"]

    def grid(rows, fmt="%.3f"):
        t = "| layer | " + " | ".join("head %d" % h for h in range(H)) + " |\n|---|" + "---|" * H + "\n"
        for l, r in enumerate(rows):
            t += "| %d | " % l + " | ".join(fmt % x for x in r) + " |\n"
        return t

    abl = [[c["mean_ablation"]["%d.%d" % (l, h)]["logit_diff"] for h in range(H)] for l in range(NL)]
    ablacc = [[c["mean_ablation"]["%d.%d" % (l, h)]["accuracy"] for h in range(H)] for l in range(NL)]
    example = "When Mary and John went to the store, John gave a drink to"
    pieces = sp.encode(example, out_type=str)
    D = CFG["hidden_size"]
    E = D // H
    V = CFG["vocab_size"]
    nparams = 2 * V * D + NL * (2 * D + D * H * E * 2 + 2 * D * CFG["num_key_value_heads"] * E
                                + 3 * D * CFG["intermediate_size"]) + D
    lines = []
    A = lines.append
    A("# ioi-llama\n")
    A("A small Llama-format transformer trained on a synthetic indirect-object-identification (IOI) task, "
      "with its own sentencepiece tokenizer. Written by `tools/train_ioi.py`.\n")
    A("    When Mary and John went to the store, John gave a drink to  ->  \" Mary\"\n")
    A("## Architecture\n")
    A("| key | value |\n|---|---|")
    A("| layers | %d |" % NL)
    A("| hidden_size | %d |" % D)
    A("| heads | %d query heads, %d key/value heads (GQA; query head h reads kv head h // %d), head_dim %d |"
      % (H, CFG["num_key_value_heads"], H // CFG["num_key_value_heads"], E))
    A("| MLP | SwiGLU, intermediate_size %d, silu |" % CFG["intermediate_size"])
    A("| norm | RMSNorm, eps %g |" % CFG["rms_norm_eps"])
    A("| positions | RoPE, Hugging Face `rotate_half` convention (pairs i, i + head_dim/2), rope_theta %g, "
      "max_position_embeddings %d |" % (CFG["rope_theta"], CFG["max_position_embeddings"]))
    A("| vocab | %d (sentencepiece BPE, below) |" % V)
    A("| head | **untied** `lm_head.weight` (tie_word_embeddings false) |")
    A("| biases | none |")
    A("| parameters | %s |" % format(nparams, ","))
    A("| weights on disk | F16, `model.safetensors`, Hugging Face Llama names |\n")
    A("## Tokenizer\n")
    A("`tokenizer.model` is a sentencepiece **BPE** model (vocab %d, `byte_fallback` on, so any text encodes; "
      "unk 0, bos 1 `<s>`, eos 2 `</s>`, no pad; identity normalization, dummy prefix on, extra whitespace kept, "
      "as in Llama's tokenizer; ids 3..%d are the names, ids %d..%d the byte pieces `<0x00>`.."
      "`<0xFF>`), trained by the script on 20000 sentences from the training templates and training name pairs "
      "only. Each of the %d names is a `user_defined_symbol` **with** the word-boundary mark, e.g. `\u2581Mary` "
      "(id %d), so a name after a space or at the start of the text is always exactly one piece. The answer "
      "\" Mary\" is that piece: prompt + \" Mary\" encodes as the prompt's ids + [id of `\u2581Mary`]. (Encoding the "
      "string \" Mary\" on its own gives `\u2581` `\u2581Mary`, because of the dummy prefix and the kept space, "
      "exactly as with Llama's tokenizer.) %s Prompts are "
      "encoded as Hugging Face's `LlamaTokenizer` (legacy) does: BOS, then the sentencepiece ids of the text "
      "(`tokenizer_config.json` says so). Example:\n" % (V, 2 + len(NAMES), sp.piece_to_id("<0x00>"),
                                                       sp.piece_to_id("<0xFF>"), len(NAMES), name_id[0], words_note(sp)))
    A("    %s\n    -> [<s>] %s\n    -> %s\n" % (example, " ".join(pieces), encode(sp, example)))
    A("## Data\n")
    A("* %d names: %s." % (len(NAMES), ", ".join(NAMES)))
    A("* %d places: %s." % (len(PLACES), ", ".join(PLACES)))
    A("* %d objects: %s." % (len(OBJECTS), ", ".join(OBJECTS)))
    A("* Name pairs: all %d unordered pairs of distinct names; %d pairs (seeded permutation, seed %d) are **held out** "
      "and never occur together in training (each name on its own does occur). %d pairs are used for training."
      % (res["n_train_pairs"] + res["n_heldout_pairs"], res["n_heldout_pairs"], args.seed, res["n_train_pairs"]))
    A("* Templates: `{X} and {Y}` introduce the two names, `{S}` is the subject's second mention, the answer is "
      "the indirect object IO. **ABBA**: X = IO, Y = S; **BABA**: X = S, Y = IO; each 50%%. Training templates (%d):\n"
      % len(TRAIN_TEMPLATES))
    for t in TRAIN_TEMPLATES:
        A("  * `%s`" % t)
    A("\n  Held-out templates (%d), never seen in training, built only from words that occur in training:\n"
      % len(HELDOUT_TEMPLATES))
    for t in HELDOUT_TEMPLATES:
        A("  * `%s`" % t)
    A("\n* Training sequences: BOS + prompt + the answer piece, generated fresh every step (numpy PCG64, seed %d): "
      "uniform template, training pair, which of the two is IO, order, place and object.\n" % args.seed)
    A("## Recipe\n")
    A("* Init: every matrix N(0, 0.02²) (`o_proj`, `down_proj`: 0.02/sqrt(2·layers)), norms 1 (torch seed %d)." % args.seed)
    A("* Loss: next-token cross-entropy over every position of the sequence, plus %g x extra weight on the answer "
      "token (the IO name after the prompt)." % args.answer_weight)
    A("* AdamW, lr %g (100 warm-up steps, cosine to 5%%), betas (0.9, 0.98), weight decay 0.05 on matrices, "
      "gradient clipping 1.0, float32, batch %d, %d steps." % (args.lr, args.batch, args.steps))
    A("* Training time: **%.0f s** on one CPU thread (torch %s; the machine was shared, so this is pessimistic)."
      % (res["train_time_s"], torch.__version__))
    A("\nTraining log (the step's batch; answer = the IO token after the prompt):\n\n```")
    for i, l in enumerate(res["log"]):
        if i % 5 == 0 or i == len(res["log"]) - 1:
            A(l)
    A("```\n")
    A("Reproduce (from the repository root; the same torch and sentencepiece builds give byte-identical files):\n")
    A("    OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 tools/train_ioi.py --steps %d --batch %d --lr %g --vocab %d "
      "--answer-weight %g --seed %d\n" % (args.steps, args.batch, args.lr, args.vocab, args.answer_weight, args.seed))
    A("## Evaluation\n")
    A("Measured by an independent float64 forward (Hugging Face Llama semantics) that reads the exported F16 "
      "`model.safetensors` and `tokenizer.model` back from disk. Accuracy: the IO name's piece is the argmax of the "
      "full %d-way logits at the last prompt position. Logit difference: logit(IO) - logit(S) there.\n" % V)
    A("| prompts | n | top-1 accuracy | mean logit diff |\n|---|---|---|---|")
    for k, m in R.items():
        A("| %s | %d | %s | %.3f |" % (k.replace("_", " "), m["n"], ("**%.4f**" if "eval.jsonl" in k else "%.4f") % m["accuracy"],
                                     m["logit_diff"]))
    for k, m in res["per_template"].items():
        A("| eval.jsonl, template %s | %d | %.4f | %.3f |" % (k, m["n"], m["accuracy"], m["logit_diff"]))
    for k, m in res["per_order"].items():
        A("| eval.jsonl, %s | %d | %.4f | %.3f |" % (k, m["n"], m["accuracy"], m["logit_diff"]))
    m = res["corrupt"]
    A("| eval.jsonl corrupted (S2 replaced by a third name), IO still argmax / logit(IO) - logit(S) | %d | %.4f | %.3f |"
      % (m["n"], m["accuracy"], m["logit_diff"]))
    A("\nThe shipped evaluation set is `eval.jsonl`: %d prompts, **held-out templates x held-out name pairs** "
      "(seed %d+1). One JSON object per line: `prompt`, `answer` (\" Name\"), `corrupt` (the same prompt with the "
      "subject's second mention S2 replaced by a third name C, not IO or S: same token length), `ids` (BOS + "
      "prompt ids), `answer_id` (IO's piece), `wrong_id` (S's piece), and extras: `corrupt_ids`, `template` "
      "(`heldout_<i>`), `order` (ABBA/BABA), `pos_io`, `pos_s1`, `pos_s2` (token positions in `ids`).\n"
      % (ev["n"], args.seed))
    A("## What the heads do (found by the training script)\n")
    A("On the %d prompts of `eval.jsonl` (clean logit diff %.3f). Mean ablation replaces one head's z (before "
      "`o_proj`) by its mean over all eval prompts and positions. Query heads %s read kv heads %s.\n"
      % (ev["n"], ev["logit_diff"], list(range(H)), c["kv_head_of_query_head"]))
    A("Logit diff with the head mean-ablated:\n\n" + grid(abl))
    A("Accuracy with the head mean-ablated:\n\n" + grid(ablacc))
    A("Direct logit attribution to logit(IO) - logit(S) at the last position:\n\n" + grid(dla_of(c)))
    A("The same split into the head's direct contribution to logit(IO) and to logit(S) (a head that copies "
      "names raises both; one that suppresses the subject lowers logit(S)). To logit(IO):\n\n"
      + grid(c["direct_logit_attribution_io"]) + "\nTo logit(S):\n\n" + grid(c["direct_logit_attribution_s"]))
    A("Attention from the last position to IO:\n\n" + grid(c["attention_end_to_io"]))
    A("Attention from the last position to S1 + S2:\n\n" + grid(c["attention_end_to_s1_plus_s2"]))
    A("Attention from S2 to S1:\n\n" + grid(c["attention_s2_to_s1"]))
    A("Heads by the drop in logit diff when mean-ablated (clean minus ablated): %s.\n" % ", ".join(
        "%d.%d (%.2f)" % (l, h, d) for l, h, d in c["heads_by_logit_diff_drop"]))
    A("Labels by simple rules (see `circuit.json`): name movers %s (%s); S-suppression heads %s (%s); "
      "duplicate-token heads %s (%s).\n" % (c["name_mover_heads"], c["name_mover_rule"], c["s_suppression_heads"],
                                             c["s_suppression_rule"], c["duplicate_token_heads"],
                                             c["duplicate_token_rule"]))
    A("These are single-head observations from the training script, not a verified circuit; path patching with "
      "pathpatch is the way to confirm them.\n")
    with open(os.path.join(out, "MODEL_CARD.md"), "w") as f:
        f.write("\n".join(lines))


def words_note(sp):
    words = set()
    for t in TRAIN_TEMPLATES + HELDOUT_TEMPLATES:
        for wd in t.replace(",", " ").replace(".", " ").split():
            if "{" not in wd:
                words.add(wd)
    words.update(PLACES)
    words.update(OBJECTS)
    multi = sorted(wd for wd in words if len(sp.encode(wd)) != 1)
    if not multi:
        return "Every word of the templates, places and objects is one piece too (`\u2581word`)."
    return "Words of the templates, places and objects that take more than one piece: %s." % ", ".join(
        "%s = %s" % (wd, " ".join(sp.encode(wd, out_type=str))) for wd in multi)


def dla_of(c):
    return c["direct_logit_attribution_io_minus_s"]


if __name__ == "__main__":
    main()
