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
    and the newer families, each with a config.json as transformers'
    save_pretrained writes it (every attribute of the model's config class,
    4.46) and tensors in save_pretrained's names and order:
      pythia          gpt_neox, parallel residual, rotary_pct 0.25, F32, plus
                      the old attention.bias / masked_bias / rotary_emb.inv_freq
      neox-sequential gpt_neox, sequential residual, rotary_pct 1.0, F16
      gpt-neo         gpt_neo, layer 1 local (window 4), unscaled scores, tied
      qwen2           qwen2, q/k/v biases, GQA 4/2, tied, sharded like llama-gqa
      mistral         mistral, GQA 4/2, sliding_window 4 on every layer
      gemma2          gemma2, head_dim 32, soft-caps, (1 + w) norms, pre/post
                      norms, GeGLU, embeddings * sqrt(64), layer 0 sliding
      llama3          llama, rope_scaling llama3 (all three bands used)
      llama-linear    llama, rope_scaling {"type": "linear"}, attention and
                      MLP biases, BF16 (config as transformers 4.42 wrote it)
      gpt2-untied     gpt2 with its own lm_head.weight, "transformer." names
  * single.safetensors and batch.safetensors: the inputs (input_ids,
    attention_mask, stored as F32) and every hook activation plus logits,
    computed in float64 from the weights *as stored* (i.e. after F16/BF16
    rounding) by the reference below, saved as F32.

The reference re-reads each checkpoint from disk before running it, and at the
end the script checks itself (left padding vs. the same prompt run alone,
gpt2 vs gpt2-prefixed, softmax rows summing to one, sliding windows really
masking, the generic family_forward against the original GPT-2 / Llama code,
Pythia's buffers) and prints the total size.  The newer families were written
from Hugging Face transformers' modeling_*.py / configuration_*.py /
modeling_rope_utils.py (no code copied; transformers is not needed).
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

# --- The newer folders: config.json exactly as save_pretrained writes it -----
#
# save_pretrained writes PretrainedConfig.to_json_string(use_diff=True): every
# attribute the model's config class sets in __init__ (they are not
# PretrainedConfig attributes, so they are always written), plus the common
# PretrainedConfig attributes (architectures, token ids, tie_word_embeddings,
# torch_dtype) whose value differs from PretrainedConfig()'s default or from
# the class's own default, plus model_type and transformers_version; keys are
# sorted (json.dumps(indent=2, sort_keys=True) + "\n").  The attribute lists
# below are those of transformers 4.46 (configuration_<model>.py).

HF_VERSION = "4.46.0"
PRETRAINED_DEFAULTS = {"architectures": None, "bos_token_id": None, "eos_token_id": None, "pad_token_id": None,
                       "tie_word_embeddings": True, "torch_dtype": None}
TORCH_DTYPE = {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}


def hf_config(model_type, attrs, common, class_defaults, storage, version=HF_VERSION):
    out = dict(attrs)
    common = dict(common, torch_dtype=TORCH_DTYPE[storage])
    for k, v in common.items():
        if v != PRETRAINED_DEFAULTS[k] or (k in class_defaults and v != class_defaults[k]):
            out[k] = v
    out["model_type"] = model_type
    out["transformers_version"] = version
    return OrderedDict(sorted(out.items()))


def neox_config(parallel, rotary_pct, intermediate_size, storage):
    attrs = dict(vocab_size=101, max_position_embeddings=32, hidden_size=64, num_hidden_layers=2,
                 num_attention_heads=4, intermediate_size=intermediate_size, hidden_act="gelu", rotary_pct=rotary_pct,
                 partial_rotary_factor=rotary_pct, rotary_emb_base=10000, rope_theta=10000, attention_dropout=0.0,
                 hidden_dropout=0.0, classifier_dropout=0.1, initializer_range=0.02, layer_norm_eps=1e-5,
                 use_cache=True, use_parallel_residual=parallel, rope_scaling=None, attention_bias=True)
    common = dict(architectures=["GPTNeoXForCausalLM"], bos_token_id=0, eos_token_id=0, tie_word_embeddings=False)
    return hf_config("gpt_neox", attrs, common, dict(bos_token_id=0, eos_token_id=2, tie_word_embeddings=False),
                     storage)


PYTHIA_CONFIG = neox_config(True, 0.25, 256, "F32")
NEOX_SEQUENTIAL_CONFIG = neox_config(False, 1.0, 96, "F16")  # 96, not 4 * 64: read intermediate_size

GPT_NEO_CONFIG = hf_config(
    "gpt_neo",
    dict(vocab_size=101, max_position_embeddings=32, hidden_size=64, num_layers=2, num_heads=4,
         intermediate_size=None, window_size=4, activation_function="gelu_new", resid_dropout=0.0,
         embed_dropout=0.0, attention_dropout=0.0, classifier_dropout=0.1, layer_norm_epsilon=1e-5,
         initializer_range=0.02, use_cache=True, attention_types=[[["global", "local"], 1]],
         attention_layers=["global", "local"]),
    dict(architectures=["GPTNeoForCausalLM"], bos_token_id=100, eos_token_id=100, tie_word_embeddings=True),
    dict(bos_token_id=50256, eos_token_id=50256), "F32")

QWEN2_CONFIG = hf_config(
    "qwen2",
    # sliding_window == max_position_embeddings (as Qwen2.5 releases have it): with use_sliding_window false
    # no window applies, and even a reader that wrongly applied it could not tell at T = 7.
    dict(vocab_size=101, max_position_embeddings=32, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
         num_attention_heads=4, use_sliding_window=False, sliding_window=32, max_window_layers=2,
         num_key_value_heads=2, hidden_act="silu", initializer_range=0.02, rms_norm_eps=1e-6, use_cache=True,
         rope_theta=1000000.0, rope_scaling=None, attention_dropout=0.0),
    dict(architectures=["Qwen2ForCausalLM"], bos_token_id=99, eos_token_id=100, tie_word_embeddings=True),
    dict(tie_word_embeddings=False), "F32")

MISTRAL_CONFIG = hf_config(
    "mistral",
    dict(vocab_size=101, max_position_embeddings=64, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
         num_attention_heads=4, sliding_window=4, head_dim=16, num_key_value_heads=2, hidden_act="silu",
         initializer_range=0.02, rms_norm_eps=1e-5, use_cache=True, rope_theta=10000.0, attention_dropout=0.0),
    dict(architectures=["MistralForCausalLM"], bos_token_id=1, eos_token_id=2, tie_word_embeddings=False),
    dict(bos_token_id=1, eos_token_id=2, tie_word_embeddings=False), "F32")

GEMMA2_CONFIG = hf_config(
    "gemma2",
    dict(vocab_size=101, max_position_embeddings=64, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
         num_attention_heads=4, head_dim=32, num_key_value_heads=2, initializer_range=0.02, rms_norm_eps=1e-6,
         use_cache=True, rope_theta=10000.0, attention_bias=False, attention_dropout=0.0,
         hidden_activation="gelu_pytorch_tanh", query_pre_attn_scalar=24, sliding_window=4,
         final_logit_softcapping=3.0, attn_logit_softcapping=2.0, cache_implementation="hybrid"),
    dict(architectures=["Gemma2ForCausalLM"], pad_token_id=0, eos_token_id=1, bos_token_id=2,
         tie_word_embeddings=True),
    dict(pad_token_id=0, eos_token_id=1, bos_token_id=2, tie_word_embeddings=True), "F32")


def llama_attrs(**over):
    attrs = dict(vocab_size=101, max_position_embeddings=64, hidden_size=64, intermediate_size=96,
                 num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, hidden_act="silu",
                 initializer_range=0.02, rms_norm_eps=1e-5, pretraining_tp=1, use_cache=True, rope_theta=10000.0,
                 rope_scaling=None, attention_bias=False, attention_dropout=0.0, mlp_bias=False, head_dim=16)
    attrs.update(over)
    return attrs


LLAMA_COMMON = dict(architectures=["LlamaForCausalLM"], bos_token_id=1, eos_token_id=2, tie_word_embeddings=False)
LLAMA_CLASS_DEFAULTS = dict(pad_token_id=None, bos_token_id=1, eos_token_id=2, tie_word_embeddings=False)

# original_max_position_embeddings is 64, not 16: with d_head 16 and theta 5e5 the shortest wavelength is
# 2*pi, so 16 / high_freq_factor = 4 would leave the "high" band empty.  With 64: 2*pi < 16 (high),
# 16 <= 32.4 <= 64 (medium), 167 and up > 64 (low).  main() prints the bands.
LLAMA3_CONFIG = hf_config(
    "llama",
    llama_attrs(max_position_embeddings=512, rope_theta=500000.0,
                rope_scaling=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                                  original_max_position_embeddings=64)),
    LLAMA_COMMON, LLAMA_CLASS_DEFAULTS, "F32")

