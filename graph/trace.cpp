#include "graph/trace.hpp"

#include "graph/error.hpp"

namespace pathpatch {

// ---- InterventionIndex ---------------------------------------------------------------------

InterventionIndex::InterventionIndex(const Graph& g, ExprTable& exprs, const std::vector<BoundIntervention>& all) {
  for (const BoundIntervention& iv : all) by_act_[iv.act].push_back(iv);
  std::map<std::pair<NodeId, StepKind>, std::vector<BoundIntervention>> inside, after;
  for (const auto& [act, list] : by_act_) {
    const Activation& a = g.activation(act);
    auto& dst = (a.is_output ? after : inside)[{a.node, a.stage}];
    for (const BoundIntervention& iv : list)
      if (iv.op != Op::Probe) dst.push_back(iv);  // probes do not change what is computed
  }
  for (auto& [where, list] : inside) inside_[where] = exprs.intern_list(std::move(list));
  for (auto& [where, list] : after) after_[where] = exprs.intern_list(std::move(list));
}

uint32_t InterventionIndex::inside(NodeId node, StepKind stage) const {
  auto it = inside_.find({node, stage});
  return it == inside_.end() ? 0 : it->second;
}

uint32_t InterventionIndex::after(NodeId node, StepKind stage) const {
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
               const InterventionIndex& interventions, const PathAlphabet* names)
    : g_(g), names_(names), exprs_(exprs), inputs_(std::move(input_keys)), seq_(seq), iv_(interventions) {}

int64_t Tracer::clean_rows(ExprId e) const {
  if (ref_ && ref_->exprs.count(e)) return seq_;
  auto it = facts_.find(e);
  return it == facts_.end() ? 0 : it->second.clean;
}

ExprId Tracer::intern(Expr e, StepKind stage, int64_t clean) {
  const uint32_t ilist = e.interventions;
  const NodeId node = e.node;
  ExprId id = exprs_.intern(std::move(e));
  if (!ref_ || ref_->exprs.count(id)) return id;
  // Interventions change the rows they select, and those after them.
  for (const BoundIntervention& iv : exprs_.list(ilist))
    clean = std::min<int64_t>(clean, iv.positions.empty() ? 0 : iv.positions.front());
  auto ref = ref_->steps.find({node, stage});
  if (clean > 0 && ref != ref_->steps.end()) facts_[id] = RowFact{ref->second, clean};
  return id;
}

ExprId Tracer::step(StepKind kind, NodeId node, std::vector<ExprId> args, uint64_t input, int64_t clean,
                    bool patch_output) {
  const StepKind stage = traits(kind).stage;
  if (clean < 0) {  // position-wise and causal steps: clean as long as all they read is
    clean = seq_;
    for (ExprId a : args) clean = std::min(clean, clean_rows(a));
  }
  ExprId e = intern(Expr{kind, node, iv_.inside(node, stage), input, std::move(args)}, stage, clean);
  if (steps_) (*steps_)[{node, stage}] = e;
  if (uint32_t after = iv_.after(node, stage); after && patch_output)
    e = intern(Expr{StepKind::Patch, node, after, 0, {e}}, stage, clean_rows(e));
  return e;
}

ExprId Tracer::embed(int input) {
  int64_t clean = ref_ ? ref_->first_difference.at(input) : 0;
  return step(StepKind::Embed, g_.embedding(), {}, inputs_.at(input), clean);
}

ExprId Tracer::attention(int layer, ExprId x) {
  NodeId n = g_.attention(layer);
  ExprId z = step(StepKind::AttnZ, n, {x});
  return step(StepKind::AttnOut, n, {z});
}

ExprId Tracer::attention_heads(int layer, const std::vector<ExprId>& qkv) {
  const int H = g_.n_heads();
  PP_CHECK(qkv.size() == 3u * H, "attention_heads needs q, k, v for every head");
  bool same = true, per_head = true;
  for (ExprId e : qkv) same = same && e == qkv[0];
  if (same) return attention(layer, qkv[0]);  // canonical form: one input for every head
  for (int h = 0; h < H; ++h) per_head = per_head && qkv[3 * h] == qkv[3 * h + 1] && qkv[3 * h] == qkv[3 * h + 2];
  NodeId n = g_.attention(layer);
  ExprId z;
  if (per_head) {
    // Each head reads one input: its z is that head's slice of the whole attention on that input,
    // which other experiments (the plain runs) compute and cache anyway.
    std::vector<ExprId> zs;
    for (int h = 0; h < H; ++h) zs.push_back(step(StepKind::AttnZ, n, {qkv[3 * h]}, 0, -1, false));
    int64_t clean = seq_;
    for (ExprId a : zs) clean = std::min(clean, clean_rows(a));
    z = intern(Expr{StepKind::ZGather, n, 0, 0, zs}, StepKind::AttnZ, clean);
    if (uint32_t after = iv_.after(n, StepKind::AttnZ))
      z = intern(Expr{StepKind::Patch, n, after, 0, {z}}, StepKind::AttnZ, clean_rows(z));
  } else {
    refuse_split_kv(n, qkv);
    z = step(StepKind::AttnZHeads, n, qkv);
  }
  return step(StepKind::AttnOut, n, {z});
}

// Key/value activations count key/value heads: they exist only while the query heads sharing one
// read the same input.
void Tracer::refuse_split_kv(NodeId attn, const std::vector<ExprId>& qkv) const {
  const int H = g_.n_heads(), groups = H / g_.n_kv_heads();
  bool shared = true;
  for (int h = 0; h < H; ++h) {
    const int first = h / groups * groups;
    shared = shared && qkv[3 * h + 1] == qkv[3 * first + 1] && qkv[3 * h + 2] == qkv[3 * first + 2];
  }
  if (shared) return;
  for (ActId a : g_.activations_of(attn, StepKind::AttnZ))
    if (g_.activation(a).kv_heads && iv_.any(a))
      throw PredicateError(g_.activation(a).name + " is per key/value head, but the query heads of one group read "
                           "different inputs under this split; read or patch hook_q, hook_z or hook_result instead");
}

ExprId Tracer::mlp(int layer, ExprId x) { return step(StepKind::Mlp, g_.mlp(layer), {x}); }

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
  const StepKind stage = g_.node(prev).is(PathName::Emb) ? StepKind::Embed : StepKind::Add;
  ExprId id = exprs_.intern(Expr{StepKind::Rows, node, 0, 0, parts});
  if (!ref_ || ref_->exprs.count(id)) return id;
  auto ref = ref_->steps.find({prev, stage});
  if (clean > 0 && ref != ref_->steps.end()) facts_[id] = RowFact{ref->second, clean};
  return id;
}

