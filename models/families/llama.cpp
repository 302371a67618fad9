// Llama (Touvron et al. 2023) and Llama-3, as Hugging Face's LlamaForCausalLM stores it: RMSNorm,
// RoPE in the rotate_half convention (with linear or llama3 frequency scaling), grouped-query
// attention, a SiLU-gated MLP, nn.Linear matrices [out, in]; biases if configured.
#include "models/families/llama.hpp"

namespace pathpatch {

namespace llama {

void configure_common(const ConfigKeys& k, ModelConfig& c) {
  c.n_layers = k.integer({"num_hidden_layers"});
  c.d_model = k.integer({"hidden_size"});
  c.n_heads = k.integer({"num_attention_heads"});
  c.n_kv_heads = k.integer_or({"num_key_value_heads"}, c.n_heads);
  c.d_head = k.integer_or({"head_dim"}, 0);  // 0: hidden_size / num_attention_heads
  c.d_mlp = k.integer({"intermediate_size"});
  c.vocab_size = k.integer({"vocab_size"});
  c.n_ctx = k.integer({"max_position_embeddings"});
  c.norm = Norm::RMSNorm;
  c.norm_eps = k.positive_float({"rms_norm_eps"}, 1e-6);
  c.rotary_fraction = 1;
  c.rope_theta = k.number_or({"rope_theta"}, 10000);
  c.rope_scaling = k.rope_scaling();
  c.gated_mlp = true;
  c.mlp_act = k.activation("hidden_act", "silu");
  c.tie_embeddings = k.boolean_or({"tie_word_embeddings"}, false);
}

const std::vector<WeightName> kNames = {
    {WeightSlot::TokenEmbed, "embed_tokens.weight"},
    {WeightSlot::AttnNorm, "layers.%d.input_layernorm.weight"},
    {WeightSlot::Q, "layers.%d.self_attn.q_proj.weight"},
    {WeightSlot::QBias, "layers.%d.self_attn.q_proj.bias"},
    {WeightSlot::K, "layers.%d.self_attn.k_proj.weight"},
    {WeightSlot::KBias, "layers.%d.self_attn.k_proj.bias"},
    {WeightSlot::V, "layers.%d.self_attn.v_proj.weight"},
    {WeightSlot::VBias, "layers.%d.self_attn.v_proj.bias"},
    {WeightSlot::O, "layers.%d.self_attn.o_proj.weight"},
    {WeightSlot::OBias, "layers.%d.self_attn.o_proj.bias"},
    {WeightSlot::MlpNorm, "layers.%d.post_attention_layernorm.weight"},
    {WeightSlot::MlpIn, "layers.%d.mlp.gate_proj.weight"},
    {WeightSlot::MlpInBias, "layers.%d.mlp.gate_proj.bias"},
    {WeightSlot::MlpUp, "layers.%d.mlp.up_proj.weight"},
    {WeightSlot::MlpUpBias, "layers.%d.mlp.up_proj.bias"},
    {WeightSlot::MlpOut, "layers.%d.mlp.down_proj.weight"},
    {WeightSlot::MlpOutBias, "layers.%d.mlp.down_proj.bias"},
    {WeightSlot::FinalNorm, "norm.weight"},
    {WeightSlot::Unembed, "lm_head.weight"},
};

}  // namespace llama

namespace {

void configure(const ConfigKeys& k, ModelConfig& c) {
  llama::configure_common(k, c);
  c.qkv_bias = c.o_bias = k.boolean_or({"attention_bias"}, false);
  c.mlp_bias = k.boolean_or({"mlp_bias"}, false);
}

}  // namespace

extern const Family kLlamaFamily = {"llama", {"llama"}, configure, {"model."}, MatrixLayout::OutIn,
                                    FusedQKV::Blocks, llama::kNames};

}  // namespace pathpatch