# An older checkpoint: rope_scaling with the old key "type" only, as transformers 4.42 wrote it (4.43+
# would add "rope_type" next to it); 4.42's LlamaConfig has no head_dim attribute.
_linear_attrs = llama_attrs(num_key_value_heads=4, rms_norm_eps=1e-6, rope_scaling={"type": "linear", "factor": 2.0},
                            attention_bias=True, mlp_bias=True)
del _linear_attrs["head_dim"]
LLAMA_LINEAR_CONFIG = hf_config("llama", _linear_attrs, LLAMA_COMMON, LLAMA_CLASS_DEFAULTS, "BF16",
                                version="4.42.4")

GPT2_UNTIED_CONFIG = hf_config(
    "gpt2",
    dict(vocab_size=101, n_positions=32, n_embd=64, n_layer=2, n_head=4, n_inner=96,
         activation_function="gelu_new", resid_pdrop=0.1, embd_pdrop=0.1, attn_pdrop=0.1, layer_norm_epsilon=1e-5,
         initializer_range=0.02, summary_type="cls_index", summary_use_proj=True, summary_activation=None,
         summary_proj_to_labels=True, summary_first_dropout=0.1, scale_attn_weights=True, use_cache=True,
         scale_attn_by_inverse_layer_idx=False, reorder_and_upcast_attn=False),
    dict(architectures=["GPT2LMHeadModel"], bos_token_id=100, eos_token_id=100, tie_word_embeddings=False),
    dict(bos_token_id=50256, eos_token_id=50256), "F32")

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


def make_gpt2_weights(cfg, seed, untied=False):
    """Canonical GPT-2 names (no prefix), Conv1D layout [in, out]; untied: also an own lm_head.weight."""
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
    if untied:
        w["lm_head.weight"] = r.linear(D, V, D)
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


def make_neox_weights(cfg, seed):
    """GPTNeoXForCausalLM state-dict names, nn.Linear layout [out, in], biases everywhere."""
    r = Rng(seed)
    D, V, F = cfg["hidden_size"], cfg["vocab_size"], cfg["intermediate_size"]
    w = OrderedDict()
    w["gpt_neox.embed_in.weight"] = r.normal(V, D, std=EMBED_STD)
    for i in range(cfg["num_hidden_layers"]):
        p = "gpt_neox.layers.%d." % i
        w[p + "input_layernorm.weight"] = r.norm_weight(D)
        w[p + "input_layernorm.bias"] = r.bias(D)
        w[p + "post_attention_layernorm.weight"] = r.norm_weight(D)
        w[p + "post_attention_layernorm.bias"] = r.bias(D)
        w[p + "attention.query_key_value.weight"] = r.linear(D, 3 * D, D, gain=QK_GAIN)
        w[p + "attention.query_key_value.bias"] = r.bias(3 * D)
        w[p + "attention.dense.weight"] = r.linear(D, D, D)
        w[p + "attention.dense.bias"] = r.bias(D)
        w[p + "mlp.dense_h_to_4h.weight"] = r.linear(D, F, D)
        w[p + "mlp.dense_h_to_4h.bias"] = r.bias(F)
        w[p + "mlp.dense_4h_to_h.weight"] = r.linear(F, D, F)
        w[p + "mlp.dense_4h_to_h.bias"] = r.bias(D)
    w["gpt_neox.final_layer_norm.weight"] = r.norm_weight(D)
    w["gpt_neox.final_layer_norm.bias"] = r.bias(D)
    w["embed_out.weight"] = r.linear(D, V, D)
    return w