ExprId Tracer::residual(NodeId node, ExprId residual, ExprId sublayer) {
  return step(StepKind::Add, node, {residual, sublayer});
}

ExprId Tracer::final(ExprId x) { return step(StepKind::Final, g_.output(), {x}); }

ExprId Tracer::sublayer_on(NodeId sub, ExprId x) {
  const Node& n = g_.node(sub);
  return n.name().block == Block::Attn ? attention(n.layer(), x) : mlp(n.layer(), x);
}

ExprId Tracer::plain(int input, std::map<std::pair<NodeId, StepKind>, ExprId>* steps) {
  steps_ = steps;
  ExprId x = embed(input);
  for (int L = 0; L < g_.n_layers(); ++L) {
    const ExprId block_input = x;
    x = residual(g_.attn_sum(L), x, attention(L, x));
    if (g_.has_mlp()) x = residual(g_.mlp_sum(L), x, mlp(L, g_.skeleton().parallel ? block_input : x));
  }
  ExprId out = final(x);
  steps_ = nullptr;
  return out;
}

ExprId Tracer::trace(const WhichFn& which, const BranchFn& branch, uint64_t budget) {
  PP_CHECK(names_ && names_->seq() == seq_, "tracing predicates needs the path names of the run's length");
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
                         "); positions split only at ln_final, aL.head, fL.head and a head's input aL.headH.q|k|v");
  if (s == Split::Edges && !edges_mean)
    throw PredicateError("branch() returned Split::Edges at " + std::string(path_.back()) + " (path " + path_.str() +
                         "), which has a single input edge");
  if (s != Split::None && s != Split::Edges && s != Split::Positions)
    throw PredicateError("branch() returned an invalid Split value at " + path_.str());
  return s;
}

