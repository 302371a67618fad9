#pragma once
// What Llama lends the families built on it (Mistral, Qwen2): its config keys and its tensor names.
#include <vector>

#include "models/family.hpp"

namespace pathpatch::llama {

// Sizes, RMSNorm, RoPE (with rope_scaling), a gated MLP and the tied head, as LlamaConfig reads them.
void configure_common(const ConfigKeys& k, ModelConfig& c);

// model.layers.%d.self_attn.q_proj ... mlp.down_proj, norm, lm_head (biases where configured).
extern const std::vector<WeightName> kNames;

}  // namespace pathpatch::llama