def make_gpt_neo_weights(cfg, seed):
    """GPTNeoForCausalLM names; q/k/v/out_proj and c_fc/c_proj are nn.Linear [out, in]; tied head."""
    r = Rng(seed)
    D, V, P = cfg["hidden_size"], cfg["vocab_size"], cfg["max_position_embeddings"]
    F = cfg["intermediate_size"] or 4 * D
    w = OrderedDict()
    w["transformer.wte.weight"] = r.normal(V, D, std=EMBED_STD)
    w["transformer.wpe.weight"] = r.normal(P, D)
    for i in range(cfg["num_layers"]):
        p = "transformer.h.%d." % i
        w[p + "ln_1.weight"] = r.norm_weight(D)
        w[p + "ln_1.bias"] = r.bias(D)
        for n in ("k_proj", "v_proj", "q_proj"):
            w[p + "attn.attention.%s.weight" % n] = r.linear(D, D, D, gain=QK_GAIN if n != "v_proj" else 1.0)
        w[p + "attn.attention.out_proj.weight"] = r.linear(D, D, D)
        w[p + "attn.attention.out_proj.bias"] = r.bias(D)
        w[p + "ln_2.weight"] = r.norm_weight(D)
        w[p + "ln_2.bias"] = r.bias(D)
        w[p + "mlp.c_fc.weight"] = r.linear(D, F, D)
        w[p + "mlp.c_fc.bias"] = r.bias(F)
        w[p + "mlp.c_proj.weight"] = r.linear(F, D, F)
        w[p + "mlp.c_proj.bias"] = r.bias(D)
    w["transformer.ln_f.weight"] = r.norm_weight(D)
    w["transformer.ln_f.bias"] = r.bias(D)
    return w


def make_decoder_weights(cfg, seed):
    """Llama / Qwen2 / Mistral / Gemma-2 names ("model." prefix), nn.Linear [out, in].

    Biases: Qwen2 q/k/v (not o); Llama attention_bias -> q/k/v/o, mlp_bias -> gate/up/down.
    Gemma-2 norm weights are stored as w and used as (1 + w): drawn as 0.2 N(0,1)."""
    r = Rng(seed)
    mt = cfg["model_type"]
    gemma = mt == "gemma2"
    D, V, F = cfg["hidden_size"], cfg["vocab_size"], cfg["intermediate_size"]
    H = cfg["num_attention_heads"]
    G = cfg.get("num_key_value_heads") or H
    E = cfg.get("head_dim") or D // H
    qkv_bias = mt == "qwen2" or cfg.get("attention_bias", False)
    o_bias = cfg.get("attention_bias", False)
    mlp_bias = cfg.get("mlp_bias", False)
    tied = cfg.get("tie_word_embeddings", gemma)

    def norm(d):
        return r.normal(d, std=0.2) if gemma else r.norm_weight(d)

    w = OrderedDict()
    w["model.embed_tokens.weight"] = r.normal(V, D, std=EMBED_STD)
    for i in range(cfg["num_hidden_layers"]):
        p = "model.layers.%d." % i
        w[p + "input_layernorm.weight"] = norm(D)
        for n, rows, gain in (("q_proj", H * E, QK_GAIN), ("k_proj", G * E, QK_GAIN), ("v_proj", G * E, 1.0)):
            w[p + "self_attn.%s.weight" % n] = r.linear(D, rows, D, gain=gain)
            if qkv_bias:
                w[p + "self_attn.%s.bias" % n] = r.bias(rows)
        w[p + "self_attn.o_proj.weight"] = r.linear(H * E, D, H * E)
        if o_bias:
            w[p + "self_attn.o_proj.bias"] = r.bias(D)
        w[p + "post_attention_layernorm.weight"] = norm(D)
        if gemma:
            w[p + "pre_feedforward_layernorm.weight"] = norm(D)
        for n, shape, fan in (("gate_proj", (F, D), D), ("up_proj", (F, D), D), ("down_proj", (D, F), F)):
            w[p + "mlp.%s.weight" % n] = r.linear(fan, *shape)
            if mlp_bias:
                w[p + "mlp.%s.bias" % n] = r.bias(shape[0])
        if gemma:
            w[p + "post_feedforward_layernorm.weight"] = norm(D)
    w["model.norm.weight"] = norm(D)
    if not tied:
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


# The safetensors library behind save_pretrained stores tensors sorted by dtype (in its enum order,
# larger first: F32 before BF16 before F16 before BOOL), then by name.  The newer folders follow it.
_ST_RANK = {"BOOL": 0, "F16": 7, "BF16": 8, "F32": 11}


def hf_sorted(tensors, storage, overrides):
    def key(k):
        st = "BOOL" if tensors[k].dtype == torch.bool else overrides.get(k, storage)
        return (-_ST_RANK[st], k)

    return OrderedDict((k, tensors[k]) for k in sorted(tensors, key=key))


