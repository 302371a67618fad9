// GPT-2 (Radford et al. 2019), as Hugging Face's GPT2LMHeadModel stores it: Conv1D matrices
// [in, out], a fused c_attn whose output is q | k | v, learned positions, LayerNorm, gelu_new.
#include "models/family.hpp"

namespace pathpatch {

namespace {

void configure(const ConfigKeys& k, ModelConfig& c) {
  c.n_layers = k.integer({"n_layer", "num_hidden_layers"});
  c.d_model = k.integer({"n_embd", "hidden_size"});
  c.n_heads = c.n_kv_heads = k.integer({"n_head", "num_attention_heads"});
  c.vocab_size = k.integer({"vocab_size"});
  c.n_ctx = k.integer({"n_positions", "n_ctx", "max_position_embeddings"});
  c.norm = Norm::LayerNorm;
  c.norm_eps = k.positive_float({"layer_norm_epsilon"}, 1e-5);
  c.learned_positions = true;
  c.attn_only = k.boolean_or({"attn_only"}, false);
  const int64_t inner = k.has("n_inner") ? k.integer({"n_inner"}) : 4 * int64_t(c.d_model);
  if (inner > (1 << 30)) k.fail("the MLP width 4 x n_embd = " + std::to_string(inner) + " is larger than 2^30");
  c.d_mlp = static_cast<int>(inner);
  c.mlp_act = k.activation("activation_function", "gelu_new");
  c.qkv_bias = c.o_bias = c.mlp_bias = true;
  c.tie_embeddings = k.boolean_or({"tie_word_embeddings"}, true);
  if (!k.boolean_or({"scale_attn_weights"}, true)) c.attn_scale = 1;
  k.refuse_unless("scale_attn_by_inverse_layer_idx", false, false, "scores scaled by 1 / (layer + 1) are not computed");
  k.refuse_unless("add_cross_attention", false, false, "cross-attention needs an encoder");
}

}  // namespace

extern const Family kGpt2Family = {
    "gpt2",
    {"gpt2"},
    configure,
    {"", "transformer."},  // hub files have no prefix; GPT2LMHeadModel.save_pretrained writes "transformer."
    MatrixLayout::InOut,
    FusedQKV::Blocks,
    {
        {WeightSlot::TokenEmbed, "wte.weight"},
        {WeightSlot::PosEmbed, "wpe.weight"},
        {WeightSlot::AttnNorm, "h.%d.ln_1.weight"},
        {WeightSlot::AttnNormBias, "h.%d.ln_1.bias"},
        {WeightSlot::QKV, "h.%d.attn.c_attn.weight"},
        {WeightSlot::QKVBias, "h.%d.attn.c_attn.bias"},
        {WeightSlot::O, "h.%d.attn.c_proj.weight"},
        {WeightSlot::OBias, "h.%d.attn.c_proj.bias"},
        {WeightSlot::MlpNorm, "h.%d.ln_2.weight"},
        {WeightSlot::MlpNormBias, "h.%d.ln_2.bias"},
        {WeightSlot::MlpIn, "h.%d.mlp.c_fc.weight"},
        {WeightSlot::MlpInBias, "h.%d.mlp.c_fc.bias"},
        {WeightSlot::MlpOut, "h.%d.mlp.c_proj.weight"},
        {WeightSlot::MlpOutBias, "h.%d.mlp.c_proj.bias"},
        {WeightSlot::FinalNorm, "ln_f.weight"},
        {WeightSlot::FinalNormBias, "ln_f.bias"},
        {WeightSlot::Unembed, "lm_head.weight"},
    },
};

}  // namespace pathpatch
