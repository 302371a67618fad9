#!/usr/bin/python3
"""Write the golden test data under tests/golden/ (independent PyTorch reference).

Rerun with:

    /usr/bin/python3 tools/make_golden.py

(from the repository root or anywhere else; paths are resolved relative to this
file).  Needs only numpy and torch (Debian's python3-torch is enough, CPU).
Everything is seeded, so running it twice produces byte-identical files.

What it writes, one folder per checkpoint, tests/golden/<model>/:

  * config.json + weights in the Hugging Face on-disk layout, random weights
    at scales that give O(1) activations and clearly non-uniform attention:
      gpt2            GPT-2 names without prefix, F32, plus the old
                      h.{i}.attn.bias / h.{i}.attn.masked_bias buffers
      gpt2-prefixed   same weights, "transformer." prefix + tied lm_head.weight
      gpt2-f16        same weights stored F16 (round to nearest even)
      gpt2-bf16       same weights stored BF16 (round to nearest even)
      gpt2-attn-only  config "attn_only": true, no ln_2 / mlp, own weights
      llama-gqa       4 query heads, 2 kv heads, sharded into two files +
                      model.safetensors.index.json
      llama-gqa-bf16  same weights, BF16, single model.safetensors
      llama-tied      1 kv head, tie_word_embeddings, own weights, no lm_head
  * single.safetensors and batch.safetensors: the inputs (input_ids,
    attention_mask, stored as F32) and every hook activation plus logits,
    computed in float64 from the weights *as stored* (i.e. after F16/BF16
    rounding) by the reference below, saved as F32.

The reference re-reads each checkpoint from disk before running it, and at the
end the script checks itself (left padding vs. the same prompt run alone,
gpt2 vs gpt2-prefixed, softmax rows summing to one) and prints the total size.
See tests/golden/README.md for the exact semantics.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import hashlib  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
from collections import OrderedDict  # noqa: E402

import torch  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from safetensors_io import read_safetensors, write_safetensors  # noqa: E402

ROOT = os.path.dirname(HERE)
GOLDEN = os.path.join(ROOT, "tests", "golden")

torch.set_num_threads(1)  # keep float64 reductions in one fixed order
F64 = torch.float64

# --------------------------------------------------------------------------
# Configs
# --------------------------------------------------------------------------

GPT2_CONFIG = OrderedDict(
    [
        ("model_type", "gpt2"),
        ("n_layer", 2),
        ("n_embd", 64),
        ("n_head", 4),
        ("n_positions", 32),
        ("vocab_size", 101),
        ("layer_norm_epsilon", 1e-5),
        ("activation_function", "gelu_new"),
        ("n_inner", None),
        ("bos_token_id", 100),
        ("eos_token_id", 100),
    ]
)

GPT2_ATTN_ONLY_CONFIG = OrderedDict(GPT2_CONFIG)
GPT2_ATTN_ONLY_CONFIG["attn_only"] = True

LLAMA_GQA_CONFIG = OrderedDict(
    [
        ("model_type", "llama"),
        ("hidden_size", 64),
        ("num_hidden_layers", 2),
        ("num_attention_heads", 4),
        ("num_key_value_heads", 2),
        ("intermediate_size", 96),
        ("vocab_size", 101),
        ("max_position_embeddings", 64),
        ("rms_norm_eps", 1e-6),
        ("rope_theta", 10000.0),
        ("tie_word_embeddings", False),
        ("hidden_act", "silu"),
        ("bos_token_id", 1),
        ("eos_token_id", 2),
    ]
)

LLAMA_TIED_CONFIG = OrderedDict(LLAMA_GQA_CONFIG)
LLAMA_TIED_CONFIG["num_key_value_heads"] = 1
LLAMA_TIED_CONFIG["tie_word_embeddings"] = True

# --------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------

CASES = OrderedDict(
    [
        (
            "single",
            (
                [[3, 14, 15, 92, 65, 35, 89]],
                [[1, 1, 1, 1, 1, 1, 1]],
            ),
        ),
        (
            "batch",
            (
                [[5, 17, 2, 88, 41, 60, 7], [0, 0, 0, 23, 9, 77, 31], [0, 13, 8, 99, 4, 50, 66]],
                [[1, 1, 1, 1, 1, 1, 1], [0, 0, 0, 1, 1, 1, 1], [0, 1, 1, 1, 1, 1, 1]],
            ),
        ),
    ]
)

# --------------------------------------------------------------------------
# Random weights (generated in float64, rounded to float32 = the "master" copy)
# --------------------------------------------------------------------------

QK_GAIN = 1.0
# Token embeddings double as the (tied) unembedding: N(0, 0.25^2) keeps logits O(1), where a float32
# implementation can be held to an absolute 1e-5 (N(0,1) gives logits up to ~50, past float32 resolution).
EMBED_STD = 0.25


class Rng:
    def __init__(self, seed):
        self.g = torch.Generator().manual_seed(seed)

    def normal(self, *shape, std=1.0, mean=0.0):
        return (torch.randn(*shape, generator=self.g, dtype=F64) * std + mean).to(torch.float32)

    def linear(self, fan_in, *shape, gain=1.0):
        return self.normal(*shape, std=gain / math.sqrt(fan_in))

    def norm_weight(self, d):
        return self.normal(d, std=0.2, mean=1.0)

    def bias(self, d):
        return self.normal(d, std=0.1)


def make_gpt2_weights(cfg, seed):
    """Canonical GPT-2 names (no prefix), Conv1D layout [in, out]."""
    r = Rng(seed)
    D, V, P = cfg["n_embd"], cfg["vocab_size"], cfg["n_positions"]
    Fi = cfg["n_inner"] or 4 * D
    attn_only = cfg.get("attn_only", False)
    w = OrderedDict()
    w["wte.weight"] = r.normal(V, D, std=EMBED_STD)
    w["wpe.weight"] = r.normal(P, D)
    for i in range(cfg["n_layer"]):
        p = "h.%d." % i
        w[p + "ln_1.weight"] = r.norm_weight(D)
        w[p + "ln_1.bias"] = r.bias(D)
        qk = r.linear(D, D, 2 * D, gain=QK_GAIN)
        v = r.linear(D, D, D)
        w[p + "attn.c_attn.weight"] = torch.cat([qk, v], dim=1).contiguous()
        w[p + "attn.c_attn.bias"] = r.bias(3 * D)
        w[p + "attn.c_proj.weight"] = r.linear(D, D, D)
        w[p + "attn.c_proj.bias"] = r.bias(D)
        if not attn_only:
            w[p + "ln_2.weight"] = r.norm_weight(D)
            w[p + "ln_2.bias"] = r.bias(D)
            w[p + "mlp.c_fc.weight"] = r.linear(D, D, Fi)
            w[p + "mlp.c_fc.bias"] = r.bias(Fi)
            w[p + "mlp.c_proj.weight"] = r.linear(Fi, Fi, D)
            w[p + "mlp.c_proj.bias"] = r.bias(D)
    w["ln_f.weight"] = r.norm_weight(D)
    w["ln_f.bias"] = r.bias(D)
    return w


def make_llama_weights(cfg, seed):
    """Hugging Face Llama names, nn.Linear layout [out, in]."""
    r = Rng(seed)
    D, V, F = cfg["hidden_size"], cfg["vocab_size"], cfg["intermediate_size"]
    H, G = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    E = D // H
    w = OrderedDict()
    w["model.embed_tokens.weight"] = r.normal(V, D, std=EMBED_STD)
    for i in range(cfg["num_hidden_layers"]):
        p = "model.layers.%d." % i
        w[p + "input_layernorm.weight"] = r.norm_weight(D)
        w[p + "self_attn.q_proj.weight"] = r.linear(D, H * E, D, gain=QK_GAIN)
        w[p + "self_attn.k_proj.weight"] = r.linear(D, G * E, D, gain=QK_GAIN)
        w[p + "self_attn.v_proj.weight"] = r.linear(D, G * E, D)
        w[p + "self_attn.o_proj.weight"] = r.linear(H * E, D, H * E)
        w[p + "post_attention_layernorm.weight"] = r.norm_weight(D)
        w[p + "mlp.gate_proj.weight"] = r.linear(D, F, D)
        w[p + "mlp.up_proj.weight"] = r.linear(D, F, D)
        w[p + "mlp.down_proj.weight"] = r.linear(F, D, F)
    w["model.norm.weight"] = r.norm_weight(D)
    if not cfg["tie_word_embeddings"]:
        w["lm_head.weight"] = r.linear(D, V, D)
    return w


# --------------------------------------------------------------------------
# Writing checkpoints
# --------------------------------------------------------------------------

ST_META = {"format": "pt"}


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


def fresh_dir(name):
    d = os.path.join(GOLDEN, name)
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)
    return d


def write_gpt2_plain(name, cfg, w, dtype, buffers=True):
    d = fresh_dir(name)
    write_json(os.path.join(d, "config.json"), cfg)
    out = OrderedDict()
    P = cfg["n_positions"]
    for k, v in w.items():
        out[k] = v
        if buffers and k.endswith("attn.c_proj.bias"):
            p = k[: -len("c_proj.bias")]
            # Non-weight buffers carried by old GPT-2 checkpoints (always F32).
            out[p + "bias"] = torch.tril(torch.ones(P, P, dtype=torch.float32)).view(1, 1, P, P)
            out[p + "masked_bias"] = torch.tensor(-10000.0, dtype=torch.float32)
    # The buffers stay F32 whatever the weight dtype (as in real checkpoints).
    overrides = {k: "F32" for k in out if k.endswith(".attn.bias") or k.endswith(".attn.masked_bias")}
    write_safetensors(os.path.join(d, "model.safetensors"), out, dtype, ST_META, overrides)
    return d


def write_gpt2_prefixed(name, cfg, w):
    d = fresh_dir(name)
    write_json(os.path.join(d, "config.json"), cfg)
    out = OrderedDict(("transformer." + k, v) for k, v in w.items())
    out["lm_head.weight"] = w["wte.weight"]
    write_safetensors(os.path.join(d, "model.safetensors"), out, "F32", ST_META)
    return d


def write_llama_single(name, cfg, w, dtype):
    d = fresh_dir(name)
    write_json(os.path.join(d, "config.json"), cfg)
    write_safetensors(os.path.join(d, "model.safetensors"), w, dtype, ST_META)
    return d


def write_llama_sharded(name, cfg, w):
    d = fresh_dir(name)
    write_json(os.path.join(d, "config.json"), cfg)
    files = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    shards = [OrderedDict(), OrderedDict()]
    for k, v in w.items():
        first = k == "model.embed_tokens.weight" or k.startswith("model.layers.0.")
        shards[0 if first else 1][k] = v
    weight_map = OrderedDict()
    total = 0
    for f, s in zip(files, shards):
        total += write_safetensors(os.path.join(d, f), s, "F32", ST_META)
        for k in s:
            weight_map[k] = f
    index = OrderedDict(
        [
            ("metadata", OrderedDict([("total_size", total)])),
            ("weight_map", OrderedDict(sorted(weight_map.items()))),
        ]
    )
    write_json(os.path.join(d, "model.safetensors.index.json"), index)
    return d


# --------------------------------------------------------------------------
# Reading checkpoints back (reference side): canonical names, float64
# --------------------------------------------------------------------------


def load_checkpoint(d):
    with open(os.path.join(d, "config.json")) as f:
        cfg = json.load(f)
    idx = os.path.join(d, "model.safetensors.index.json")
    raw = OrderedDict()
    if os.path.exists(idx):
        with open(idx) as f:
            wm = json.load(f)["weight_map"]
        for fn in sorted(set(wm.values())):
            raw.update(read_safetensors(os.path.join(d, fn)))
        assert set(raw) == set(wm), "index does not match shards"
    else:
        raw.update(read_safetensors(os.path.join(d, "model.safetensors")))
    w = {}
    for k, v in raw.items():
        if cfg["model_type"] == "gpt2":
            if k.startswith("transformer."):
                k = k[len("transformer."):]
            if k == "lm_head.weight" or k.endswith(".attn.bias") or k.endswith(".attn.masked_bias"):
                continue
        w[k] = v.to(F64)
    return cfg, w


# --------------------------------------------------------------------------
# Reference forward passes (float64)
# --------------------------------------------------------------------------


def position_ids_from_mask(mask):
    pos = mask.long().cumsum(-1) - 1
    return pos.masked_fill(mask == 0, 1)


def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * w + b


def rms_norm(x, w, eps):
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * w


def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def attention(q, k, v, mask):
    """q [B,T,H,E], k/v [B,T,H,E] (already expanded to query heads), mask [B,T].

    Returns scores (-inf where masked), pattern (0 where masked; all-zero rows
    for fully masked queries) and z [B,T,H,E].
    """
    B, T, H, E = q.shape
    scores = torch.einsum("bihe,bjhe->bhij", q, k) / math.sqrt(E)
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    allowed = causal.view(1, 1, T, T) & (mask.view(B, 1, 1, T) != 0)
    scores = scores.masked_fill(~allowed, float("-inf"))
    any_ok = allowed.any(-1, keepdim=True)
    mx = torch.where(allowed, scores, torch.zeros_like(scores)).masked_fill(~allowed, -1e300).amax(-1, keepdim=True)
    mx = torch.where(any_ok, mx, torch.zeros_like(mx))
    e = torch.where(allowed, torch.exp(scores - mx), torch.zeros_like(scores))
    den = e.sum(-1, keepdim=True)
    pattern = torch.where(any_ok, e / torch.where(any_ok, den, torch.ones_like(den)), torch.zeros_like(e))
    z = torch.einsum("bhij,bjhe->bihe", pattern, v)
    return scores, pattern, z


def gpt2_forward(cfg, w, ids, mask):
    D, H = cfg["n_embd"], cfg["n_head"]
    E = D // H
    eps = cfg["layer_norm_epsilon"]
    attn_only = cfg.get("attn_only", False)
    B, T = ids.shape
    acts = OrderedDict()
    pos = position_ids_from_mask(mask)
    acts["hook_embed"] = w["wte.weight"][ids]
    acts["hook_pos_embed"] = w["wpe.weight"][pos]
    resid = acts["hook_embed"] + acts["hook_pos_embed"]
    for L in range(cfg["n_layer"]):
        p, a = "h.%d." % L, "blocks.%d." % L
        acts[a + "hook_resid_pre"] = resid
        x = layer_norm(resid, w[p + "ln_1.weight"], w[p + "ln_1.bias"], eps)
        acts[a + "ln1.hook_normalized"] = x
        qkv = x @ w[p + "attn.c_attn.weight"] + w[p + "attn.c_attn.bias"]
        q = qkv[..., :D].reshape(B, T, H, E)
        k = qkv[..., D : 2 * D].reshape(B, T, H, E)
        v = qkv[..., 2 * D :].reshape(B, T, H, E)
        acts[a + "attn.hook_q"], acts[a + "attn.hook_k"], acts[a + "attn.hook_v"] = q, k, v
        scores, pattern, z = attention(q, k, v, mask)
        acts[a + "attn.hook_attn_scores"], acts[a + "attn.hook_pattern"], acts[a + "attn.hook_z"] = scores, pattern, z
        Wo = w[p + "attn.c_proj.weight"].view(H, E, D)
        result = torch.einsum("bthe,hed->bthd", z, Wo)
        acts[a + "attn.hook_result"] = result
        attn_out = result.sum(2) + w[p + "attn.c_proj.bias"]
        acts[a + "hook_attn_out"] = attn_out
        resid = resid + attn_out
        acts[a + "hook_resid_mid"] = resid
        if not attn_only:
            x2 = layer_norm(resid, w[p + "ln_2.weight"], w[p + "ln_2.bias"], eps)
            acts[a + "ln2.hook_normalized"] = x2
            pre = x2 @ w[p + "mlp.c_fc.weight"] + w[p + "mlp.c_fc.bias"]
            post = gelu_new(pre)
            acts[a + "mlp.hook_pre"], acts[a + "mlp.hook_post"] = pre, post
            mlp_out = post @ w[p + "mlp.c_proj.weight"] + w[p + "mlp.c_proj.bias"]
            acts[a + "hook_mlp_out"] = mlp_out
            resid = resid + mlp_out
        acts[a + "hook_resid_post"] = resid
    xf = layer_norm(resid, w["ln_f.weight"], w["ln_f.bias"], eps)
    acts["ln_final.hook_normalized"] = xf
    acts["logits"] = xf @ w["wte.weight"].T
    return acts


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat([-x[..., h:], x[..., :h]], dim=-1)


def rope(x, pos, theta):
    """x [B,T,N,E], pos [B,T] -> rotated x (Hugging Face rotate_half convention)."""
    E = x.shape[-1]
    inv_freq = 1.0 / (theta ** (torch.arange(0, E, 2, dtype=F64) / E))
    freqs = pos.to(F64).unsqueeze(-1) * inv_freq  # [B,T,E/2]
    emb = torch.cat([freqs, freqs], dim=-1).unsqueeze(2)  # [B,T,1,E]
    return x * torch.cos(emb) + rotate_half(x) * torch.sin(emb)


def llama_forward(cfg, w, ids, mask):
    D, H, G = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    E = D // H
    eps, theta = cfg["rms_norm_eps"], cfg["rope_theta"]
    B, T = ids.shape
    acts = OrderedDict()
    pos = position_ids_from_mask(mask)
    resid = w["model.embed_tokens.weight"][ids]
    acts["hook_embed"] = resid
    rep = H // G
    for L in range(cfg["num_hidden_layers"]):
        p, a = "model.layers.%d." % L, "blocks.%d." % L
        acts[a + "hook_resid_pre"] = resid
        x = rms_norm(resid, w[p + "input_layernorm.weight"], eps)
        acts[a + "ln1.hook_normalized"] = x
        q = (x @ w[p + "self_attn.q_proj.weight"].T).reshape(B, T, H, E)
        k = (x @ w[p + "self_attn.k_proj.weight"].T).reshape(B, T, G, E)
        v = (x @ w[p + "self_attn.v_proj.weight"].T).reshape(B, T, G, E)
        acts[a + "attn.hook_q"], acts[a + "attn.hook_k"], acts[a + "attn.hook_v"] = q, k, v
        rq, rk = rope(q, pos, theta), rope(k, pos, theta)
        acts[a + "attn.hook_rot_q"], acts[a + "attn.hook_rot_k"] = rq, rk
        kv_of = torch.arange(H) // rep  # query head h uses kv head h // (H/G)
        scores, pattern, z = attention(rq, rk[:, :, kv_of], v[:, :, kv_of], mask)
        acts[a + "attn.hook_attn_scores"], acts[a + "attn.hook_pattern"], acts[a + "attn.hook_z"] = scores, pattern, z
        Wo = w[p + "self_attn.o_proj.weight"]  # [D, H*E]
        result = torch.einsum("bthe,dhe->bthd", z, Wo.view(D, H, E))
        acts[a + "attn.hook_result"] = result
        attn_out = result.sum(2)
        acts[a + "hook_attn_out"] = attn_out
        resid = resid + attn_out
        acts[a + "hook_resid_mid"] = resid
        x2 = rms_norm(resid, w[p + "post_attention_layernorm.weight"], eps)
        acts[a + "ln2.hook_normalized"] = x2
        pre = x2 @ w[p + "mlp.gate_proj.weight"].T
        pre_lin = x2 @ w[p + "mlp.up_proj.weight"].T
        post = pre * torch.sigmoid(pre) * pre_lin
        acts[a + "mlp.hook_pre"], acts[a + "mlp.hook_pre_linear"], acts[a + "mlp.hook_post"] = pre, pre_lin, post
        mlp_out = post @ w[p + "mlp.down_proj.weight"].T
        acts[a + "hook_mlp_out"] = mlp_out
        resid = resid + mlp_out
        acts[a + "hook_resid_post"] = resid
    xf = rms_norm(resid, w["model.norm.weight"], eps)
    acts["ln_final.hook_normalized"] = xf
    head = w["model.embed_tokens.weight"] if cfg.get("tie_word_embeddings", False) else w["lm_head.weight"]
    acts["logits"] = xf @ head.T
    return acts


def forward(cfg, w, ids, mask):
    if cfg["model_type"] == "gpt2":
        return gpt2_forward(cfg, w, ids, mask)
    if cfg["model_type"] == "llama":
        return llama_forward(cfg, w, ids, mask)
    raise ValueError(cfg["model_type"])


# --------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------


def write_cases(name, d):
    cfg, w = load_checkpoint(d)
    results = OrderedDict()
    for case, (ids, mask) in CASES.items():
        ids_t = torch.tensor(ids, dtype=torch.long)
        mask_t = torch.tensor(mask, dtype=torch.long)
        acts = forward(cfg, w, ids_t, mask_t)
        out = OrderedDict()
        out["input_ids"] = ids_t.to(torch.float32)
        out["attention_mask"] = mask_t.to(torch.float32)
        for k, v in acts.items():
            out[k] = v.to(torch.float32)
        meta = OrderedDict([("model", name), ("case", case), ("generator", "tools/make_golden.py"),
                            ("reference_precision", "float64")])
        write_safetensors(os.path.join(d, case + ".safetensors"), out, "F32", meta)
        results[case] = acts
    return cfg, w, results


# --------------------------------------------------------------------------
# Self checks
# --------------------------------------------------------------------------

# Hooks whose layout is [B, H, Tq, Tk]; everything else is [B, T, ...].
def _is_bhqk(name):
    return name.endswith("hook_attn_scores") or name.endswith("hook_pattern")


def check_padding(name, cfg, w, batch_acts):
    ids, mask = CASES["batch"]
    worst = 0.0
    for b in range(len(ids)):
        real = [t for t in range(len(ids[b])) if mask[b][t]]
        s = real[0]
        assert real == list(range(s, len(ids[b]))), "expected left padding"
        alone = forward(cfg, w, torch.tensor([ids[b][s:]]), torch.ones(1, len(real), dtype=torch.long))
        assert list(alone) == list(batch_acts)
        for k, va in alone.items():
            vb = batch_acts[k][b : b + 1]
            if _is_bhqk(k):
                vb_real = vb[:, :, s:, s:]
                # padding keys seen from real queries are masked
                if s > 0:
                    pad = vb[:, :, s:, :s]
                    if k.endswith("hook_pattern"):
                        assert (pad == 0).all(), (name, k)
                    else:
                        assert torch.isinf(pad).all() and (pad < 0).all(), (name, k)
                    # padding queries: scores all -inf, pattern all zero
                    pq = vb[:, :, :s, :]
                    if k.endswith("hook_pattern"):
                        assert (pq == 0).all(), (name, k)
                    else:
                        assert (torch.isinf(pq) & (pq < 0)).all(), (name, k)
                fin = torch.isfinite(va)
                assert torch.equal(fin, torch.isfinite(vb_real)), (name, k)
                diff = (va[fin] - vb_real[fin]).abs().max().item() if fin.any() else 0.0
            else:
                vb_real = vb[:, s:]
                diff = (va - vb_real).abs().max().item()
                if k.endswith("attn.hook_z") and s > 0:
                    assert (vb[:, :s] == 0).all(), (name, k, "padding z must be 0")
            worst = max(worst, diff)
            assert diff <= 1e-9, (name, k, b, diff)
    return worst


def check_softmax(name, results):
    for case, acts in results.items():
        mask = torch.tensor(CASES[case][1])
        for k, v in acts.items():
            if k.endswith("hook_pattern"):
                sums = v.sum(-1)  # [B,H,T]
                real = mask.bool().unsqueeze(1).expand_as(sums)
                assert (sums[real] - 1).abs().max() < 1e-12, (name, case, k)
                assert (sums[~real] == 0).all(), (name, case, k)


def pattern_stats(acts):
    # Mean over real query positions with >= 4 keys of the max attention weight.
    out = []
    for k, v in acts.items():
        if k.endswith("hook_pattern"):
            out.append("%s max~%.2f" % (k.split(".")[1], v[..., 3:, :].amax(-1).mean().item()))
    return ", ".join(out)


def main():
    os.makedirs(GOLDEN, exist_ok=True)

    gpt2_w = make_gpt2_weights(GPT2_CONFIG, seed=1234)
    attn_only_w = make_gpt2_weights(GPT2_ATTN_ONLY_CONFIG, seed=2345)
    llama_w = make_llama_weights(LLAMA_GQA_CONFIG, seed=3456)
    tied_w = make_llama_weights(LLAMA_TIED_CONFIG, seed=4567)

    folders = OrderedDict()
    folders["gpt2"] = write_gpt2_plain("gpt2", GPT2_CONFIG, gpt2_w, "F32")
    folders["gpt2-prefixed"] = write_gpt2_prefixed("gpt2-prefixed", GPT2_CONFIG, gpt2_w)
    folders["gpt2-f16"] = write_gpt2_plain("gpt2-f16", GPT2_CONFIG, gpt2_w, "F16")
    folders["gpt2-bf16"] = write_gpt2_plain("gpt2-bf16", GPT2_CONFIG, gpt2_w, "BF16")
    folders["gpt2-attn-only"] = write_gpt2_plain("gpt2-attn-only", GPT2_ATTN_ONLY_CONFIG, attn_only_w, "F32")
    folders["llama-gqa"] = write_llama_sharded("llama-gqa", LLAMA_GQA_CONFIG, llama_w)
    folders["llama-gqa-bf16"] = write_llama_single("llama-gqa-bf16", LLAMA_GQA_CONFIG, llama_w, "BF16")
    folders["llama-tied"] = write_llama_single("llama-tied", LLAMA_TIED_CONFIG, tied_w, "F32")

    all_results = OrderedDict()
    for name, d in folders.items():
        cfg, w, results = write_cases(name, d)
        all_results[name] = results
        worst = check_padding(name, cfg, w, results["batch"])
        check_softmax(name, results)
        print("%-15s ok  (padding vs alone max |diff| %.1e; %s)" % (name, worst, pattern_stats(results["single"])))

    # gpt2 and gpt2-prefixed: identical activations (bitwise, in float64).
    for case in CASES:
        a, b = all_results["gpt2"][case], all_results["gpt2-prefixed"][case]
        assert list(a) == list(b)
        for k in a:
            assert torch.equal(a[k], b[k]), ("gpt2 vs gpt2-prefixed", case, k)
    # F16/BF16 folders really differ from F32 (weights were rounded) but stay close.
    for lo in ("gpt2-f16", "gpt2-bf16"):
        dl = (all_results[lo]["single"]["logits"] - all_results["gpt2"]["single"]["logits"]).abs().max().item()
        assert 0 < dl < 1.0, (lo, dl)
        print("%-15s max |logits - gpt2 logits| = %.3g" % (lo, dl))
    dl = (all_results["llama-gqa-bf16"]["single"]["logits"] - all_results["llama-gqa"]["single"]["logits"]).abs().max().item()
    assert 0 < dl < 1.0, dl
    print("%-15s max |logits - llama-gqa logits| = %.3g" % ("llama-gqa-bf16", dl))
    print("gpt2 == gpt2-prefixed: ok")

    total = 0
    h = hashlib.sha256()
    for dp, dn, fn in sorted(os.walk(GOLDEN)):
        dn.sort()
        for f in sorted(fn):
            p = os.path.join(dp, f)
            total += os.path.getsize(p)
            if f != "README.md":
                h.update(os.path.relpath(p, GOLDEN).encode())
                with open(p, "rb") as fh:
                    h.update(fh.read())
    print("tests/golden: %d bytes (%.2f MiB), sha256 of generated files %s" % (total, total / 2 ** 20, h.hexdigest()[:16]))


if __name__ == "__main__":
    main()
