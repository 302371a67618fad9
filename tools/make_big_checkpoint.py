#!/usr/bin/python3
"""Write a random checkpoint shaped like Llama-3.2-1B, in BF16, for bench/bench_big.

    /usr/bin/python3 tools/make_big_checkpoint.py OUT_DIR

Writes OUT_DIR/config.json (Llama-3.2-1B's config: 16 layers, hidden 2048, 32 query heads and 8
key/value heads of 64, MLP 8192, vocab 128256, llama3 rope scaling, tied embeddings) and
OUT_DIR/model.safetensors (1.24 B parameters, 2.5 GB) in the Hugging Face names, one tensor at a
time so that the script never holds more than one tensor. Weights are N(0, 0.02), norms 1, as
Llama's initialisation; seeded, so two runs write the same bytes. Not committed: the file is
large. Needs torch and numpy (Debian's python3-torch).
"""
import json
import os
import sys
from collections import OrderedDict

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_io import write_safetensors_streaming  # noqa: E402

CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 2048,
    "intermediate_size": 8192,
    "num_hidden_layers": 16,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "head_dim": 64,
    "vocab_size": 128256,
    "max_position_embeddings": 131072,
    "rms_norm_eps": 1e-05,
    "rope_theta": 500000.0,
    "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                     "original_max_position_embeddings": 8192, "rope_type": "llama3"},
    "tie_word_embeddings": True,
    "hidden_act": "silu",
    "attention_bias": False,
    "mlp_bias": False,
    "bos_token_id": 128000,
    "eos_token_id": 128001,
    "torch_dtype": "bfloat16",
}


def shapes(c):
    d, f, e = c["hidden_size"], c["intermediate_size"], c["head_dim"]
    q, kv = c["num_attention_heads"] * e, c["num_key_value_heads"] * e
    out = OrderedDict([("model.embed_tokens.weight", (c["vocab_size"], d))])
    for i in range(c["num_hidden_layers"]):
        p = "model.layers.%d." % i
        out[p + "input_layernorm.weight"] = (d,)
        out[p + "self_attn.q_proj.weight"] = (q, d)
        out[p + "self_attn.k_proj.weight"] = (kv, d)
        out[p + "self_attn.v_proj.weight"] = (kv, d)
        out[p + "self_attn.o_proj.weight"] = (d, q)
        out[p + "post_attention_layernorm.weight"] = (d,)
        out[p + "mlp.gate_proj.weight"] = (f, d)
        out[p + "mlp.up_proj.weight"] = (f, d)
        out[p + "mlp.down_proj.weight"] = (d, f)
    out["model.norm.weight"] = (d,)
    return out


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make_big_checkpoint.py OUT_DIR")
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    gen = torch.Generator().manual_seed(2024)

    def produce(name):
        shape = table[name]
        if name.endswith("norm.weight"):
            return torch.ones(shape)
        return torch.empty(shape).normal_(0.0, 0.02, generator=gen)

    table = shapes(CONFIG)
    tmp = os.path.join(out, "model.safetensors.partial")
    n = write_safetensors_streaming(tmp, table, produce, dtype="BF16", metadata={"format": "pt"})
    os.replace(tmp, os.path.join(out, "model.safetensors"))
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(CONFIG, f, indent=2)
    params = sum(int(torch.tensor(s).prod()) for s in table.values())
    print("wrote %s: %d tensors, %.3f B parameters, %.2f GB" % (out, len(table), params / 1e9, n / 1e9))


if __name__ == "__main__":
    main()