def write_hf_json(path, obj):
    with open(path, "w") as f:
        f.write(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def neox_buffers(cfg):
    """The non-weight buffers old GPT-NeoX (Pythia) checkpoints carry, per layer: attention.bias (BOOL
    lower-triangular [1,1,P,P]), attention.masked_bias (F32 scalar -1e9) and attention.rotary_emb.inv_freq
    (F32 [rotary_ndims / 2], computed in float32 as the old GPTNeoXRotaryEmbedding did)."""
    P = cfg["max_position_embeddings"]
    E = cfg["hidden_size"] // cfg["num_attention_heads"]
    rd = int(E * cfg["rotary_pct"])
    base = cfg["rotary_emb_base"]
    inv = 1.0 / (base ** (torch.arange(0, rd, 2, dtype=torch.int64).float() / rd))
    out = OrderedDict()
    for i in range(cfg["num_hidden_layers"]):
        p = "gpt_neox.layers.%d.attention." % i
        out[p + "bias"] = torch.tril(torch.ones(P, P, dtype=torch.bool)).view(1, 1, P, P)
        out[p + "masked_bias"] = torch.tensor(-1e9, dtype=torch.float32)
        out[p + "rotary_emb.inv_freq"] = inv.clone()
    return out


def write_checkpoint(name, cfg, w, storage, sharded=False, buffers=None):
    """config.json + weights as save_pretrained lays them out (see hf_sorted).  Float buffers stay F32.
    sharded: model-00001-of-00002 (embeddings + layer 0), model-00002-of-00002 (the rest) + index."""
    d = fresh_dir(name)
    write_hf_json(os.path.join(d, "config.json"), cfg)
    out = OrderedDict(w)
    overrides = {}
    for k, v in (buffers or {}).items():
        out[k] = v
        if v.is_floating_point():
            overrides[k] = "F32"
    if not sharded:
        write_safetensors(os.path.join(d, "model.safetensors"), hf_sorted(out, storage, overrides), storage, ST_META,
                          overrides)
        return d
    files = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    shards = [OrderedDict(), OrderedDict()]
    for k, v in out.items():
        first = k == "model.embed_tokens.weight" or k.startswith("model.layers.0.")
        shards[0 if first else 1][k] = v
    weight_map, total = {}, 0
    for f, s in zip(files, shards):
        total += write_safetensors(os.path.join(d, f), hf_sorted(s, storage, overrides), storage, ST_META, overrides)
        for k in s:
            weight_map[k] = f
    index = OrderedDict([("metadata", OrderedDict([("total_size", total)])),
                         ("weight_map", OrderedDict(sorted(weight_map.items())))])
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
            if k.endswith(".attn.bias") or k.endswith(".attn.masked_bias"):
                continue
            if k == "lm_head.weight" and cfg.get("tie_word_embeddings", True):
                continue  # tied: the logits use wte
        if cfg["model_type"] == "gpt_neox" and k.endswith(NEOX_BUFFER_SUFFIXES):
            continue  # old non-weight buffers (see write_checkpoint)
        w[k] = v.to(F64)
    return cfg, w


NEOX_BUFFER_SUFFIXES = (".attention.bias", ".attention.masked_bias", ".attention.rotary_emb.inv_freq")


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


def gelu_exact(x):
    """GELU with the exact erf (Hugging Face "gelu")."""
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


def silu(x):
    return x * torch.sigmoid(x)


# hidden_act / activation_function / hidden_activation names -> float64 function.
# "gelu_pytorch_tanh" is F.gelu(approximate="tanh"), the same formula as gelu_new.
ACTIVATIONS = {"gelu_new": gelu_new, "gelu_pytorch_tanh": gelu_new, "gelu": gelu_exact, "silu": silu}


def attention(q, k, v, mask, scale=None, softcap=None, window=None):
    """q [B,T,H,E], k/v [B,T,H,E] (already expanded to query heads), mask [B,T].

    scores = q.k * scale (scale None: 1/sqrt(E); 1.0: no scaling), then the
    soft-cap tanh(s / softcap) * softcap if softcap is given, then masking:
    key j is masked for query i when j > i, when mask[b, j] == 0, and, with a
    sliding window w, when i - j >= w (i, j are indices in the padded row).

    Returns scores (-inf where masked), pattern (0 where masked; all-zero rows
    for fully masked queries) and z [B,T,H,E].
    """
    B, T, H, E = q.shape
    scores = torch.einsum("bihe,bjhe->bhij", q, k)
    if scale is None:
        scores = scores / math.sqrt(E)
    elif scale != 1.0:
        scores = scores * scale
    if softcap is not None:
        scores = torch.tanh(scores / softcap) * softcap
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    if window is not None:
        ii = torch.arange(T).view(T, 1)
        jj = torch.arange(T).view(1, T)
        causal = causal & (ii - jj < window)
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


def rope_inv_freq(theta, dim):
    """Default RoPE inverse frequencies over `dim` rotary dims: 1 / theta^(2i/dim)."""
    return 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=F64) / dim))


def apply_rope(x, pos, inv_freq):
    """x [B,T,N,R], pos [B,T], inv_freq [R/2] -> rotated x (Hugging Face rotate_half convention)."""
    freqs = pos.to(F64).unsqueeze(-1) * inv_freq  # [B,T,R/2]
    emb = torch.cat([freqs, freqs], dim=-1).unsqueeze(2)  # [B,T,1,R]
    return x * torch.cos(emb) + rotate_half(x) * torch.sin(emb)


def rope(x, pos, theta):
    """x [B,T,N,E], pos [B,T] -> rotated x (Hugging Face rotate_half convention)."""
    return apply_rope(x, pos, rope_inv_freq(theta, x.shape[-1]))


def llama3_inv_freq(inv_freq, rs):
    """rope_type "llama3" (modeling_rope_utils): keep high frequencies (wavelength
    < original_max_position_embeddings / high_freq_factor), divide low ones
    (wavelength > original / low_freq_factor) by `factor`, and blend in between
    with s = (original / wavelength - low_freq_factor) / (high_freq_factor - low_freq_factor):
    (1 - s) * f / factor + s * f.  Returns (new inv_freq, band name per frequency)."""
    factor, lo, hi = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
    old_ctx = rs["original_max_position_embeddings"]
    wavelen = 2 * math.pi / inv_freq
    low_band = wavelen > old_ctx / lo
    high_band = wavelen < old_ctx / hi
    mid_band = ~low_band & ~high_band
    smooth = (old_ctx / wavelen - lo) / (hi - lo)
    out = torch.where(low_band, inv_freq / factor, inv_freq)
    out = torch.where(mid_band, (1 - smooth) * inv_freq / factor + smooth * inv_freq, out)
    bands = ["high" if h else ("low" if l else "medium") for h, l in zip(high_band.tolist(), low_band.tolist())]
    return out, bands


