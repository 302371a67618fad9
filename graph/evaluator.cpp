// The evaluator's second phase: running a finished plan (planner.cpp), one compute function per
// kind of step (evaluator.hpp).
#include "graph/evaluator.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>

#include "graph/error.hpp"
#include "graph/kernels.hpp"
#include "graph/plan.hpp"

namespace pathpatch {

namespace {

// The distinct residual inputs of an attention step and, per query head, which of them its q, k
// and v read: AttnZ has one input for every head, AttnZHeads a (q, k, v) triple per head.
// `fetch` gives an input's value for the positions the step reads.
template <class Fetch>
HeadSources head_sources(const Expr& e, int n_heads, Fetch&& fetch) {
  HeadSources in;
  std::vector<ExprId> distinct;
  auto index_of = [&](ExprId a) {
    for (size_t i = 0; i < distinct.size(); ++i)
      if (distinct[i] == a) return static_cast<int>(i);
    distinct.push_back(a);
    in.x.push_back(fetch(a));
    return static_cast<int>(distinct.size() - 1);
  };
  const bool shared = e.kind == StepKind::AttnZ;
  for (int h = 0; h < n_heads; ++h) {
    in.q.push_back(index_of(e.args[shared ? 0 : 3 * h]));
    in.k.push_back(index_of(e.args[shared ? 0 : 3 * h + 1]));
    in.v.push_back(index_of(e.args[shared ? 0 : 3 * h + 2]));
  }
  return in;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

// ---- StepContext ---------------------------------------------------------------------------

bool Evaluator::StepContext::wants(ActId act) const {
  return std::find(captures_.begin(), captures_.end(), act) != captures_.end() || !ev_.entries(expr_, act).empty();
}

void Evaluator::StepContext::emit(ActId act, Tensor& value) {
  if (std::find(captures_.begin(), captures_.end(), act) != captures_.end()) captured_[act] = value;
  const std::vector<BoundIntervention> list = ev_.entries(expr_, act);
  if (list.empty()) return;
  const Activation& info = ev_.g_.activation(act);
  for (size_t i = 0; i < list.size(); ++i) {
    const BoundIntervention& iv = list[i];
    if (iv.op == Op::Probe) {
      if (!record_) continue;
      bool changed_later = false;
      for (size_t j = i + 1; j < list.size(); ++j) changed_later |= list[j].op != Op::Probe;
      ev_.probes_.push_back(ProbeRecord{iv.label, info.name, act, expr_, changed_later ? value.clone() : value});
      continue;
    }
    Tensor source;
    if (iv.op == Op::Replace) {
      source = ev_.source_value(iv);
      if (source.size(1) != value.size(1)) source = slice1(source, pos_offset_, pos_offset_ + value.size(1));
    }
    if (!value.writable()) value = value.clone();
    apply_intervention(info, iv, value, source.defined() ? &source : nullptr, pos_offset_);
  }
}

const Tensor& Evaluator::StepContext::captured(ActId act) const {
  auto it = captured_.find(act);
  PP_CHECK(it != captured_.end(), "activation " + ev_.g_.activation(act).name + " was not computed");
  return it->second;
}

// ---- The plan, start to end ----------------------------------------------------------------

Evaluator::Evaluator(const Backend& backend, Cache& cache, const Batch& layout, const InterventionIndex& interventions,
                     const RowFacts* facts)
    : backend_(backend), g_(backend.graph()), cache_(cache), exprs_(cache.exprs()), layout_(layout),
      seq_(layout.seq), iv_(interventions), facts_(facts) {}

Evaluator::~Evaluator() = default;

std::vector<Tensor> Evaluator::values(const std::vector<ExprId>& roots, Window rows) {
  Plan plan;
  for (;;) {
    for (ExprId r : roots) collect(r, plan);
    if (plan.unexpanded_sources.empty()) break;
    Plan again;  // with the sources that must run expanded where they first appear
    again.recompute = std::move(plan.recompute);
    again.recompute.insert(plan.unexpanded_sources.begin(), plan.unexpanded_sources.end());
    plan = std::move(again);
  }
  mark_run(roots, plan);
  for (ExprId r : roots) {
    demand(r, rows, plan);
    plan.tasks.at(r).root = true;
  }
  for (auto it = plan.order.rbegin(); it != plan.order.rend(); ++it) plan_step(*it, plan);
  execute(plan);
  std::vector<Tensor> out;
  for (ExprId r : roots) out.push_back(rows_of(r, rows, plan));
  return out;
}

Tensor Evaluator::value(ExprId e) { return values({e}, {0, seq_})[0]; }

void Evaluator::execute(Plan& plan) {
  plan_ = &plan;
  // Steps run rank by rank; at each rank references first (they serve the others' first
  // positions and prefixes), then the rest, stackable ones grouped across all experiments.
  std::unordered_set<ExprId> refs;
  std::map<int, std::vector<ExprId>> by_rank;
  for (ExprId e : plan.order) {
    Task& t = plan.tasks.at(e);
    if (t.need.empty() || t.cached) continue;
    by_rank[step_rank(exprs_, e)].push_back(e);
    if (ExprId ref = reference(e)) refs.insert(ref);
    for (ExprId d : reads(e))  // consumers, to let go of values nobody reads any more
      if (auto it = plan.tasks.find(d); it != plan.tasks.end()) ++it->second.consumers;
  }
  for (auto& [rank, steps] : by_rank) {
    std::stable_partition(steps.begin(), steps.end(), [&](ExprId e) { return refs.count(e) > 0; });
    // Stacking changes the GEMMs' shapes, and so the last bits of their sums: the run's own steps
    // stack only with the run's (the experiments of a batch), never with replace sources.
    std::map<std::tuple<int, NodeId, int64_t, int64_t, int64_t, bool>, std::vector<ExprId>> groups;
    for (ExprId e : steps) {
      const Task& t = plan.tasks.at(e);
      const Expr& x = exprs_.get(e);
      if (t.compute.empty()) {  // every position comes from the reference
        finish(e, Tensor(), plan);
      } else if (!t.alone && traits(x.kind).stackable && x.interventions == 0 && !refs.count(e)) {
        groups[{static_cast<int>(x.kind), x.node, t.compute.lo, t.compute.hi, t.kv_lo, t.in_run}].push_back(e);
      } else {
        run(Call{{e}, t.compute, t.kv_lo, t.alone}, plan);
      }
    }
    for (const auto& [key, group] : groups) {
      const Task& t = plan.tasks.at(group[0]);
      run(Call{group, t.compute, t.kv_lo, false}, plan);
    }
  }
  plan_ = nullptr;
}

// Computes one call with the function for its kind, then hands each expression its rows.
void Evaluator::run(const Call& c, Plan& plan) {
  const ExprId e0 = c.exprs[0];
  const Expr& x = exprs_.get(e0);
  const Task& t0 = plan.tasks.at(e0);
  const int layer = g_.node(x.node).layer();
  const auto start = std::chrono::steady_clock::now();
  StepContext ctx(*this, e0, c.alone && t0.first, t0.captures, c.w.lo);
  Tensor out;
  switch (x.kind) {
    case StepKind::Embed: out = embed(c, ctx); break;
    case StepKind::Rows: out = assemble_rows(c, plan); break;
    case StepKind::AttnZ:
    case StepKind::AttnZHeads: out = attention(c, plan, ctx); break;
    case StepKind::ZGather: out = gather_heads(c, plan); break;
    case StepKind::AttnOut: out = backend_.attention_out(layer, stacked_input(c, c.w, plan), ctx); break;
    case StepKind::Mlp: out = backend_.mlp(layer, stacked_input(c, c.w, plan), ctx); break;
    case StepKind::Final: out = backend_.final_norm(stacked_input(c, c.w, plan), ctx); break;
    case StepKind::Add: out = add(c, plan, ctx); break;
    case StepKind::Patch: out = patch(c, plan, ctx); break;
  }
  const double seconds = seconds_since(start);
  for (ActId act : t0.captures) {  // sources for replace interventions elsewhere
    plan.captured[{e0, act}] = ctx.captured(act);
    cache_.put(e0, ctx.captured(act), Cache::Slot::captured(act));
  }
  const int64_t n = static_cast<int64_t>(c.exprs.size()), B = layout_.size;
  for (int64_t i = 0; i < n; ++i) {
    account(c.exprs[i], ctx.flops() / n, seconds / n);
    finish(c.exprs[i], n == 1 ? out : out.slice0(i * B, (i + 1) * B).clone(), plan);
  }
}

// ---- One function per kind of step ---------------------------------------------------------

Tensor Evaluator::embed(const Call& c, StepContext& ctx) {
  return backend_.embed(exprs_.input(exprs_.get(c.exprs[0]).input), c.w, ctx);
}

// Position P's row from args[P].
Tensor Evaluator::assemble_rows(const Call& c, Plan& plan) {
  const Expr& x = exprs_.get(c.exprs[0]);
  const Window w = c.w;
  Tensor first = rows_of(x.args[w.lo], {w.lo, w.lo + 1}, plan);
  Shape shape = first.shape();
  shape[1] = w.size();
  Tensor v = Tensor::uninitialized(shape);
  const int64_t B = shape[0], inner = first.numel() / B;
  for (int64_t P = w.lo; P < w.hi; ++P) {
    Tensor part = rows_of(x.args[P], {P, P + 1}, plan);
    for (int64_t b = 0; b < B; ++b)
      std::memcpy(v.data_mut() + (b * w.size() + (P - w.lo)) * inner, part.data() + b * inner, inner * sizeof(float));
  }
  return v;
}

// One attention, or several on stacked batches: queries [w.lo, w.hi), keys and values from kv_lo
// (the reference's before that).
Tensor Evaluator::attention(const Call& c, Plan& plan, StepContext& ctx) {
  const Expr& x = exprs_.get(c.exprs[0]);
  const Task& t0 = plan.tasks.at(c.exprs[0]);
  const int64_t n = static_cast<int64_t>(c.exprs.size());
  const Window kv{c.kv_lo, c.w.hi};
  AttnCall call;
  if (n == 1) {
    call.in = head_sources(x, g_.n_heads(), [&](ExprId a) { return rows_of(a, kv, plan); });
  } else {  // stacked steps are AttnZ: one input each, read by every head
    call.in.x = {stacked_input(c, kv, plan)};
    call.in.q = call.in.k = call.in.v = std::vector<int>(g_.n_heads(), 0);
  }
  call.q_lo = c.w.lo;
  call.kv_lo = c.kv_lo;
  call.hi = c.w.hi;
  if (c.kv_lo > 0) {
    std::vector<Tensor> kp, vp;
    for (ExprId e : c.exprs) {
      const Task& rt = plan.tasks.at(reference(e));
      kp.push_back(slice1(rt.k, 0, c.kv_lo));
      vp.push_back(slice1(rt.v, 0, c.kv_lo));
    }
    call.k_prefix = n == 1 ? kp[0] : concat0(kp);
    call.v_prefix = n == 1 ? vp[0] : concat0(vp);
  }
  call.layout = &layout_for(n);
  // Whole-sequence attentions keep their keys and values where later steps may extend them.
  const bool whole = c.w.lo == 0 && c.kv_lo == 0 && c.w.hi == seq_;
  call.keep_kv = whole && (t0.need_kv || (keeps_kv() && x.kind == StepKind::AttnZ));
  AttnResult r = backend_.attention_z(g_.node(x.node).layer(), call, ctx);
  if (r.k.defined()) {
    const int64_t B = layout_.size;
    for (int64_t i = 0; i < n; ++i) {
      Task& t = plan.tasks.at(c.exprs[i]);
      Tensor k = n == 1 ? r.k : r.k.slice0(i * B, (i + 1) * B).clone();
      Tensor v = n == 1 ? r.v : r.v.slice0(i * B, (i + 1) * B).clone();
      cache_.put(c.exprs[i], k, Cache::Slot::keys());
      cache_.put(c.exprs[i], v, Cache::Slot::values());
      if (t.need_kv) {
        t.k = k;
        t.v = v;
      }
    }
  }
  return r.z;
}

// Head h's z from args[h]: each head read one input, whose whole attention is shared.
Tensor Evaluator::gather_heads(const Call& c, Plan& plan) {
  const Expr& x = exprs_.get(c.exprs[0]);
  Tensor first = rows_of(x.args[0], c.w, plan);
  Tensor v = Tensor::uninitialized(first.shape());
  const int64_t rows = first.size(0) * first.size(1), H = first.size(2), E = first.size(3);
  for (int64_t h = 0; h < H; ++h) {
    Tensor src = h == 0 ? first : rows_of(x.args[h], c.w, plan);
    for (int64_t r = 0; r < rows; ++r)
      std::memcpy(v.data_mut() + (r * H + h) * E, src.data() + (r * H + h) * E, E * sizeof(float));
  }
  return v;
}

// The residual sum.
Tensor Evaluator::add(const Call& c, Plan& plan, StepContext& ctx) {
  const Expr& x = exprs_.get(c.exprs[0]);
  Tensor a = rows_of(x.args[0], c.w, plan), b = rows_of(x.args[1], c.w, plan);
  Tensor v = Tensor::uninitialized(a.shape());
  kernels::add(a.data(), b.data(), a.numel(), v.data_mut());
  ctx.add_flops(static_cast<double>(a.numel()));
  return v;
}

// The interventions on a step's output activations, in order.
Tensor Evaluator::patch(const Call& c, Plan& plan, StepContext& ctx) {
  const Expr& x = exprs_.get(c.exprs[0]);
  Tensor v = rows_of(x.args[0], c.w, plan).clone();
  for (ActId a : acts(x.node, stage_of(x), true)) ctx.emit(a, v);
  return v;
}

Tensor Evaluator::stacked_input(const Call& c, Window w, Plan& plan) {
  if (c.exprs.size() == 1) return rows_of(exprs_.get(c.exprs[0]).args[0], w, plan);
  std::vector<Tensor> inputs;
  for (ExprId e : c.exprs) inputs.push_back(rows_of(exprs_.get(e).args[0], w, plan));
  return concat0(inputs);
}

// The masks and positions of `copies` stacked batches.
const Batch& Evaluator::layout_for(int64_t copies) {
  if (copies == 1) return layout_;
  auto it = stacked_layouts_.find(copies);
  if (it == stacked_layouts_.end()) {
    Batch s = layout_;
    s.size = layout_.size * copies;
    s.ids.clear();
    s.mask.clear();
    for (int64_t i = 0; i < copies; ++i) {
      s.ids.insert(s.ids.end(), layout_.ids.begin(), layout_.ids.end());
      s.mask.insert(s.mask.end(), layout_.mask.begin(), layout_.mask.end());
    }
    it = stacked_layouts_.emplace(copies, std::move(s)).first;
  }
  return it->second;
}

// ---- Values between steps ------------------------------------------------------------------

Tensor Evaluator::rows_of(ExprId e, Window w, Plan& plan) {
  auto it = plan.tasks.find(e);
  if (it != plan.tasks.end() && it->second.value.defined()) {
    const Task& t = it->second;
    PP_CHECK(t.need.lo <= w.lo && w.hi <= t.need.hi, "positions asked of a step outside what was planned");
    return slice1(t.value, w.lo - t.need.lo, w.hi - t.need.lo);
  }
  auto hit = cache_.get(e, {}, Cache::Rows{w.lo, w.hi}, seq_);
  PP_CHECK(hit.has_value(), "a planned value is missing");
  return *hit;
}

// A replace intervention's value, all positions: the source step's output, or what it captured.
const Tensor& Evaluator::source_value(const BoundIntervention& iv) const {
  PP_CHECK(plan_ != nullptr, "replace sources are read while a plan runs");
  if (!g_.activation(iv.act).is_output) {
    auto it = plan_->captured.find({iv.source, iv.act});
    PP_CHECK(it != plan_->captured.end(), "a replace source was not captured");
    return it->second;
  }
  const Task& t = plan_->tasks.at(iv.source);
  PP_CHECK(t.value.defined() && t.need.lo == 0 && t.need.hi == seq_, "a replace source was not computed whole");
  return t.value;
}

void Evaluator::account(ExprId e, double flops, double seconds) {
  const Expr& x = exprs_.get(e);
  ++stats_.computed;
  stats_.flops += flops;
  stats_.seconds[step_name(x.kind)] += seconds;
  double cost = flops;
  for (ExprId a : x.args) cost += cache_.cost(a);
  cache_.set_cost(e, cost);
  cache_.set_seconds(e, seconds);
}

// Stores a step's value for the positions asked: its reference's rows before what it computed.
Tensor Evaluator::finish(ExprId e, Tensor computed, Plan& plan) {
  Task& t = plan.tasks.at(e);
  Tensor v = computed;
  if (t.compute.empty()) {
    v = rows_of(reference(e), t.need, plan);
  } else {
    if (t.compute.lo > t.need.lo) v = concat1(rows_of(reference(e), {t.need.lo, t.compute.lo}, plan), v);
    const int64_t first = t.compute.lo < t.need.lo ? t.need.lo - t.compute.lo : 0;
    if (first > 0 || v.size(1) != t.need.size()) v = slice1(v, first, first + t.need.size());
  }
  t.value = v;
  release_inputs(e, plan);
  const bool all = t.need.lo == 0 && t.need.hi == seq_;
  if (memoise_) cache_.put(e, v, {}, all ? Cache::kAll : Cache::Rows{t.need.lo, t.need.hi});
  if (t.first && all) {
    record_output_probes(e, exprs_.get(e), v);
    visited_.insert(e);
  }
  return v;
}

void Evaluator::release_inputs(ExprId e, Plan& plan) {
  for (ExprId d : reads(e)) {
    auto it = plan.tasks.find(d);
    if (it == plan.tasks.end()) continue;
    Task& t = it->second;
    if (--t.consumers == 0 && !t.root) {
      t.value = Tensor();
      t.k = t.v = Tensor();
    }
  }
}

// ---- Probes --------------------------------------------------------------------------------

void Evaluator::record_output_probes(ExprId id, const Expr& e, const Tensor& v) {
  if (traits(e.kind).assembles || e.kind == StepKind::Patch) return;
  for (ActId a : acts(e.node, stage_of(e), true)) {
    if (iv_.patched(a)) continue;  // recorded in order by the Patch step that follows
    for (const BoundIntervention& iv : iv_.of(a))
      probes_.push_back(ProbeRecord{iv.label, g_.activation(a).name, a, id, v});
  }
}

void Evaluator::record_probes(ExprId root) {
  std::vector<ExprId> todo;  // in forward order, so that records come in it
  for (ExprId e : exprs_.reachable(root))
    if (!visited_.count(e) && has_probes(exprs_.get(e))) todo.push_back(e);
  if (!todo.empty()) values(todo, {0, seq_});
}

}  // namespace pathpatch
