#include "graph/trace.hpp"

#include "graph/error.hpp"

namespace pathpatch {

// ---- InterventionIndex ---------------------------------------------------------------------

InterventionIndex::InterventionIndex(const Graph& g, ExprTable& exprs, const std::vector<BoundIntervention>& all) {
  for (const BoundIntervention& iv : all) by_act_[iv.act].push_back(iv);
  std::map<std::pair<NodeId, Stage>, std::vector<BoundIntervention>> inside, after;
  for (const auto& [act, list] : by_act_) {
    const Activation& a = g.activation(act);
    auto& dst = (a.is_output ? after : inside)[{a.node, a.stage}];
    for (const BoundIntervention& iv : list)
      if (iv.op != Op::Probe) dst.push_back(iv);  // probes do not change what is computed
  }
  for (auto& [where, list] : inside) inside_[where] = exprs.intern_list(std::move(list));
  for (auto& [where, list] : after) after_[where] = exprs.intern_list(std::move(list));
}

uint32_t InterventionIndex::inside(NodeId node, Stage stage) const {
  auto it = inside_.find({node, stage});
  return it == inside_.end() ? 0 : it->second;
}

uint32_t InterventionIndex::after(NodeId node, Stage stage) const {
  auto it = after_.find({node, stage});
  return it == after_.end() ? 0 : it->second;
}

const std::vector<BoundIntervention>& InterventionIndex::of(ActId act) const {
  static const std::vector<BoundIntervention> none;
  auto it = by_act_.find(act);
  return it == by_act_.end() ? none : it->second;
}

bool InterventionIndex::patched(ActId act) const {
  for (const BoundIntervention& iv : of(act))
    if (iv.op != Op::Probe) return true;
  return false;
}

// ---- Tracer --------------------------------------------------------------------------------

Tracer::Tracer(const Graph& g, ExprTable& exprs, std::vector<uint64_t> input_keys, int64_t seq,
               const InterventionIndex& interventions)
    : g_(g), exprs_(exprs), inputs_(std::move(input_keys)), seq_(seq), iv_(interventions) {
  attn_of_layer_.assign(g.n_layers, -1);
  mlp_of_layer_.assign(g.n_layers, -1);
  head_names_.resize(g.n_layers);
  qkv_names_.resize(g.n_layers);
  attn_sum_of_layer_.assign(g.n_layers, -1);
  mlp_sum_of_layer_.assign(g.n_layers, -1);
  for (NodeId id = 0; id < static_cast<NodeId>(g.nodes().size()); ++id) {
    const Node& n = g.node(id);
    if (n.kind == NodeKind::Residual) {
      bool attn = g.node(n.inputs[1]).kind == NodeKind::Attention;
      (attn ? attn_sum_of_layer_ : mlp_sum_of_layer_)[n.layer] = id;
    }
    if (n.kind != NodeKind::Attention && n.kind != NodeKind::Mlp) continue;
    auto& pos = pos_names_[id];
    for (int64_t p = 0; p < seq; ++p) pos.push_back(n.name + ".pos" + std::to_string(p));
    if (n.kind == NodeKind::Mlp) {
      mlp_of_layer_[n.layer] = id;
      continue;
    }
    attn_of_layer_[n.layer] = id;
    for (int h = 0; h < g.n_heads; ++h) {
      std::string head = n.name + std::to_string(h);  // "a3.head" + "5"
      head_names_[n.layer].push_back(head);
      qkv_names_[n.layer].push_back({head + ".q", head + ".k", head + ".v"});
    }
  }
}

void Tracer::set_reference(std::map<std::pair<NodeId, Stage>, ExprId> steps, std::vector<int64_t> first_difference) {
  ref_steps_ = std::move(steps);
  first_difference_ = std::move(first_difference);
  for (const auto& [where, e] : ref_steps_) ref_exprs_.insert(e);
}

int64_t Tracer::clean_rows(ExprId e) const {
  if (ref_exprs_.count(e)) return seq_;
  auto it = facts_.find(e);
  return it == facts_.end() ? 0 : it->second.clean;
}

ExprId Tracer::intern(Expr e, Stage stage, int64_t clean) {
  const uint32_t ilist = e.interventions;
  const NodeId node = e.node;
  ExprId id = exprs_.intern(std::move(e));
  if (ref_steps_.empty() || ref_exprs_.count(id)) return id;
  // Interventions change the rows they select, and those after them.
  for (const BoundIntervention& iv : exprs_.list(ilist))
    clean = std::min<int64_t>(clean, iv.positions.empty() ? 0 : iv.positions.front());
  auto ref = ref_steps_.find({node, stage});
  if (clean > 0 && ref != ref_steps_.end()) facts_[id] = RowFact{ref->second, clean};
  return id;
}

ExprId Tracer::step(ExprKind kind, NodeId node, Stage stage, std::vector<ExprId> args, uint64_t input,
                    int64_t clean, bool patch_output) {
  if (clean < 0) {  // position-wise and causal steps: clean as long as all they read is
    clean = seq_;
    for (ExprId a : args) clean = std::min(clean, clean_rows(a));
  }
  ExprId e = intern(Expr{kind, node, iv_.inside(node, stage), input, std::move(args)}, stage, clean);
  if (steps_) (*steps_)[{node, stage}] = e;
  if (uint32_t after = iv_.after(node, stage); after && patch_output)
    e = intern(Expr{ExprKind::Patch, node, after, 0, {e}}, stage, clean_rows(e));
  return e;
}

ExprId Tracer::embed(int input) {
  int64_t clean = first_difference_.empty() ? 0 : first_difference_.at(input);
  return step(ExprKind::Embed, g_.lookup_node("emb"), Stage::Embed, {}, inputs_.at(input), clean);
}

ExprId Tracer::attention(int layer, ExprId x) {
  NodeId n = attn_of_layer_.at(layer);
  ExprId z = step(ExprKind::AttnZ, n, Stage::AttnZ, {x});
  return step(ExprKind::AttnOut, n, Stage::AttnOut, {z});
}

ExprId Tracer::attention_heads(int layer, const std::vector<ExprId>& qkv) {
  PP_CHECK(qkv.size() == 3u * g_.n_heads, "attention_heads needs q, k, v for every head");
  bool same = true, per_head = true;
  for (ExprId e : qkv) same = same && e == qkv[0];
  if (same) return attention(layer, qkv[0]);  // canonical form: one input for every head
  for (int h = 0; h < g_.n_heads; ++h) per_head = per_head && qkv[3 * h] == qkv[3 * h + 1] && qkv[3 * h] == qkv[3 * h + 2];
  NodeId n = attn_of_layer_.at(layer);
  ExprId z;
  if (per_head) {
    // Each head reads one input: its z is that head's slice of the whole attention on that input,
    // which other experiments (the plain runs) compute and cache anyway.
    std::vector<ExprId> zs;
    for (int h = 0; h < g_.n_heads; ++h) zs.push_back(step(ExprKind::AttnZ, n, Stage::AttnZ, {qkv[3 * h]}, 0, -1, false));
    int64_t clean = seq_;
    for (ExprId a : zs) clean = std::min(clean, clean_rows(a));
    z = intern(Expr{ExprKind::ZGather, n, 0, 0, zs}, Stage::AttnZ, clean);
    if (uint32_t after = iv_.after(n, Stage::AttnZ)) z = intern(Expr{ExprKind::Patch, n, after, 0, {z}}, Stage::AttnZ, clean_rows(z));
  } else {
    z = step(ExprKind::AttnZHeads, n, Stage::AttnZ, qkv);
  }
  return step(ExprKind::AttnOut, n, Stage::AttnOut, {z});
}

ExprId Tracer::mlp(int layer, ExprId x) { return step(ExprKind::Mlp, mlp_of_layer_.at(layer), Stage::Mlp, {x}); }

ExprId Tracer::rows(NodeId node, const std::vector<ExprId>& parts) {
  PP_CHECK(static_cast<int64_t>(parts.size()) == seq_, "rows needs one part per position");
  bool same = true;
  for (ExprId e : parts) same = same && e == parts[0];
  if (same) return parts[0];  // canonical form: nothing was split
  // Position P is clean when P is before the first change of the part it comes from.
  int64_t clean = seq_;
  for (int64_t P = 0; P < seq_ && clean == seq_; ++P)
    if (P >= clean_rows(parts[P])) clean = P;
  const NodeId prev = g_.node(node).inputs[0];
  const Stage stage = g_.node(prev).kind == NodeKind::Embed ? Stage::Embed : Stage::Residual;
  ExprId id = exprs_.intern(Expr{ExprKind::Rows, node, 0, 0, parts});
  auto ref = ref_steps_.find({prev, stage});
  if (clean > 0 && ref != ref_steps_.end() && !ref_exprs_.count(id)) facts_[id] = RowFact{ref->second, clean};
  return id;
}

ExprId Tracer::residual(NodeId node, ExprId residual, ExprId sublayer) {
  return step(ExprKind::Add, node, Stage::Residual, {residual, sublayer});
}

ExprId Tracer::final(ExprId x) { return step(ExprKind::Final, g_.output(), Stage::Final, {x}); }

ExprId Tracer::plain(int input, std::map<std::pair<NodeId, Stage>, ExprId>* steps) {
  steps_ = steps;
  ExprId x = embed(input);
  for (int L = 0; L < g_.n_layers; ++L) {
    x = residual(attn_sum_of_layer_[L], x, attention(L, x));
    if (mlp_of_layer_[L] >= 0) x = residual(mlp_sum_of_layer_[L], x, mlp(L, x));
  }
  ExprId out = final(x);
  steps_ = nullptr;
  return out;
}

ExprId Tracer::trace(const WhichFn& which, const BranchFn& branch, uint64_t budget) {
  which_ = &which;
  branch_ = &branch;
  budget_ = budget;
  visits_ = 0;
  path_ = Path();
  return value_of(g_.output());
}

int Tracer::ask_which() {
  int k = (*which_)(path_);
  if (k < 0 || k >= static_cast<int>(inputs_.size()))
    throw PredicateError("which() returned " + std::to_string(k) + " for the path " + path_.str() + "; there are " +
                         std::to_string(inputs_.size()) + " inputs (0.." + std::to_string(inputs_.size() - 1) + ")");
  return k;
}

Split Tracer::ask_branch(bool positions_ok, const char* edges_mean) {
  Split s = (*branch_)(path_);
  if (s == Split::Positions && !positions_ok)
    throw PredicateError("branch() returned Split::Positions at " + std::string(path_.back()) + " (path " + path_.str() +
                         "); positions split only at aL.head and fL.head");
  if (s == Split::Edges && !edges_mean)
    throw PredicateError("branch() returned Split::Edges at " + std::string(path_.back()) + " (path " + path_.str() +
                         "), which has a single input edge");
  if (s != Split::None && s != Split::Edges && s != Split::Positions)
    throw PredicateError("branch() returned an invalid Split value at " + path_.str());
  return s;
}

ExprId Tracer::value_of(NodeId id) {
  if (++visits_ > budget_)
    throw BudgetError("the branch/which predicates walk more than " + std::to_string(budget_) +
                      " node visits (path budget); raise RunOptions::path_budget, split less, or use path rules "
                      "(pathpatch/rules.hpp), whose cost is bounded by nodes x automaton states");
  const Node& n = g_.node(id);
  path_.push(&n.name);
  ExprId out = 0;
  switch (n.kind) {
    case NodeKind::Embed: {
      int k = ask_which();
      out = embed(k);
      break;
    }
    case NodeKind::Final:
      out = final(value_of(n.inputs[0]));
      break;
    case NodeKind::Residual: {
      Split s = ask_branch(false, "residual and sub-layer");
      if (s == Split::None) {
        ExprId x = value_of(n.inputs[0]);
        out = residual(id, x, sublayer_on(n.inputs[1], x));
      } else {
        path_.pop();  // the residual edge bypasses this node: its path does not name it
        ExprId r = value_of(n.inputs[0]);
        path_.push(&n.name);
        out = residual(id, r, sublayer(n.inputs[1]));
      }
      break;
    }
    case NodeKind::Attention:
    case NodeKind::Mlp:
      PP_CHECK(false, "sub-layers are reached through their residual node");
  }
  path_.pop();
  return out;
}

ExprId Tracer::sublayer_on(NodeId sub, ExprId x) {
  const Node& n = g_.node(sub);
  return n.kind == NodeKind::Attention ? attention(n.layer, x) : mlp(n.layer, x);
}

ExprId Tracer::sublayer(NodeId sub) {
  const Node& n = g_.node(sub);
  path_.push(&n.name);
  const bool attn = n.kind == NodeKind::Attention;
  Split s = ask_branch(true, attn ? "heads" : nullptr);
  NodeId input = n.inputs[0];
  ExprId out = 0;
  if (s == Split::None) {
    out = sublayer_on(sub, value_of(input));
  } else if (s == Split::Positions) {
    std::vector<ExprId> parts;
    const auto& names = pos_names_.at(sub);
    for (int64_t p = 0; p < seq_; ++p) {
      path_.push(&names[p]);
      parts.push_back(value_of(input));
      path_.pop();
    }
    out = sublayer_on(sub, rows(sub, parts));
  } else {  // Edges at aL.head: one path per head
    std::vector<ExprId> qkv;
    for (int h = 0; h < g_.n_heads; ++h) {
      path_.push(&head_names_[n.layer][h]);
      Split hs = ask_branch(false, "q, k and v");
      if (hs == Split::None) {
        ExprId x = value_of(input);
        qkv.insert(qkv.end(), {x, x, x});
      } else {
        for (int role = 0; role < 3; ++role) {
          path_.push(&qkv_names_[n.layer][h][role]);
          qkv.push_back(value_of(input));
          path_.pop();
        }
      }
      path_.pop();
    }
    out = attention_heads(n.layer, qkv);
  }
  path_.pop();
  return out;
}

}  // namespace pathpatch