def scaled_inv_freq(theta, dim, rope_scaling):
    """Default inverse frequencies, then the rope_scaling of the config (None, linear or llama3).
    The type is read from "rope_type", or from the old key "type"."""
    inv = rope_inv_freq(theta, dim)
    if not rope_scaling:
        return inv, None
    kind = rope_scaling.get("rope_type", rope_scaling.get("type"))
    if kind == "default":
        return inv, None
    if kind == "linear":
        return inv / rope_scaling["factor"], None
    if kind == "llama3":
        return llama3_inv_freq(inv, rope_scaling)
    raise ValueError("unsupported rope_scaling %r" % (rope_scaling,))


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


# --------------------------------------------------------------------------
# The other families (gpt2 untied, gpt_neo, gpt_neox, llama with biases /
# rope scaling, qwen2, mistral, gemma2): one family-independent description
# of every piece of the forward.  make_patching_golden.py builds its per-head
# model from the same pieces.  Written from Hugging Face transformers' modeling
# code (4.46): see tests/golden/README.md, "How the reference computes".
# --------------------------------------------------------------------------

FAMILY = {"gpt2": "gpt2", "gpt_neo": "gpt_neo", "gpt_neox": "gpt_neox", "llama": "llama", "qwen2": "llama",
          "mistral": "llama", "gemma2": "gemma2"}


def expand_attention_types(attention_types):
    """GPT-Neo: [[["global", "local"], n], ...] -> one attention type per layer."""
    out = []
    for kinds, repeat in attention_types:
        for _ in range(repeat):
            out.extend(kinds)
    return out


