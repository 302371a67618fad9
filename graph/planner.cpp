// The evaluator's first phase: from the roots' provenance to a plan that says, for every step,
// which positions it computes and what it reads from the cache (evaluator.hpp). Nothing is computed
// here.
#include <algorithm>

#include "graph/error.hpp"
#include "graph/plan.hpp"

namespace pathpatch {

// ---- What a step is ------------------------------------------------------------------------

StepKind Evaluator::stage_of(const Expr& e) const {
  if (e.kind == StepKind::Patch) return stage_of(exprs_.get(e.args[0]));
  PP_CHECK(e.kind != StepKind::Rows, "Rows expressions have no stage");
  return traits(e.kind).stage;
}

const std::vector<ActId>& Evaluator::acts(NodeId node, StepKind stage, bool outputs) const {
  auto it = acts_.find({node, stage});
  if (it == acts_.end()) {
    std::pair<std::vector<ActId>, std::vector<ActId>> split;
    for (ActId a : g_.activations_of(node, stage))
      (g_.activation(a).is_output ? split.second : split.first).push_back(a);
    it = acts_.emplace(std::make_pair(node, stage), std::move(split)).first;
  }
  return outputs ? it->second.second : it->second.first;
}

// Whether a step was traced by the evaluator's own run (its interventions are the run's), rather
// than by another experiment of a batch or as a plain source.
bool Evaluator::own_run(const Expr& e) const {
  if (traits(e.kind).assembles) return true;
  StepKind s = stage_of(e);
  return e.interventions == (e.kind == StepKind::Patch ? iv_.after(e.node, s) : iv_.inside(e.node, s));
}

std::vector<BoundIntervention> Evaluator::entries(ExprId id, ActId act) const {
  const Expr& e = exprs_.get(id);
  if (own_run(e)) return iv_.of(act);  // this run's list, probes included, in order
  // A step traced by another run (a replace source, another experiment of a batch): its own list.
  std::vector<BoundIntervention> out;
  for (const BoundIntervention& iv : exprs_.list(e.interventions))
    if (iv.act == act) out.push_back(iv);
  return out;
}

bool Evaluator::has_internal_probes(const Expr& e) const {
  if (traits(e.kind).assembles || !own_run(e)) return false;
  for (ActId a : acts(e.node, stage_of(e), e.kind == StepKind::Patch))
    for (const BoundIntervention& iv : iv_.of(a))
      if (iv.op == Op::Probe) return true;
  return false;
}

bool Evaluator::has_probes(const Expr& e) const {
  if (traits(e.kind).assembles) return false;
  for (bool outputs : {false, true})
    for (ActId a : acts(e.node, stage_of(e), outputs))
      for (const BoundIntervention& iv : iv_.of(a))
        if (iv.op == Op::Probe) return true;
  return false;
}

bool Evaluator::keeps_kv() const { return facts_ != nullptr; }

ExprId Evaluator::reference(ExprId e) const {
  if (!facts_) return 0;
  auto it = facts_->find(e);
  return it == facts_->end() ? 0 : it->second.ref;
}

int64_t Evaluator::clean_rows(ExprId e) const {
  // Worth it only when the reference is at hand: in a sweep, the clean run computed first.
  ExprId ref = reference(e);
  if (!ref || !cache_.contains(ref)) return 0;
  return facts_->at(e).clean;
}

std::vector<ExprId> Evaluator::reads(ExprId e) const {
  const Expr& x = exprs_.get(e);
  std::vector<ExprId> out(x.args.begin(), x.args.end());
  if (ExprId ref = reference(e)) out.push_back(ref);
  for (const BoundIntervention& iv : exprs_.list(x.interventions))
    if (iv.op == Op::Replace) out.push_back(iv.source);
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

// Zero and replace can patch a window of positions; add and set broadcast over all of them.
bool Evaluator::windowable(const std::vector<BoundIntervention>& list) {
  for (const BoundIntervention& iv : list)
    if (iv.op != Op::Zero && iv.op != Op::Replace && iv.op != Op::Probe) return false;
  return true;
}

// ---- Collecting the steps ------------------------------------------------------------------

// Adds e, and what it reads unless the cache holds it whole, after its reads in plan.order.
void Evaluator::collect(ExprId e, Plan& plan) {
  auto [it, fresh] = plan.tasks.try_emplace(e);
  if (!fresh) return;
  Task& t = it->second;  // stays valid as the map grows
  const Expr& x = exprs_.get(e);
  const bool fully_cached = !plan.recompute.count(e) && cache_.contains(e) &&
                            !(!visited_.count(e) && has_internal_probes(x));
  if (!fully_cached) {
    t.expanded = true;
    for (ExprId a : x.args) collect(a, plan);
    if (ExprId ref = reference(e)) collect(ref, plan);
    for (const BoundIntervention& iv : exprs_.list(x.interventions))
      if (iv.op == Op::Replace) collect_source(iv, plan);
  }
  plan.order.push_back(e);
}

// A replace intervention's value is another input's plain step: its output (read whole from its
// task), or an activation computed inside it: captured when that step runs, unless cached. A
// source that must run but was collected as cached is recorded: values() then collects again
// with it recomputed, so that every step still comes after what it reads.
void Evaluator::collect_source(const BoundIntervention& iv, Plan& plan) {
  if (!g_.activation(iv.act).is_output) {
    const auto key = std::make_pair(iv.source, iv.act);
    if (plan.captured.count(key)) return;
    if (auto hit = cache_.get(iv.source, Cache::Slot::captured(iv.act))) {
      plan.captured[key] = *hit;
      return;
    }
    collect(iv.source, plan);
    if (!plan.tasks.at(iv.source).expanded) plan.unexpanded_sources.insert(iv.source);
    return;
  }
  collect(iv.source, plan);
}

// Marks the steps the roots reach through arguments and references: those belong to the run (their
// probes are recorded); steps reached only as replace sources belong to other inputs' plain runs.
void Evaluator::mark_run(const std::vector<ExprId>& roots, Plan& plan) const {
  std::vector<ExprId> stack(roots.begin(), roots.end());
  while (!stack.empty()) {
    ExprId e = stack.back();
    stack.pop_back();
    auto it = plan.tasks.find(e);
    if (it == plan.tasks.end() || it->second.in_run) continue;
    it->second.in_run = true;
    if (!it->second.expanded) continue;
    const Expr& x = exprs_.get(e);
    stack.insert(stack.end(), x.args.begin(), x.args.end());
    if (ExprId ref = reference(e)) stack.push_back(ref);
  }
}

// ---- Deciding positions --------------------------------------------------------------------

void Evaluator::demand(ExprId e, Window w, Plan& plan) {
  if (w.empty()) return;
  Task& t = plan.tasks.at(e);
  PP_CHECK(!t.planned, "a step was asked for positions after it was planned");
  t.need = t.need.empty() ? w : Window{std::min(t.need.lo, w.lo), std::max(t.need.hi, w.hi)};
}

// Steps are planned consumers first (plan.order backwards): each knows every window asked of it.
void Evaluator::plan_step(ExprId e, Plan& plan) {
  Task& t = plan.tasks.at(e);
  t.planned = true;
  bool kv_missing = false;
  if (t.need_kv) {  // keys and values for another attention's prefix: from the cache, or recompute
    auto k = cache_.get(e, Cache::Slot::keys()), v = cache_.get(e, Cache::Slot::values());
    if (k && v) {
      t.k = *k;
      t.v = *v;
    } else {
      kv_missing = true;
      t.need = {0, seq_};
    }
  }
  const bool capture = !t.captures.empty();
  if (capture) t.need = {0, seq_};  // a captured source is read over all positions
  if (t.need.empty()) return;
  const Expr& x = exprs_.get(e);
  t.first = t.in_run && !visited_.count(e);
  const bool probes_inside = t.first && has_internal_probes(x);
  const bool all = t.need.lo == 0 && t.need.hi == seq_;
  if (!probes_inside && !kv_missing && !capture) {
    if (auto hit = cache_.get(e, {}, all ? Cache::kAll : Cache::Rows{t.need.lo, t.need.hi}, seq_)) {
      t.cached = true;
      t.value = *hit;
      ++stats_.cache_hits;
      stats_.flops_saved += cache_.cost(e);
      if (t.first && all) {
        record_output_probes(e, x, t.value);
        visited_.insert(e);
      }
      return;
    }
  }
  t.alone = probes_inside || kv_missing || capture ||
            (x.kind != StepKind::Rows && x.interventions != 0 &&
             (x.kind != StepKind::Patch || !windowable(exprs_.list(x.interventions))));
  int64_t p = t.alone ? 0 : std::min(clean_rows(e), t.need.hi);
  if (t.alone) {
    t.compute = {0, seq_};
  } else {
    t.compute = {std::max(t.need.lo, p), t.need.hi};
    if (t.need.lo < p) demand(reference(e), {t.need.lo, p}, plan);
  }
  if (t.compute.empty()) return;
  switch (x.kind) {
    case StepKind::Embed:
      break;
    case StepKind::Rows:
      for (int64_t P = t.compute.lo; P < t.compute.hi; ++P) demand(x.args[P], {P, P + 1}, plan);
      break;
    case StepKind::AttnZ:
    case StepKind::AttnZHeads: {
      // Keys and values of the positions before p come from the reference: a prefix.
      t.kv_lo = t.alone ? 0 : p;
      for (ExprId a : x.args) demand(a, {t.kv_lo, t.compute.hi}, plan);
      if (t.kv_lo > 0) plan.tasks.at(reference(e)).need_kv = true;
      break;
    }
    default:
      for (ExprId a : x.args) demand(a, t.compute, plan);
  }
  // The values replace interventions patch in: whole outputs of their steps, or captures.
  for (const BoundIntervention& iv : exprs_.list(x.interventions)) {
    if (iv.op != Op::Replace) continue;
    if (g_.activation(iv.act).is_output) {
      demand(iv.source, {0, seq_}, plan);
    } else if (!plan.captured.count({iv.source, iv.act})) {
      std::vector<ActId>& caps = plan.tasks.at(iv.source).captures;
      if (std::find(caps.begin(), caps.end(), iv.act) == caps.end()) caps.push_back(iv.act);
    }
  }
}

}  // namespace pathpatch
