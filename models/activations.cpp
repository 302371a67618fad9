// The model's graph: the skeleton's nodes (graph/graph.hpp) and the TransformerLens activations the
// config's options give each of them.
#include "models/model.hpp"

namespace pathpatch {

Graph build_graph(const ModelConfig& cfg, ModelActs* acts) {
  Skeleton sk;
  sk.n_layers = cfg.n_layers;
  sk.n_heads = cfg.n_heads;
  sk.n_kv_heads = cfg.n_kv_heads;
  sk.has_mlp = !cfg.attn_only;
  sk.parallel = cfg.parallel_residual && !cfg.attn_only;
  Graph g(sk);
  const bool rotary = cfg.rotary_dims > 0;
  ModelActs a;

  auto act = [&](std::string name, NodeId node, int layer, StepKind stage, bool output, const char* axes,
                 bool kv = false) {
    return g.add_activation(Activation{std::move(name), node, layer, stage, output, axes, kv});
  };

  NodeId prev = g.embedding();
  a.embed = act("hook_embed", prev, -1, StepKind::Embed, false, "BTD");
  if (cfg.learned_positions) a.pos_embed = act("hook_pos_embed", prev, -1, StepKind::Embed, false, "BTD");
  StepKind prev_stage = StepKind::Embed;

  for (int L = 0; L < cfg.n_layers; ++L) {
    const std::string b = "blocks." + std::to_string(L) + ".";
    LayerActs la;
    // The residual entering layer L is the value of the node before it (emb, or the last sum).
    la.resid_pre = act(b + "hook_resid_pre", prev, L, prev_stage, true, "BTD");

    const NodeId attn = g.attention(L);
    la.ln1 = act(b + "ln1.hook_normalized", attn, L, StepKind::AttnZ, false, "BTD");
    la.q = act(b + "attn.hook_q", attn, L, StepKind::AttnZ, false, "BTHE");
    la.k = act(b + "attn.hook_k", attn, L, StepKind::AttnZ, false, "BTHE", true);
    la.v = act(b + "attn.hook_v", attn, L, StepKind::AttnZ, false, "BTHE", true);
    if (rotary) {
      la.rot_q = act(b + "attn.hook_rot_q", attn, L, StepKind::AttnZ, false, "BTHE");
      la.rot_k = act(b + "attn.hook_rot_k", attn, L, StepKind::AttnZ, false, "BTHE", true);
    }
    la.scores = act(b + "attn.hook_attn_scores", attn, L, StepKind::AttnZ, false, "BHTS");
    la.pattern = act(b + "attn.hook_pattern", attn, L, StepKind::AttnZ, false, "BHTS");
    la.z = act(b + "attn.hook_z", attn, L, StepKind::AttnZ, true, "BTHE");
    la.result = act(b + "attn.hook_result", attn, L, StepKind::AttnOut, false, "BTHD");
    if (cfg.post_norms) la.ln1_post = act(b + "ln1_post.hook_normalized", attn, L, StepKind::AttnOut, false, "BTD");
    la.attn_out = act(b + "hook_attn_out", attn, L, StepKind::AttnOut, true, "BTD");

    // A parallel block's aL (resid_pre + attention) is no TransformerLens activation: it has no
    // resid_mid, its MLP reads resid_pre.
    const NodeId asum = g.attn_sum(L);
    if (!g.skeleton().parallel) la.resid_mid = act(b + "hook_resid_mid", asum, L, StepKind::Add, true, "BTD");
    prev = asum;
    if (cfg.attn_only) {
      la.resid_post = act(b + "hook_resid_post", asum, L, StepKind::Add, true, "BTD");
    } else {
      const NodeId mlp = g.mlp(L);
      la.ln2 = act(b + "ln2.hook_normalized", mlp, L, StepKind::Mlp, false, "BTD");
      la.pre = act(b + "mlp.hook_pre", mlp, L, StepKind::Mlp, false, "BTF");
      if (cfg.gated_mlp) la.pre_linear = act(b + "mlp.hook_pre_linear", mlp, L, StepKind::Mlp, false, "BTF");
      la.post = act(b + "mlp.hook_post", mlp, L, StepKind::Mlp, false, "BTF");
      if (cfg.post_norms) la.ln2_post = act(b + "ln2_post.hook_normalized", mlp, L, StepKind::Mlp, false, "BTD");
      la.mlp_out = act(b + "hook_mlp_out", mlp, L, StepKind::Mlp, true, "BTD");
      const NodeId fsum = g.mlp_sum(L);
      la.resid_post = act(b + "hook_resid_post", fsum, L, StepKind::Add, true, "BTD");
      prev = fsum;
    }
    prev_stage = StepKind::Add;
    a.layers.push_back(la);
  }
  a.ln_final = act("ln_final.hook_normalized", g.output(), -1, StepKind::Final, true, "BTD");
  if (acts) *acts = std::move(a);
  return g;
}

}  // namespace pathpatch
