// GPT-NeoX (Black et al. 2022), the architecture of Pythia: attention and MLP in parallel on the
// same residual (use_parallel_residual), RoPE on the first rotary_pct of each head, a fused
// query_key_value laid out per head, LayerNorm and biases everywhere, exact GELU, untied embed_out.
#include "models/family.hpp"

namespace pathpatch {

namespace {

void configure(const ConfigKeys& k, ModelConfig& c) {
  c.n_layers = k.integer({"num_hidden_layers"});
  c.d_model = k.integer({"hidden_size"});
  c.n_heads = c.n_kv_heads = k.integer({"num_attention_heads"});
  c.d_mlp = k.integer({"intermediate_size"});
  c.vocab_size = k.integer({"vocab_size"});
  c.n_ctx = k.integer({"max_position_embeddings"});
  c.norm = Norm::LayerNorm;
  c.norm_eps = k.positive_float({"layer_norm_eps"}, 1e-5);
  c.rotary_fraction = k.number_or({"rotary_pct", "partial_rotary_factor"}, 0.25);
  c.rope_theta = k.number_or({"rotary_emb_base", "rope_theta"}, 10000);
  c.rope_scaling = k.rope_scaling();
  c.parallel_residual = k.boolean_or({"use_parallel_residual"}, true);
  c.mlp_act = k.activation("hidden_act", "gelu");
  c.mlp_bias = true;
  c.qkv_bias = c.o_bias = k.boolean_or({"attention_bias"}, true);
  c.tie_embeddings = k.boolean_or({"tie_word_embeddings"}, false);
}

}  // namespace

extern const Family kGptNeoxFamily = {
    "gpt_neox",
    {"gpt_neox"},
    configure,
    {"gpt_neox."},
    MatrixLayout::OutIn,
    FusedQKV::PerHead,
    {
        {WeightSlot::TokenEmbed, "embed_in.weight"},
        {WeightSlot::AttnNorm, "layers.%d.input_layernorm.weight"},
        {WeightSlot::AttnNormBias, "layers.%d.input_layernorm.bias"},
        {WeightSlot::QKV, "layers.%d.attention.query_key_value.weight"},
        {WeightSlot::QKVBias, "layers.%d.attention.query_key_value.bias"},
        {WeightSlot::O, "layers.%d.attention.dense.weight"},
        {WeightSlot::OBias, "layers.%d.attention.dense.bias"},
        {WeightSlot::MlpNorm, "layers.%d.post_attention_layernorm.weight"},
        {WeightSlot::MlpNormBias, "layers.%d.post_attention_layernorm.bias"},
        {WeightSlot::MlpIn, "layers.%d.mlp.dense_h_to_4h.weight"},
        {WeightSlot::MlpInBias, "layers.%d.mlp.dense_h_to_4h.bias"},
        {WeightSlot::MlpOut, "layers.%d.mlp.dense_4h_to_h.weight"},
        {WeightSlot::MlpOutBias, "layers.%d.mlp.dense_4h_to_h.bias"},
        {WeightSlot::FinalNorm, "final_layer_norm.weight"},
        {WeightSlot::FinalNormBias, "final_layer_norm.bias"},
        {WeightSlot::Unembed, "embed_out.weight"},
    },
};

}  // namespace pathpatch