class Arch:
    """Every sub-computation of one checkpoint (canonical names from load_checkpoint), float64."""

    def __init__(self, cfg, w):
        self.cfg, self.w = cfg, w
        mt = self.model_type = cfg["model_type"]
        fam = self.family = FAMILY[mt]
        g = cfg.get
        self.parallel = False
        self.rotary = fam in ("gpt_neox", "llama", "gemma2")
        self.gated = fam in ("llama", "gemma2")
        self.pos_embed = fam in ("gpt2", "gpt_neo")
        if fam == "gpt2":
            self.D, self.H, self.n_layers = cfg["n_embd"], cfg["n_head"], cfg["n_layer"]
            self.G, self.F = self.H, g("n_inner") or 4 * cfg["n_embd"]
            self.eps, act = cfg["layer_norm_epsilon"], g("activation_function", "gelu_new")
            self.tied = g("tie_word_embeddings", True)
            assert not g("attn_only", False), "attn-only models are not described here"
        elif fam == "gpt_neo":
            self.D, self.H, self.n_layers = cfg["hidden_size"], cfg["num_heads"], cfg["num_layers"]
            self.G, self.F = self.H, g("intermediate_size") or 4 * cfg["hidden_size"]
            self.eps, act = cfg["layer_norm_epsilon"], cfg["activation_function"]
            self.tied = g("tie_word_embeddings", True)
            self.layer_kinds = expand_attention_types(cfg["attention_types"])
            assert len(self.layer_kinds) == self.n_layers
            if "attention_layers" in cfg:
                assert cfg["attention_layers"] == self.layer_kinds
        elif fam == "gpt_neox":
            self.D, self.H = cfg["hidden_size"], cfg["num_attention_heads"]
            self.n_layers, self.G, self.F = cfg["num_hidden_layers"], self.H, cfg["intermediate_size"]
            self.eps, act = cfg["layer_norm_eps"], cfg["hidden_act"]
            self.tied = g("tie_word_embeddings", False)
            self.parallel = g("use_parallel_residual", True)
            assert g("attention_bias", True), "the NeoX description assumes attention biases"
        else:
            self.D, self.H = cfg["hidden_size"], cfg["num_attention_heads"]
            self.n_layers, self.F = cfg["num_hidden_layers"], cfg["intermediate_size"]
            self.G = g("num_key_value_heads") or self.H
            self.eps = cfg["rms_norm_eps"]
            act = cfg["hidden_activation"] if fam == "gemma2" else cfg["hidden_act"]
            self.tied = g("tie_word_embeddings", fam == "gemma2")
        self.E = g("head_dim") or self.D // self.H
        self.act = ACTIVATIONS[act]
        self.bands = None
        if self.rotary:
            if fam == "gpt_neox":
                self.rotary_ndims = int(self.E * g("rotary_pct", 0.25))
                theta = g("rotary_emb_base", g("rope_theta", 10000))
            else:
                self.rotary_ndims = self.E
                theta = g("rope_theta", 10000.0)
            self.inv_freq, self.bands = scaled_inv_freq(theta, self.rotary_ndims, g("rope_scaling"))

    # --- names --------------------------------------------------------------
    def _attn_prefix(self, L):
        return {"gpt2": "h.%d.attn.", "gpt_neo": "transformer.h.%d.attn.attention.",
                "gpt_neox": "gpt_neox.layers.%d.attention.", "llama": "model.layers.%d.self_attn.",
                "gemma2": "model.layers.%d.self_attn."}[self.family] % L

    def _mlp_prefix(self, L):
        return {"gpt2": "h.%d.mlp.", "gpt_neo": "transformer.h.%d.mlp.", "gpt_neox": "gpt_neox.layers.%d.mlp.",
                "llama": "model.layers.%d.mlp.", "gemma2": "model.layers.%d.mlp."}[self.family] % L

    def _lin(self, x, name, bias=True):
        """nn.Linear: x @ W^T (+ b when the checkpoint has it)."""
        y = x @ self.w[name + ".weight"].T
        b = self.w.get(name + ".bias") if bias else None
        return y if b is None else y + b

    # --- embeddings -----------------------------------------------------------
    def embed(self, ids, pos):
        """-> (hook_embed, hook_pos_embed or None). resid_pre(0) is their sum."""
        w, fam = self.w, self.family
        if fam == "gpt2":
            return w["wte.weight"][ids], w["wpe.weight"][pos]
        if fam == "gpt_neo":
            return w["transformer.wte.weight"][ids], w["transformer.wpe.weight"][pos]
        if fam == "gpt_neox":
            return w["gpt_neox.embed_in.weight"][ids], None
        e = w["model.embed_tokens.weight"][ids]
        if fam == "gemma2":
            e = e * (self.D ** 0.5)  # Gemma's normalizer sqrt(hidden_size)
        return e, None

    def resid0(self, ids, pos):
        tok, pe = self.embed(ids, pos)
        return tok if pe is None else tok + pe

    # --- norms ----------------------------------------------------------------
    def norm(self, x, which, L=None):
        """which: "ln1", "ln2", "ln1_post", "ln2_post" (Gemma-2) or "final"."""
        w, fam = self.w, self.family
        if fam in ("gpt2", "gpt_neo", "gpt_neox"):
            if fam == "gpt2":
                p = "ln_f." if which == "final" else "h.%d.ln_%d." % (L, 1 if which == "ln1" else 2)
            elif fam == "gpt_neo":
                p = ("transformer.ln_f." if which == "final"
                     else "transformer.h.%d.ln_%d." % (L, 1 if which == "ln1" else 2))
            else:
                p = ("gpt_neox.final_layer_norm." if which == "final" else "gpt_neox.layers.%d.%s." % (
                    L, "input_layernorm" if which == "ln1" else "post_attention_layernorm"))
            return layer_norm(x, w[p + "weight"], w[p + "bias"], self.eps)
        if which == "final":
            key = "model.norm.weight"
        else:
            names = {"ln1": "input_layernorm", "ln2": "post_attention_layernorm"}
            if fam == "gemma2":
                names = {"ln1": "input_layernorm", "ln1_post": "post_attention_layernorm",
                         "ln2": "pre_feedforward_layernorm", "ln2_post": "post_feedforward_layernorm"}
            key = "model.layers.%d.%s.weight" % (L, names[which])
        if fam == "gemma2":
            return gemma_rms_norm(x, w[key], self.eps)
        return rms_norm(x, w[key], self.eps)

    # --- attention --------------------------------------------------------------
    def proj_all(self, L, xn):
        """Normalised input [B,T,D] -> q [B,T,H,E], k, v [B,T,G,E] (biases included, before RoPE)."""
        B, T = xn.shape[:2]
        D, H, G, E, p = self.D, self.H, self.G, self.E, self._attn_prefix(L)
        if self.family == "gpt2":
            qkv = xn @ self.w[p + "c_attn.weight"] + self.w[p + "c_attn.bias"]
            return (qkv[..., :D].reshape(B, T, H, E), qkv[..., D:2 * D].reshape(B, T, H, E),
                    qkv[..., 2 * D:].reshape(B, T, H, E))
        if self.family == "gpt_neox":
            # fused query_key_value, output laid out per head as [H, 3, E]
            qkv = self._lin(xn, p + "query_key_value").view(B, T, H, 3 * E)
            return qkv[..., :E], qkv[..., E:2 * E], qkv[..., 2 * E:]
        return (self._lin(xn, p + "q_proj").reshape(B, T, H, E), self._lin(xn, p + "k_proj").reshape(B, T, G, E),
                self._lin(xn, p + "v_proj").reshape(B, T, G, E))

    def proj_head(self, L, part, g, xn):
        """One head's q (part 0, g = query head) or k / v (part 1 / 2, g = kv head) -> [B,T,E], before RoPE."""
        D, E, w, p = self.D, self.E, self.w, self._attn_prefix(L)
        if self.family == "gpt2":
            c = part * D + g * E
            return xn @ w[p + "c_attn.weight"][:, c:c + E] + w[p + "c_attn.bias"][c:c + E]
        if self.family == "gpt_neox":
            r = g * 3 * E + part * E
            W, b = w[p + "query_key_value.weight"], w[p + "query_key_value.bias"]
            return xn @ W[r:r + E, :].T + b[r:r + E]
        name = p + ("q_proj", "k_proj", "v_proj")[part]
        out = xn @ w[name + ".weight"][g * E:(g + 1) * E, :].T
        b = w.get(name + ".bias")
        return out if b is None else out + b[g * E:(g + 1) * E]

    def rope(self, x, pos):
        """x [B,T,N,E] -> RoPE applied to the first rotary_ndims dims of each head, the rest unchanged."""
        rd = self.rotary_ndims
        if rd == x.shape[-1]:
            return apply_rope(x, pos, self.inv_freq)
        return torch.cat([apply_rope(x[..., :rd], pos, self.inv_freq), x[..., rd:]], dim=-1)

    def window(self, L):
        """Sliding window of layer L (None: plain causal)."""
        cfg, mt = self.cfg, self.model_type
        if mt == "gpt_neo":
            return cfg["window_size"] if self.layer_kinds[L] == "local" else None
        if mt == "mistral":
            return cfg.get("sliding_window")
        if mt == "qwen2":
            use = cfg.get("use_sliding_window", False) and L >= cfg.get("max_window_layers", 0)
            return cfg["sliding_window"] if use else None
        if mt == "gemma2":
            return cfg["sliding_window"] if L % 2 == 0 else None  # HF: layer_idx % 2 == 0 is sliding
        return None

    def attn_kwargs(self, L):
        kw = {}
        if self.family == "gpt_neo":
            kw["scale"] = 1.0  # GPT-Neo does not scale the scores
        if self.family == "gemma2":
            kw["scale"] = self.cfg["query_pre_attn_scalar"] ** -0.5
            if self.cfg.get("attn_logit_softcapping") is not None:
                kw["softcap"] = self.cfg["attn_logit_softcapping"]
        win = self.window(L)
        if win is not None:
            kw["window"] = win
        return kw

    def kv_of(self):
        return torch.arange(self.H) // (self.H // self.G)  # query head h uses kv head h // (H/G)

    def _o_weight_bias(self, L):
        p = self._attn_prefix(L)
        name = {"gpt2": "c_proj", "gpt_neo": "out_proj", "gpt_neox": "dense"}.get(self.family, "o_proj")
        return self.w[p + name + ".weight"], self.w.get(p + name + ".bias")

    def result(self, L, z):
        """z [B,T,H,E] -> per-head outputs z_h @ W_O[h] [B,T,H,D] (no bias)."""
        D, H, E = self.D, self.H, self.E
        Wo, _ = self._o_weight_bias(L)
        if self.family == "gpt2":
            return torch.einsum("bthe,hed->bthd", z, Wo.view(H, E, D))
        return torch.einsum("bthe,dhe->bthd", z, Wo.view(D, H, E))

    def attn_out(self, L, z=None, result=None):
        """Sum over heads + output bias; Gemma-2: then post_attention_layernorm."""
        out = (self.result(L, z) if result is None else result).sum(2)
        _, b = self._o_weight_bias(L)
        if b is not None:
            out = out + b
        if self.family == "gemma2":
            out = self.norm(out, "ln1_post", L)
        return out

    # --- MLP --------------------------------------------------------------------
    def mlp_parts(self, L, xn):
        """Normalised input -> (pre, pre_linear or None, post, mlp_out)."""
        w, p, fam = self.w, self._mlp_prefix(L), self.family
        pre_lin = None
        if fam == "gpt2":
            pre = xn @ w[p + "c_fc.weight"] + w[p + "c_fc.bias"]
            post = self.act(pre)
            out = post @ w[p + "c_proj.weight"] + w[p + "c_proj.bias"]
        elif fam == "gpt_neo":
            pre = self._lin(xn, p + "c_fc")
            post = self.act(pre)
            out = self._lin(post, p + "c_proj")
        elif fam == "gpt_neox":
            pre = self._lin(xn, p + "dense_h_to_4h")
            post = self.act(pre)
            out = self._lin(post, p + "dense_4h_to_h")
        else:
            pre = self._lin(xn, p + "gate_proj")
            pre_lin = self._lin(xn, p + "up_proj")
            post = self.act(pre) * pre_lin
            out = self._lin(post, p + "down_proj")
            if fam == "gemma2":
                out = self.norm(out, "ln2_post", L)
        return pre, pre_lin, post, out

    def mlp(self, L, x):
        """The MLP sub-layer, norm included, from residual x."""
        return self.mlp_parts(L, self.norm(x, "ln2", L))[3]

    # --- output -------------------------------------------------------------------
    def unembed(self, xf):
        w, fam = self.w, self.family
        if fam == "gpt2":
            head = w["wte.weight"] if self.tied else w["lm_head.weight"]
        elif fam == "gpt_neo":
            head = w["transformer.wte.weight"] if self.tied else w["lm_head.weight"]
        elif fam == "gpt_neox":
            head = w["gpt_neox.embed_in.weight"] if self.tied else w["embed_out.weight"]
        else:
            head = w["model.embed_tokens.weight"] if self.tied else w["lm_head.weight"]
        logits = xf @ head.T
        cap = self.cfg.get("final_logit_softcapping") if fam == "gemma2" else None
        if cap is not None:
            logits = torch.tanh(logits / cap) * cap
        return logits


