// Gemma 2 (Gemma Team 2024), the base of Gemma Scope: RMSNorm scaling by (1 + w), before and after
// each sub-layer; embeddings times sqrt(hidden_size); scores scaled by query_pre_attn_scalar^-1/2
// and soft-capped; sliding-window attention in every other layer (the even ones); a GeGLU MLP
// (tanh GELU); head_dim independent of the width; soft-capped logits.
#include <cmath>

#include "models/family.hpp"

namespace pathpatch {

namespace {

// A soft-cap key: Gemma2Config's default when absent, none when null.
float softcap(const ConfigKeys& k, const char* key, double fallback) {
  return k.is_null(key) ? 0.0f : static_cast<float>(k.number_or({key}, fallback));
}

void configure(const ConfigKeys& k, ModelConfig& c) {
  c.n_layers = k.integer({"num_hidden_layers"});
  c.d_model = k.integer({"hidden_size"});
  c.n_heads = k.integer({"num_attention_heads"});
  c.n_kv_heads = k.integer_or({"num_key_value_heads"}, c.n_heads);
  c.d_head = k.integer_or({"head_dim"}, 256);
  c.d_mlp = k.integer({"intermediate_size"});
  c.vocab_size = k.integer({"vocab_size"});
  c.n_ctx = k.integer({"max_position_embeddings"});
  c.norm = Norm::RMSNormPlusOne;
  c.norm_eps = k.positive_float({"rms_norm_eps"}, 1e-6);
  c.post_norms = true;
  c.rotary_fraction = 1;
  c.rope_theta = k.number_or({"rope_theta"}, 10000);
  c.rope_scaling = k.rope_scaling();
  const double scalar = k.number_or({"query_pre_attn_scalar"}, 256);
  if (!(scalar > 0)) k.fail("query_pre_attn_scalar must be positive");
  c.attn_scale = static_cast<float>(1.0 / std::sqrt(scalar));
  c.attn_softcap = softcap(k, "attn_logit_softcapping", 50.0);
  c.logit_softcap = softcap(k, "final_logit_softcapping", 30.0);
  c.window.size = k.is_null("sliding_window") ? 0 : k.integer_or({"sliding_window"}, 4096);
  c.window.pattern = {true, false};  // layer L slides when L is even
  k.layer_types(c.n_layers, c.window);
  c.qkv_bias = c.o_bias = k.boolean_or({"attention_bias"}, false);
  c.gated_mlp = true;
  c.mlp_act = k.activation(k.has("hidden_activation") ? "hidden_activation" : "hidden_act", "gelu_pytorch_tanh");
  // Hugging Face multiplies by the square root rounded to the activations' dtype.
  c.embed_scale = static_cast<float>(std::sqrt(static_cast<double>(c.d_model)));
  c.tie_embeddings = k.boolean_or({"tie_word_embeddings"}, true);
}

}  // namespace

extern const Family kGemma2Family = {
    "gemma2",
    {"gemma2"},
    configure,
    {"model."},
    MatrixLayout::OutIn,
    FusedQKV::Blocks,
    {
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
        {WeightSlot::AttnPostNorm, "layers.%d.post_attention_layernorm.weight"},
        {WeightSlot::MlpNorm, "layers.%d.pre_feedforward_layernorm.weight"},
        {WeightSlot::MlpIn, "layers.%d.mlp.gate_proj.weight"},
        {WeightSlot::MlpUp, "layers.%d.mlp.up_proj.weight"},
        {WeightSlot::MlpOut, "layers.%d.mlp.down_proj.weight"},
        {WeightSlot::MlpPostNorm, "layers.%d.post_feedforward_layernorm.weight"},
        {WeightSlot::FinalNorm, "norm.weight"},
        {WeightSlot::Unembed, "lm_head.weight"},
    },
};

}  // namespace pathpatch