// `residual_in`, for a residual sum: receives the value its residual edge read (a parallel block's
// MLP reads it too).
ExprId Tracer::value_of(NodeId id, ExprId* residual_in) {
  if (++visits_ > budget_)
    throw BudgetError("the branch/which predicates walk more than " + std::to_string(budget_) +
                      " node visits (path budget); raise RunOptions::path_budget, split less, or use path rules "
                      "(pathpatch/rules.hpp), whose cost is bounded by nodes x automaton states");
  const Node& n = g_.node(id);
  enter(names_->node(id));
  ExprId out = 0;
  switch (n.name().kind) {
    case PathName::Emb:
      out = embed(ask_which());
      break;
    case PathName::Final:
      if (ask_branch(true, nullptr) == Split::None)
        out = final(value_of(n.inputs[0]));
      else
        out = final(per_position(id, [&](int64_t p) { return names_->final_position(p); }));
      break;
    case PathName::Residual: {
      Split s = ask_branch(false, "residual and sub-layer");
      const NodeId sub = n.inputs[1], sub_input = g_.node(sub).inputs[0];
      ExprId r = 0;
      if (s == Split::None) {
        // One path for the whole node: the sub-layer reads what the residual edge read, its own
        // input (sequential) or the value its input read as residual (parallel; path.hpp).
        ExprId before = 0;
        r = value_of(n.inputs[0], sub_input == n.inputs[0] ? nullptr : &before);
        PP_CHECK(sub_input == n.inputs[0] || sub_input == g_.node(n.inputs[0]).inputs[0],
                 "a sub-layer reads the residual of its own block");
        out = residual(id, r, sublayer_on(sub, sub_input == n.inputs[0] ? r : before));
      } else {
        path_.pop();  // the residual edge bypasses this node: its path does not name it
        r = value_of(n.inputs[0]);
        enter(names_->node(id));
        out = residual(id, r, sublayer(sub));
      }
      if (residual_in) *residual_in = r;
      break;
    }
    case PathName::Sublayer:
    default:
      PP_CHECK(false, "sub-layers are reached through their residual node");
  }
  path_.pop();
  return out;
}

void Tracer::enter(int symbol) {
  if (names_->interned(symbol)) return path_.push(&names_->at(symbol));
  auto [it, made] = made_.try_emplace(symbol);
  if (made) it->second = PathEntry{names_->name(symbol), names_->name(symbol).str()};
  path_.push(&it->second);
}

ExprId Tracer::per_position(NodeId node, const std::function<int(int64_t)>& symbol) {
  const NodeId input = g_.node(node).inputs[0];
  std::vector<ExprId> parts;
  for (int64_t p = 0; p < seq_; ++p) {
    enter(symbol(p));
    parts.push_back(value_of(input));
    path_.pop();
  }
  return rows(node, parts);
}

// One input of a head whose inputs split: its own path, or one per position.
ExprId Tracer::head_input(int layer, int head, Role role, NodeId sub) {
  enter(names_->head_input(layer, head, role));
  const NodeId input = g_.node(sub).inputs[0];
  ExprId out = 0;
  if (ask_branch(true, nullptr) == Split::None)
    out = value_of(input);
  else
    out = per_position(sub, [&](int64_t p) { return names_->head_input_position(layer, head, role, p); });
  path_.pop();
  return out;
}

ExprId Tracer::sublayer(NodeId sub) {
  const Node& n = g_.node(sub);
  enter(names_->node(sub));
  const bool attn = n.name().block == Block::Attn;
  Split s = ask_branch(true, attn ? "heads" : nullptr);
  const NodeId input = n.inputs[0];
  const int L = n.layer();
  ExprId out = 0;
  if (s == Split::None) {
    out = sublayer_on(sub, value_of(input));
  } else if (s == Split::Positions) {
    out = sublayer_on(sub, per_position(sub, [&](int64_t p) { return names_->position(sub, p); }));
  } else {  // Edges at aL.head: one path per head
    std::vector<ExprId> qkv;
    for (int h = 0; h < g_.n_heads(); ++h) {
      enter(names_->head(L, h));
      Split hs = ask_branch(false, "q, k and v");
      if (hs == Split::None) {
        ExprId x = value_of(input);
        qkv.insert(qkv.end(), {x, x, x});
      } else {
        for (Role r : {Role::Q, Role::K, Role::V}) qkv.push_back(head_input(L, h, r, sub));
      }
      path_.pop();
    }
    out = attention_heads(L, qkv);
  }
  path_.pop();
  return out;
}

}  // namespace pathpatch
