#!/usr/bin/python3
"""Write tests/golden/<model>/processed.safetensors: every activation of a model whose weights are
processed as TransformerLens's HookedTransformer.from_pretrained processes them (fold_ln,
center_writing_weights, center_unembed, fold_value_biases), in float64.

Rerun with:

    /usr/bin/python3 tools/make_processed_golden.py

after tools/make_golden.py (it reads the checkpoints that script writes and runs its reference
forward on the processed weights). Written from TransformerLens's HookedTransformer.fold_layer_norm,
center_writing_weights, center_unembed and fold_value_biases (their semantics, on Hugging Face
tensor names; not copied), for two families: GPT-2 (LayerNorm with biases, fused c_attn, tied
embeddings, learned positions) and Qwen2 (RMSNorm, grouped-query attention, value biases, tied).

The processed model has an unembedding of its own (W_U [D, V] and b_U [V]): the embeddings and the
unembedding no longer share weights. Its logits are ln_final's output @ W_U + b_U.
"""
import os
import sys
from collections import OrderedDict

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_golden import CASES, forward, load_checkpoint  # noqa: E402
from safetensors_io import write_safetensors  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def fold_norm(W, b, norm_w, norm_b, centre):
    """A linear map x @ W + b [in, out] reading a norm's output x_hat * norm_w + norm_b."""
    if norm_b is not None:
        b = b + (W * norm_b[:, None]).sum(-2)
    W = W * norm_w[:, None]
    if centre:
        W = W - W.mean(-2, keepdim=True)  # over d_model: x_hat has mean 0
    return W, b


def process_gpt2(cfg, w):
    D, H, L = cfg["n_embd"], cfg["n_head"], cfg["n_layer"]
    E = D // H
    w = dict(w)
    W_U, b_U = w["wte.weight"].T.clone(), torch.zeros(cfg["vocab_size"], dtype=torch.float64)
    # fold_ln (LayerNorm: biases too, then centring the readers)
    for l in range(L):
        p = "h.%d." % l
        for norm, lin in (("ln_1", "attn.c_attn"), ("ln_2", "mlp.c_fc")):
            w[p + lin + ".weight"], w[p + lin + ".bias"] = fold_norm(
                w[p + lin + ".weight"], w[p + lin + ".bias"], w[p + norm + ".weight"], w[p + norm + ".bias"], True)
            w[p + norm + ".weight"] = torch.ones(D, dtype=torch.float64)
            w[p + norm + ".bias"] = torch.zeros(D, dtype=torch.float64)
    W_U, b_U = fold_norm(W_U, b_U, w["ln_f.weight"], w["ln_f.bias"], True)
    w["ln_f.weight"], w["ln_f.bias"] = torch.ones(D, dtype=torch.float64), torch.zeros(D, dtype=torch.float64)
    # center_writing_weights: embeddings, W_O, W_out and their biases over d_model
    for name in ("wte.weight", "wpe.weight"):
        w[name] = w[name] - w[name].mean(-1, keepdim=True)
    for l in range(L):
        for lin in ("attn.c_proj", "mlp.c_proj"):
            p = "h.%d.%s." % (l, lin)
            w[p + "weight"] = w[p + "weight"] - w[p + "weight"].mean(-1, keepdim=True)
            w[p + "bias"] = w[p + "bias"] - w[p + "bias"].mean()
    # center_unembed: over the vocabulary
    W_U = W_U - W_U.mean(-1, keepdim=True)
    b_U = b_U - b_U.mean()
    # fold_value_biases: b_O += sum_h b_V[h] @ W_O[h]
    for l in range(L):
        p = "h.%d.attn." % l
        b_V = w[p + "c_attn.bias"][2 * D:].view(H, E)
        W_O = w[p + "c_proj.weight"].view(H, E, D)
        w[p + "c_proj.bias"] = w[p + "c_proj.bias"] + torch.einsum("he,hed->d", b_V, W_O)
        bias = w[p + "c_attn.bias"].clone()
        bias[2 * D:] = 0
        w[p + "c_attn.bias"] = bias
    return w, W_U, b_U


def process_qwen2(cfg, w):
    D, H, G, L = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["num_hidden_layers"]
    E = D // H
    w = dict(w)
    W_U, b_U = w["model.embed_tokens.weight"].T.clone(), torch.zeros(cfg["vocab_size"], dtype=torch.float64)
    # fold_ln (RMSNorm: the scale only, no centring); nn.Linear stores [out, in]
    for l in range(L):
        p = "model.layers.%d." % l
        for norm, lins in (("input_layernorm", ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj")),
                           ("post_attention_layernorm", ("mlp.gate_proj", "mlp.up_proj"))):
            for lin in lins:
                W, _ = fold_norm(w[p + lin + ".weight"].T, None, w[p + norm + ".weight"], None, False)
                w[p + lin + ".weight"] = W.T
            w[p + norm + ".weight"] = torch.ones(D, dtype=torch.float64)
    W_U, _ = fold_norm(W_U, None, w["model.norm.weight"], None, False)
    w["model.norm.weight"] = torch.ones(D, dtype=torch.float64)
    # center_writing_weights: only where a LayerNorm reads the stream; not here
    W_U = W_U - W_U.mean(-1, keepdim=True)
    b_U = b_U - b_U.mean()
    # fold_value_biases, each kv head's bias serving its group of query heads
    for l in range(L):
        p = "model.layers.%d.self_attn." % l
        b_V = w[p + "v_proj.bias"].view(G, E).repeat_interleave(H // G, dim=0)  # [H, E]
        W_O = w[p + "o_proj.weight"].T.reshape(H, E, D)
        b_O = w.get(p + "o_proj.bias", torch.zeros(D, dtype=torch.float64))
        w[p + "o_proj.bias"] = b_O + torch.einsum("he,hed->d", b_V, W_O)
        w[p + "v_proj.bias"] = torch.zeros_like(w[p + "v_proj.bias"])
    return w, W_U, b_U


PROCESS = {"gpt2": process_gpt2, "qwen2": process_qwen2}


def main():
    ids, mask = CASES["batch"]
    ids_t, mask_t = torch.tensor(ids, dtype=torch.long), torch.tensor(mask, dtype=torch.long)
    for name, process in PROCESS.items():
        d = os.path.join(ROOT, "tests", "golden", name)
        cfg, w = load_checkpoint(d)
        pw, W_U, b_U = process(cfg, w)
        acts = forward(cfg, pw, ids_t, mask_t)
        acts["logits"] = acts["ln_final.hook_normalized"] @ W_U + b_U  # the processed model's own unembedding
        # The processing keeps the next-token distribution.
        plain = forward(cfg, w, ids_t, mask_t)["logits"]
        diff = (torch.log_softmax(acts["logits"], -1) - torch.log_softmax(plain, -1)).abs()
        diff = diff[mask_t.bool()].max().item()
        assert diff < 1e-9, "%s: processing changed the log-probabilities by %g" % (name, diff)
        out = OrderedDict([("input_ids", ids_t.to(torch.float32)), ("attention_mask", mask_t.to(torch.float32))])
        for k, v in acts.items():
            out[k] = v.to(torch.float32)
        meta = OrderedDict([("model", name), ("case", "batch"), ("generator", "tools/make_processed_golden.py"),
                            ("reference_precision", "float64")])
        write_safetensors(os.path.join(d, "processed.safetensors"), out, "F32", meta)
        print("%s: %d tensors, log-probabilities kept within %.1e" % (name, len(out), diff))


if __name__ == "__main__":
    main()
