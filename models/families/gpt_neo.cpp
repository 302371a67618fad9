// GPT-Neo (Black et al. 2021), the architecture of gpt-neo-125M and the TinyStories models: GPT-2's
// block with separate q/k/v projections (no bias), scores not scaled by 1/sqrt(d_head), and global
// and local (sliding-window) attention alternating as attention_types lists them.
#include <nlohmann/json.hpp>

#include "models/family.hpp"

namespace pathpatch {

namespace {

// attention_types, e.g. [[["global", "local"], 12]]: each pattern repeated; one kind per layer.
void attention_types(const ConfigKeys& k, ModelConfig& c) {
  const nlohmann::json* types = k.find({"attention_types"});
  std::vector<bool> local;
  if (types) {
    auto bad = [&] { k.fail("'attention_types' must be a list of [[\"global\" | \"local\", ...], count] pairs"); };
    if (!types->is_array()) bad();
    int64_t total = 0;
    for (const nlohmann::json& entry : *types) {
      if (!entry.is_array() || entry.size() != 2 || !entry[0].is_array() || !entry[1].is_number_integer()) bad();
      const int64_t count = entry[1].get<int64_t>();
      total += count * static_cast<int64_t>(entry[0].size());
      if (count < 0 || total > c.n_layers)
        k.fail("'attention_types' describes more layers than num_layers " + std::to_string(c.n_layers));
      for (int64_t i = 0; i < count; ++i)
        for (const nlohmann::json& kind : entry[0]) {
          if (kind != "global" && kind != "local") bad();
          local.push_back(kind == "local");
        }
    }
    if (total != c.n_layers)
      k.fail("'attention_types' describes " + std::to_string(total) + " layers, num_layers is " +
             std::to_string(c.n_layers));
  }
  c.window.pattern = local;
  c.window.size = k.integer_or({"window_size"}, 256);
  if (local.empty()) c.window.size = 0;  // no list: every layer global
}

void configure(const ConfigKeys& k, ModelConfig& c) {
  c.n_layers = k.integer({"num_layers", "num_hidden_layers"});
  c.d_model = k.integer({"hidden_size"});
  c.n_heads = c.n_kv_heads = k.integer({"num_heads", "num_attention_heads"});
  c.vocab_size = k.integer({"vocab_size"});
  c.n_ctx = k.integer({"max_position_embeddings"});
  const int64_t inner = k.has("intermediate_size") ? k.integer({"intermediate_size"}) : 4 * int64_t(c.d_model);
  if (inner > (1 << 30)) k.fail("the MLP width 4 x hidden_size = " + std::to_string(inner) + " is larger than 2^30");
  c.d_mlp = static_cast<int>(inner);
  c.norm = Norm::LayerNorm;
  c.norm_eps = k.positive_float({"layer_norm_epsilon"}, 1e-5);
  c.learned_positions = true;
  c.attn_scale = 1;  // GPT-Neo does not divide scores by sqrt(d_head)
  attention_types(k, c);
  c.o_bias = c.mlp_bias = true;
  c.mlp_act = k.activation("activation_function", "gelu_new");
  c.tie_embeddings = k.boolean_or({"tie_word_embeddings"}, true);
}

}  // namespace

extern const Family kGptNeoFamily = {
    "gpt_neo",
    {"gpt_neo"},
    configure,
    {"transformer."},
    MatrixLayout::OutIn,
    FusedQKV::Blocks,
    {
        {WeightSlot::TokenEmbed, "wte.weight"},
        {WeightSlot::PosEmbed, "wpe.weight"},
        {WeightSlot::AttnNorm, "h.%d.ln_1.weight"},
        {WeightSlot::AttnNormBias, "h.%d.ln_1.bias"},
        {WeightSlot::Q, "h.%d.attn.attention.q_proj.weight"},
        {WeightSlot::K, "h.%d.attn.attention.k_proj.weight"},
        {WeightSlot::V, "h.%d.attn.attention.v_proj.weight"},
        {WeightSlot::O, "h.%d.attn.attention.out_proj.weight"},
        {WeightSlot::OBias, "h.%d.attn.attention.out_proj.bias"},
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
