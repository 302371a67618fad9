#include "pathpatch/graph/evaluator.hpp"

#include <cstring>

#include "pathpatch/graph/error.hpp"
#include "pathpatch/graph/kernels.hpp"

namespace pathpatch {

// ---- ComputeContext ------------------------------------------------------------------------

const std::vector<BoundIntervention>& ComputeContext::entries(ActId act) const {
  if (own_run_) return ev_->iv_.of(act);
  static const std::vector<BoundIntervention> none;  // replace sources run plain
  return none;
}

bool ComputeContext::wants(ActId act) const { return act == capture_ || !entries(act).empty(); }

void ComputeContext::emit(ActId act, Tensor& value) {
  if (act == capture_) captured_ = value;
  const auto& list = entries(act);
  if (list.empty()) return;
  const Activation& info = ev_->g_.activation(act);
  for (size_t i = 0; i < list.size(); ++i) {
    const BoundIntervention& iv = list[i];
    if (iv.op == Op::Probe) {
      if (!record_) continue;
      bool changed_later = false;
      for (size_t j = i + 1; j < list.size(); ++j) changed_later |= list[j].op != Op::Probe;
      ev_->probes_.push_back(ProbeRecord{iv.label, info.name, act, expr_, changed_later ? value.clone() : value});
      continue;
    }
    const Tensor* source = iv.op == Op::Replace ? &ev_->source_for(iv) : nullptr;
    if (!value.writable()) value = value.clone();
    apply_intervention(info, iv, value, source);
  }
}

// ---- Evaluator -----------------------------------------------------------------------------

Evaluator::Evaluator(const Backend& backend, Cache& cache, const Batch& layout, const InterventionIndex& interventions)
    : backend_(backend), g_(backend.graph()), cache_(cache), exprs_(cache.exprs()), layout_(layout),
      iv_(interventions) {}

Stage Evaluator::stage_of(const Expr& e) const {
  switch (e.kind) {
    case ExprKind::Embed: return Stage::Embed;
    case ExprKind::AttnZ:
    case ExprKind::AttnZHeads: return Stage::AttnZ;
    case ExprKind::AttnOut: return Stage::AttnOut;
    case ExprKind::Mlp: return Stage::Mlp;
    case ExprKind::Add: return Stage::Residual;
    case ExprKind::Final: return Stage::Final;
    case ExprKind::Patch: return stage_of(exprs_.get(e.args[0]));
    case ExprKind::Rows: break;
  }
  PP_CHECK(false, "Rows expressions have no stage");
  return Stage::Embed;
}

const std::vector<ActId>& Evaluator::acts(NodeId node, Stage stage, bool outputs) const {
  auto it = acts_.find({node, stage});
  if (it == acts_.end()) {
    std::pair<std::vector<ActId>, std::vector<ActId>> split;
    for (ActId a : g_.activations_of(node, stage))
      (g_.activation(a).is_output ? split.second : split.first).push_back(a);
    it = acts_.emplace(std::make_pair(node, stage), std::move(split)).first;
  }
  return outputs ? it->second.second : it->second.first;
}

bool Evaluator::own_run(const Expr& e) const {
  if (e.kind == ExprKind::Rows) return true;
  Stage s = stage_of(e);
  return e.interventions == (e.kind == ExprKind::Patch ? iv_.after(e.node, s) : iv_.inside(e.node, s));
}

bool Evaluator::has_internal_probes(const Expr& e) const {
  if (e.kind == ExprKind::Rows || !own_run(e)) return false;
  bool patch = e.kind == ExprKind::Patch;
  for (ActId a : acts(e.node, stage_of(e), patch))
    for (const BoundIntervention& iv : iv_.of(a))
      if (iv.op == Op::Probe) return true;
  return false;
}

bool Evaluator::has_probes(const Expr& e) const {
  if (e.kind == ExprKind::Rows) return false;
  for (bool outputs : {false, true})
    for (ActId a : acts(e.node, stage_of(e), outputs))
      for (const BoundIntervention& iv : iv_.of(a))
        if (iv.op == Op::Probe) return true;
  return false;
}

void Evaluator::record_probes(ExprId root) {
  // Children before parents, so records come in the order of the forward.
  std::vector<ExprId> order;
  std::unordered_set<ExprId> seen;
  std::vector<std::pair<ExprId, bool>> stack{{root, false}};
  while (!stack.empty()) {
    auto [e, expanded] = stack.back();
    stack.pop_back();
    if (expanded) {
      order.push_back(e);
      continue;
    }
    if (!seen.insert(e).second) continue;
    stack.push_back({e, true});
    for (ExprId a : exprs_.get(e).args) stack.push_back({a, false});
  }
  for (ExprId e : order)
    if (!visited_.count(e) && has_probes(exprs_.get(e))) value(e);
}

void Evaluator::record_output_probes(ExprId id, const Expr& e, const Tensor& v) {
  if (e.kind == ExprKind::Rows || e.kind == ExprKind::Patch) return;
  for (ActId a : acts(e.node, stage_of(e), true)) {
    if (iv_.patched(a)) continue;  // recorded in order by the Patch step that follows
    for (const BoundIntervention& iv : iv_.of(a)) probes_.push_back(ProbeRecord{iv.label, g_.activation(a).name, a, id, v});
  }
}

Tensor Evaluator::value(ExprId id) {
  const Expr& e = exprs_.get(id);
  const bool first = recording_ && visited_.insert(id).second;
  if (!(first && has_internal_probes(e))) {
    if (auto hit = cache_.get(id)) {
      ++stats_.cache_hits;
      stats_.flops_saved += cache_.cost(id);
      if (first) record_output_probes(id, e, *hit);
      return *hit;
    }
  }
  Tensor v = compute(id, -1, nullptr, first);
  cache_.put(id, v);
  if (first) record_output_probes(id, e, v);
  return v;
}

const Tensor& Evaluator::source_for(const BoundIntervention& iv) {
  uint64_t key = (uint64_t(iv.source) << 32) | uint32_t(iv.act);
  auto it = sources_.find(key);
  if (it != sources_.end()) return it->second;
  bool was_recording = recording_;
  recording_ = false;  // a source is a plain forward on another input: no probes there
  Tensor t;
  if (g_.activation(iv.act).is_output) {
    t = value(iv.source);
  } else if (auto hit = cache_.get(iv.source, iv.act + 1)) {
    t = *hit;
  } else {
    Tensor captured;
    Tensor v = compute(iv.source, iv.act, &captured, false);
    cache_.put(iv.source, v);
    cache_.put(iv.source, captured, iv.act + 1);
    t = captured;
  }
  recording_ = was_recording;
  return sources_.emplace(key, std::move(t)).first->second;
}

Tensor Evaluator::compute(ExprId id, ActId capture, Tensor* captured, bool record) {
  const Expr& e = exprs_.get(id);
  ComputeContext ctx;
  ctx.ev_ = this;
  ctx.expr_ = id;
  ctx.own_run_ = own_run(e);
  ctx.record_ = record;
  ctx.capture_ = capture;
  const int layer = e.node >= 0 ? g_.node(e.node).layer : -1;
  Tensor v;
  switch (e.kind) {
    case ExprKind::Embed:
      v = backend_.embed(exprs_.input(e.input), ctx);
      break;
    case ExprKind::Rows:
      v = assemble_rows(e);
      break;
    case ExprKind::AttnZ: {
      HeadSources src;
      src.x.push_back(value(e.args[0]));
      src.q.assign(g_.n_heads, 0);
      src.k = src.v = src.q;
      v = backend_.attention_z(layer, src, layout_, ctx);
      break;
    }
    case ExprKind::AttnZHeads: {
      HeadSources src;
      std::vector<ExprId> distinct;
      auto index_of = [&](ExprId a) {
        for (size_t i = 0; i < distinct.size(); ++i)
          if (distinct[i] == a) return static_cast<int>(i);
        distinct.push_back(a);
        src.x.push_back(value(a));
        return static_cast<int>(distinct.size() - 1);
      };
      for (int h = 0; h < g_.n_heads; ++h) {
        src.q.push_back(index_of(e.args[3 * h]));
        src.k.push_back(index_of(e.args[3 * h + 1]));
        src.v.push_back(index_of(e.args[3 * h + 2]));
      }
      v = backend_.attention_z(layer, src, layout_, ctx);
      break;
    }
    case ExprKind::AttnOut:
      v = backend_.attention_out(layer, value(e.args[0]), ctx);
      break;
    case ExprKind::Mlp:
      v = backend_.mlp(layer, value(e.args[0]), ctx);
      break;
    case ExprKind::Add: {
      Tensor a = value(e.args[0]);
      Tensor b = value(e.args[1]);
      PP_CHECK(a.shape() == b.shape(), "residual sum of different shapes");
      v = Tensor::uninitialized(a.shape());
      kernels::add(a.data(), b.data(), a.numel(), v.data_mut());
      ctx.add_flops(static_cast<double>(a.numel()));
      break;
    }
    case ExprKind::Final:
      v = backend_.final_norm(value(e.args[0]), ctx);
      break;
    case ExprKind::Patch:
      v = patch(id, e, value(e.args[0]), record);
      break;
  }
  ++stats_.computed;
  stats_.flops += ctx.flops_;
  double cost = ctx.flops_;
  for (ExprId a : e.args) cost += cache_.cost(a);
  cache_.set_cost(id, cost);
  if (captured) {
    PP_CHECK(ctx.captured_.defined(), "activation " + g_.activation(capture).name + " was not computed");
    *captured = ctx.captured_;
  }
  return v;
}

Tensor Evaluator::patch(ExprId id, const Expr& e, Tensor x, bool record) {
  Tensor v = x.clone();
  ComputeContext ctx;
  ctx.ev_ = this;
  ctx.expr_ = id;
  ctx.own_run_ = own_run(e);
  ctx.record_ = record;
  for (ActId a : acts(e.node, stage_of(e), true)) ctx.emit(a, v);
  return v;
}

Tensor Evaluator::assemble_rows(const Expr& e) {
  // Row P of the result is row P of args[P]; rows are positions (axis 1 of [B, T, D]).
  Tensor first = value(e.args[0]);
  const Shape& shape = first.shape();
  const int64_t B = shape[0], T = shape[1], D = first.numel() / (B * T);
  Tensor out = Tensor::uninitialized(shape);
  float* dst = out.data_mut();
  for (int64_t p = 0; p < T; ++p) {
    Tensor part = p == 0 ? first : value(e.args[p]);
    for (int64_t b = 0; b < B; ++b)
      std::memcpy(dst + (b * T + p) * D, part.data() + (b * T + p) * D, D * sizeof(float));
  }
  return out;
}

}  // namespace pathpatch