def gemma_rms_norm(x, w, eps):
    """Gemma RMSNorm: the stored weight w is used as (1 + w)."""
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * (1.0 + w)


def family_forward(cfg, w, ids, mask):
    """Hook activations of any family described by Arch (see README, "How the reference computes")."""
    A = Arch(cfg, w)
    acts = OrderedDict()
    pos = position_ids_from_mask(mask)
    tok, pe = A.embed(ids, pos)
    acts["hook_embed"] = tok
    if pe is not None:
        acts["hook_pos_embed"] = pe
        resid = tok + pe
    else:
        resid = tok
    kv_of = A.kv_of()
    for L in range(A.n_layers):
        a = "blocks.%d." % L
        acts[a + "hook_resid_pre"] = resid
        x = A.norm(resid, "ln1", L)
        acts[a + "ln1.hook_normalized"] = x
        q, k, v = A.proj_all(L, x)
        acts[a + "attn.hook_q"], acts[a + "attn.hook_k"], acts[a + "attn.hook_v"] = q, k, v
        if A.rotary:
            q, k = A.rope(q, pos), A.rope(k, pos)
            acts[a + "attn.hook_rot_q"], acts[a + "attn.hook_rot_k"] = q, k
        scores, pattern, z = attention(q, k[:, :, kv_of], v[:, :, kv_of], mask, **A.attn_kwargs(L))
        acts[a + "attn.hook_attn_scores"], acts[a + "attn.hook_pattern"], acts[a + "attn.hook_z"] = scores, pattern, z
        result = A.result(L, z)
        acts[a + "attn.hook_result"] = result
        attn_out = A.attn_out(L, result=result)
        if A.family == "gemma2":
            acts[a + "ln1_post.hook_normalized"] = attn_out
        acts[a + "hook_attn_out"] = attn_out
        if A.parallel:
            x2 = A.norm(resid, "ln2", L)  # the MLP reads the residual that enters the block
        else:
            resid_mid = resid + attn_out
            acts[a + "hook_resid_mid"] = resid_mid
            x2 = A.norm(resid_mid, "ln2", L)
        acts[a + "ln2.hook_normalized"] = x2
        pre, pre_lin, post, mlp_out = A.mlp_parts(L, x2)
        acts[a + "mlp.hook_pre"] = pre
        if pre_lin is not None:
            acts[a + "mlp.hook_pre_linear"] = pre_lin
        acts[a + "mlp.hook_post"] = post
        if A.family == "gemma2":
            acts[a + "ln2_post.hook_normalized"] = mlp_out
        acts[a + "hook_mlp_out"] = mlp_out
        resid = (resid + attn_out) + mlp_out if A.parallel else resid_mid + mlp_out
        acts[a + "hook_resid_post"] = resid
    xf = A.norm(resid, "final")
    acts["ln_final.hook_normalized"] = xf
    acts["logits"] = A.unembed(xf)
    return acts


def forward(cfg, w, ids, mask):
    # The original folders (minimal configs without "architectures") keep their original reference code.
    if "architectures" not in cfg:
        if cfg["model_type"] == "gpt2":
            return gpt2_forward(cfg, w, ids, mask)
        if cfg["model_type"] == "llama":
            return llama_forward(cfg, w, ids, mask)
    if cfg["model_type"] in FAMILY:
        return family_forward(cfg, w, ids, mask)
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


