// The model's graph: node names (nano-path-patching) and activation names (TransformerLens).
#include "models/model.hpp"

namespace pathpatch {

Graph build_graph(const ModelConfig& cfg, ModelActs* acts) {
  Graph g;
  g.n_layers = cfg.n_layers;
  g.n_heads = cfg.n_heads;
  g.n_kv_heads = cfg.n_kv_heads;
  g.has_mlp = !cfg.attn_only;
  const bool llama = cfg.family == Family::Llama;
  ModelActs a;

  auto act = [&](std::string name, NodeId node, int layer, Stage stage, bool output, const char* axes,
                 bool kv = false) {
    return g.add_activation(Activation{std::move(name), node, layer, stage, output, axes, kv});
  };

  NodeId prev = g.add_node("emb", NodeKind::Embed, -1, {});
  a.embed = act("hook_embed", prev, -1, Stage::Embed, false, "BTD");
  if (!llama) a.pos_embed = act("hook_pos_embed", prev, -1, Stage::Embed, false, "BTD");
  Stage prev_stage = Stage::Embed;

  for (int L = 0; L < cfg.n_layers; ++L) {
    std::string l = std::to_string(L), b = "blocks." + l + ".";
    LayerActs la;
    // The residual entering layer L is the value of the node before it (emb, or the last sum).
    la.resid_pre = act(b + "hook_resid_pre", prev, L, prev_stage, true, "BTD");

    NodeId attn = g.add_node("a" + l + ".head", NodeKind::Attention, L, {prev});
    la.ln1 = act(b + "ln1.hook_normalized", attn, L, Stage::AttnZ, false, "BTD");
    la.q = act(b + "attn.hook_q", attn, L, Stage::AttnZ, false, "BTHE");
    la.k = act(b + "attn.hook_k", attn, L, Stage::AttnZ, false, "BTHE", true);
    la.v = act(b + "attn.hook_v", attn, L, Stage::AttnZ, false, "BTHE", true);
    if (llama) {
      la.rot_q = act(b + "attn.hook_rot_q", attn, L, Stage::AttnZ, false, "BTHE");
      la.rot_k = act(b + "attn.hook_rot_k", attn, L, Stage::AttnZ, false, "BTHE", true);
    }
    la.scores = act(b + "attn.hook_attn_scores", attn, L, Stage::AttnZ, false, "BHTS");
    la.pattern = act(b + "attn.hook_pattern", attn, L, Stage::AttnZ, false, "BHTS");
    la.z = act(b + "attn.hook_z", attn, L, Stage::AttnZ, true, "BTHE");
    la.result = act(b + "attn.hook_result", attn, L, Stage::AttnOut, false, "BTHD");
    la.attn_out = act(b + "hook_attn_out", attn, L, Stage::AttnOut, true, "BTD");

    NodeId asum = g.add_node("a" + l, NodeKind::Residual, L, {prev, attn});
    la.resid_mid = act(b + "hook_resid_mid", asum, L, Stage::Residual, true, "BTD");
    prev = asum;
    if (cfg.attn_only) {
      la.resid_post = act(b + "hook_resid_post", asum, L, Stage::Residual, true, "BTD");
    } else {
      NodeId mlp = g.add_node("f" + l + ".head", NodeKind::Mlp, L, {asum});
      la.ln2 = act(b + "ln2.hook_normalized", mlp, L, Stage::Mlp, false, "BTD");
      la.pre = act(b + "mlp.hook_pre", mlp, L, Stage::Mlp, false, "BTF");
      if (llama) la.pre_linear = act(b + "mlp.hook_pre_linear", mlp, L, Stage::Mlp, false, "BTF");
      la.post = act(b + "mlp.hook_post", mlp, L, Stage::Mlp, false, "BTF");
      la.mlp_out = act(b + "hook_mlp_out", mlp, L, Stage::Mlp, true, "BTD");
      NodeId fsum = g.add_node("f" + l, NodeKind::Residual, L, {asum, mlp});
      la.resid_post = act(b + "hook_resid_post", fsum, L, Stage::Residual, true, "BTD");
      prev = fsum;
    }
    prev_stage = Stage::Residual;
    a.layers.push_back(la);
  }
  NodeId fin = g.add_node("ln_final", NodeKind::Final, -1, {prev});
  a.ln_final = act("ln_final.hook_normalized", fin, -1, Stage::Final, true, "BTD");
  g.set_output(fin);
  if (acts) *acts = std::move(a);
  return g;
}

}  // namespace pathpatch