def extra_checks(folders, all_results):
    """Checks of the newer folders (see README, "Self-checks")."""
    # The generic family_forward reproduces the original reference on the original folders.
    worst = 0.0
    for name in ("gpt2", "gpt2-f16", "llama-gqa", "llama-tied"):
        cfg, w = load_checkpoint(folders[name])
        for case, (ids, mask) in CASES.items():
            ref = all_results[name][case]
            got = family_forward(cfg, w, torch.tensor(ids), torch.tensor(mask))
            assert list(got) == list(ref), name
            for k in ref:
                fin = torch.isfinite(ref[k])
                assert torch.equal(fin, torch.isfinite(got[k])), (name, k)
                worst = max(worst, (ref[k][fin] - got[k][fin]).abs().max().item())
    assert worst < 1e-12, worst
    print("family_forward == original reference on gpt2, gpt2-f16, llama-gqa, llama-tied: max |diff| %.1e" % worst)

    for name, d in folders.items():
        cfg, w = load_checkpoint(d)
        if "architectures" not in cfg:
            continue
        A = Arch(cfg, w)
        acts = all_results[name]["batch"]
        wins = []
        for L in range(A.n_layers):
            win = A.window(L)
            wins.append(win)
            if win is None:
                continue
            # Really windowed: keys with i - j >= window get 0 (there are such keys at T = 7).
            T = acts["blocks.%d.attn.hook_pattern" % L].shape[-1]
            ii, jj = torch.arange(T).view(T, 1), torch.arange(T).view(1, T)
            outside = (ii - jj >= win) & (jj <= ii)
            assert outside.any()
            assert (acts["blocks.%d.attn.hook_pattern" % L][..., outside] == 0).all(), (name, L)
        extra = ""
        if A.rotary:
            extra = ", rotary dims %d of %d" % (A.rotary_ndims, A.E)
        print("%-15s %s, windows per layer %s, parallel residual %s%s"
              % (name, cfg["model_type"], wins, A.parallel, extra))
        if A.bands is not None:
            wl = (2 * math.pi / rope_inv_freq(cfg["rope_theta"], A.rotary_ndims)).tolist()
            print("  llama3 bands (wavelength: band): %s" % ", ".join("%.3g: %s" % x for x in zip(wl, A.bands)))
            assert set(A.bands) == {"high", "medium", "low"}, A.bands
        if A.family == "gemma2":
            xf = acts["ln_final.hook_normalized"]
            raw = xf @ w["model.embed_tokens.weight"].T
            print("  gemma2: max |logits before final soft-cap| %.2f (cap %.1f), max |capped scores| %.2f (cap %.1f)"
                  % (raw.abs().max().item(), cfg["final_logit_softcapping"],
                     max(acts["blocks.%d.attn.hook_attn_scores" % L].masked_fill(
                         torch.isinf(acts["blocks.%d.attn.hook_attn_scores" % L]), 0).abs().max().item()
                         for L in range(A.n_layers)), cfg["attn_logit_softcapping"]))

    # Pythia's old buffers are on disk with the expected dtypes and values.
    raw = read_safetensors(os.path.join(folders["pythia"], "model.safetensors"))
    P = PYTHIA_CONFIG["max_position_embeddings"]
    for i in range(PYTHIA_CONFIG["num_hidden_layers"]):
        p = "gpt_neox.layers.%d.attention." % i
        assert raw[p + "bias"].dtype == torch.bool and raw[p + "bias"].shape == (1, 1, P, P)
        assert torch.equal(raw[p + "bias"][0, 0], torch.ones(P, P, dtype=torch.bool).tril())
        assert raw[p + "masked_bias"].dtype == torch.float32 and raw[p + "masked_bias"].shape == ()
        assert torch.allclose(raw[p + "rotary_emb.inv_freq"].double(), torch.tensor([1.0, 0.01], dtype=F64))
    print("pythia buffers: ok")


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

    # Newer families: realistic configs, save_pretrained layout (see write_checkpoint).
    folders["pythia"] = write_checkpoint("pythia", PYTHIA_CONFIG, make_neox_weights(PYTHIA_CONFIG, seed=5001), "F32",
                                         buffers=neox_buffers(PYTHIA_CONFIG))
    folders["neox-sequential"] = write_checkpoint("neox-sequential", NEOX_SEQUENTIAL_CONFIG,
                                                  make_neox_weights(NEOX_SEQUENTIAL_CONFIG, seed=5002), "F16")
    folders["gpt-neo"] = write_checkpoint("gpt-neo", GPT_NEO_CONFIG, make_gpt_neo_weights(GPT_NEO_CONFIG, seed=5003),
                                          "F32")
    folders["qwen2"] = write_checkpoint("qwen2", QWEN2_CONFIG, make_decoder_weights(QWEN2_CONFIG, seed=5004), "F32",
                                        sharded=True)
    folders["mistral"] = write_checkpoint("mistral", MISTRAL_CONFIG, make_decoder_weights(MISTRAL_CONFIG, seed=5005),
                                          "F32")
    folders["gemma2"] = write_checkpoint("gemma2", GEMMA2_CONFIG, make_decoder_weights(GEMMA2_CONFIG, seed=5006), "F32")
    folders["llama3"] = write_checkpoint("llama3", LLAMA3_CONFIG, make_decoder_weights(LLAMA3_CONFIG, seed=5007), "F32")
    folders["llama-linear"] = write_checkpoint("llama-linear", LLAMA_LINEAR_CONFIG,
                                               make_decoder_weights(LLAMA_LINEAR_CONFIG, seed=5008), "BF16")
    untied = make_gpt2_weights(GPT2_UNTIED_CONFIG, seed=5009, untied=True)
    untied = OrderedDict((k if k == "lm_head.weight" else "transformer." + k, v) for k, v in untied.items())
    folders["gpt2-untied"] = write_checkpoint("gpt2-untied", GPT2_UNTIED_CONFIG, untied, "F32")

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
    extra_checks(folders, all_results)

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
