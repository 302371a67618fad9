#include "graph/evaluator.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <functional>

#include "graph/error.hpp"
#include "graph/kernels.hpp"

namespace pathpatch {

namespace {

// The distinct residual inputs of an attention step and, per query head, which of them its q, k
// and v read: AttnZ has one input for every head, AttnZHeads a (q, k, v) triple per head.
// `fetch` gives an input's value (all positions, or the window a planned step needs).
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

}  // namespace

// ---- ComputeContext ------------------------------------------------------------------------

std::vector<BoundIntervention> ComputeContext::entries(ActId act) const {
  const Expr& e = ev_->exprs_.get(expr_);
  if (ev_->own_run(e)) return ev_->iv_.of(act);  // this run's list, probes included, in order
  // A step traced by another run (a replace source, another experiment of a batch): its own list.
  std::vector<BoundIntervention> out;
  for (const BoundIntervention& iv : ev_->exprs_.list(e.interventions))
    if (iv.act == act) out.push_back(iv);
  return out;
}

bool ComputeContext::wants(ActId act) const { return act == capture_ || !entries(act).empty(); }

void ComputeContext::emit(ActId act, Tensor& value) {
  if (act == capture_) captured_ = value;
  const std::vector<BoundIntervention> list = entries(act);
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
    Tensor source;
    if (iv.op == Op::Replace) {
      source = ev_->source_for(iv);
      if (source.size(1) != value.size(1)) source = slice1(source, pos_offset_, pos_offset_ + value.size(1));
    }
    if (!value.writable()) value = value.clone();
    apply_intervention(info, iv, value, source.defined() ? &source : nullptr, pos_offset_);
  }
}

// ---- Plans ---------------------------------------------------------------------------------

struct Evaluator::Task {
  Window need;            // positions the consumers ask for (the hull of their windows)
  Window compute;         // positions this step computes itself; the rest come from its reference
  int64_t kv_lo = 0;      // attention: positions whose keys and values come from the reference
  bool planned = false;
  bool cached = false;    // `value` came from the memo cache
  bool alone = false;     // computed on its own over all positions (probes, interventions inside)
  bool need_kv = false;   // an attention whose keys and values serve as another's prefix
  bool first = false;     // first visit in this run: record its probes
  int consumers = 0;      // planned steps that still have to read this one
  bool root = false;
  Tensor value;           // positions `need`
  Tensor k, v;            // keys and values kept for prefixes (all positions)
};

struct Evaluator::Plan {
  std::unordered_map<ExprId, Task> tasks;
  std::vector<ExprId> order;  // dependencies before dependants
};

Evaluator::Evaluator(const Backend& backend, Cache& cache, const Batch& layout, const InterventionIndex& interventions,
                     const RowFacts* facts)
    : backend_(backend), g_(backend.graph()), cache_(cache), exprs_(cache.exprs()), layout_(layout),
      seq_(layout.seq), iv_(interventions), facts_(facts) {}

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

bool Evaluator::own_run(const Expr& e) const {
  if (traits(e.kind).assembles) return true;
  StepKind s = stage_of(e);
  return e.interventions == (e.kind == StepKind::Patch ? iv_.after(e.node, s) : iv_.inside(e.node, s));
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

void Evaluator::collect(ExprId e, Plan& plan) {
  if (plan.tasks.count(e)) return;
  plan.tasks[e];
  const Expr& x = exprs_.get(e);
  const bool first = recording_ && !visited_.count(e);
  const bool fully_cached = cache_.contains(e) && !(first && has_internal_probes(x));
  if (!fully_cached) {
    for (ExprId a : x.args) collect(a, plan);
    if (ExprId ref = reference(e)) collect(ref, plan);
  }
  plan.order.push_back(e);
}

void Evaluator::demand(ExprId e, Window w, Plan& plan) {
  if (w.empty()) return;
  Task& t = plan.tasks.at(e);
  PP_CHECK(!t.planned, "a step was asked for positions after it was planned");
  t.need = t.need.empty() ? w : Window{std::min(t.need.lo, w.lo), std::max(t.need.hi, w.hi)};
}

void Evaluator::plan_step(ExprId e, Plan& plan) {
  Task& t = plan.tasks.at(e);
  t.planned = true;
  bool kv_missing = false;
  if (t.need_kv) {  // keys and values for another attention's prefix: from the cache, or recompute
    auto k = cache_.get(e, Cache::kKeys), v = cache_.get(e, Cache::kValues);
    if (k && v) {
      t.k = *k;
      t.v = *v;
    } else {
      kv_missing = true;
      t.need = {0, seq_};
    }
  }
  if (t.need.empty()) return;
  const Expr& x = exprs_.get(e);
  t.first = recording_ && !visited_.count(e);
  const bool probes_inside = t.first && has_internal_probes(x);
  const bool all = t.need.lo == 0 && t.need.hi == seq_;
  if (!probes_inside && !kv_missing) {
    if (auto hit = cache_.get(e, 0, all ? Cache::kAll : Cache::Rows{t.need.lo, t.need.hi}, seq_)) {
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
  t.alone = probes_inside || kv_missing || (x.kind != StepKind::Rows && x.interventions != 0 &&
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
}

// Zero and replace can patch a window of positions; add and set broadcast over all of them.
bool Evaluator::windowable(const std::vector<BoundIntervention>& list) {
  for (const BoundIntervention& iv : list)
    if (iv.op != Op::Zero && iv.op != Op::Replace && iv.op != Op::Probe) return false;
  return true;
}

// ---- Execution -----------------------------------------------------------------------------

Tensor Evaluator::rows_of(ExprId e, Window w, Plan& plan) {
  auto it = plan.tasks.find(e);
  if (it != plan.tasks.end() && it->second.value.defined()) {
    const Task& t = it->second;
    PP_CHECK(t.need.lo <= w.lo && w.hi <= t.need.hi, "positions asked of a step outside what was planned");
    return slice1(t.value, w.lo - t.need.lo, w.hi - t.need.lo);
  }
  auto hit = cache_.get(e, 0, Cache::Rows{w.lo, w.hi}, seq_);
  PP_CHECK(hit.has_value(), "a planned value is missing");
  return *hit;
}

ComputeContext Evaluator::context(ExprId id, bool record, ActId capture) {
  ComputeContext ctx;
  ctx.ev_ = this;
  ctx.expr_ = id;
  ctx.record_ = record;
  ctx.capture_ = capture;
  return ctx;
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
  if (memoise_) cache_.put(e, v, 0, all ? Cache::kAll : Cache::Rows{t.need.lo, t.need.hi});
  if (t.first && all) {
    record_output_probes(e, exprs_.get(e), v);
    visited_.insert(e);
  }
  return v;
}

void Evaluator::run_group(const std::vector<ExprId>& group, Plan& plan) {
  const Expr& x0 = exprs_.get(group[0]);
  const Task& t0 = plan.tasks.at(group[0]);
  const int layer = g_.node(x0.node).layer();
  const int64_t n = static_cast<int64_t>(group.size());
  const auto start = std::chrono::steady_clock::now();
  ComputeContext ctx = context(group[0], false);
  std::vector<Tensor> inputs;
  Tensor out;
  if (x0.kind == StepKind::AttnZ) {
    AttnCall call;
    std::vector<Tensor> kp, vp;
    for (ExprId e : group) {
      inputs.push_back(rows_of(exprs_.get(e).args[0], {t0.kv_lo, t0.compute.hi}, plan));
      if (t0.kv_lo > 0) {
        const Task& rt = plan.tasks.at(reference(e));
        kp.push_back(slice1(rt.k, 0, t0.kv_lo));
        vp.push_back(slice1(rt.v, 0, t0.kv_lo));
      }
    }
    call.in.x = {n == 1 ? inputs[0] : concat0(inputs)};
    call.in.q = call.in.k = call.in.v = std::vector<int>(g_.n_heads(), 0);
    call.q_lo = t0.compute.lo;
    call.kv_lo = t0.kv_lo;
    call.hi = t0.compute.hi;
    if (t0.kv_lo > 0) {
      call.k_prefix = n == 1 ? kp[0] : concat0(kp);
      call.v_prefix = n == 1 ? vp[0] : concat0(vp);
    }
    if (n == 1) {
      call.layout = &layout_;
    } else {
      auto it = stacked_layouts_.find(n);
      if (it == stacked_layouts_.end()) {
        Batch s = layout_;
        s.size = layout_.size * n;
        s.ids.clear();
        s.mask.clear();
        for (int64_t i = 0; i < n; ++i) {
          s.ids.insert(s.ids.end(), layout_.ids.begin(), layout_.ids.end());
          s.mask.insert(s.mask.end(), layout_.mask.begin(), layout_.mask.end());
        }
        it = stacked_layouts_.emplace(n, std::move(s)).first;
      }
      call.layout = &it->second;
    }
    // Whole-sequence attentions keep their keys and values where later steps may extend them.
    call.keep_kv = keeps_kv() && call.q_lo == 0 && call.kv_lo == 0 && call.hi == seq_;
    AttnResult r = backend_.attention_z(layer, call, ctx);
    out = r.z;
    if (r.k.defined()) {
      const int64_t B = layout_.size;
      for (int64_t i = 0; i < n; ++i) {
        cache_.put(group[i], n == 1 ? r.k : r.k.slice0(i * B, (i + 1) * B).clone(), Cache::kKeys);
        cache_.put(group[i], n == 1 ? r.v : r.v.slice0(i * B, (i + 1) * B).clone(), Cache::kValues);
      }
    }
  } else {
    for (ExprId e : group) inputs.push_back(rows_of(exprs_.get(e).args[0], t0.compute, plan));
    Tensor in = n == 1 ? inputs[0] : concat0(inputs);
    switch (x0.kind) {
      case StepKind::AttnOut: out = backend_.attention_out(layer, in, ctx); break;
      case StepKind::Mlp: out = backend_.mlp(layer, in, ctx); break;
      case StepKind::Final: out = backend_.final_norm(in, ctx); break;
      default: PP_CHECK(false, "not a stackable step");
    }
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const int64_t B = layout_.size;
  for (int64_t i = 0; i < n; ++i) {
    account(group[i], ctx.flops_ / n, seconds / n);
    finish(group[i], n == 1 ? out : out.slice0(i * B, (i + 1) * B).clone(), plan);
  }
}

Tensor Evaluator::compute_alone(ExprId e, Plan& plan) {
  Task& t = plan.tasks.at(e);
  const Expr& x = exprs_.get(e);
  if (t.alone) {
    Tensor v = compute_full(e, -1, nullptr, t.first, [&](ExprId a) { return rows_of(a, {0, seq_}, plan); },
                            t.need_kv ? &t : nullptr);
    return finish(e, v, plan);
  }
  if (t.compute.empty()) return finish(e, Tensor(), plan);
  const auto start = std::chrono::steady_clock::now();
  ComputeContext ctx = context(e, false);
  const Window w = t.compute;
  Tensor v;
  switch (x.kind) {
    case StepKind::Embed:
      v = backend_.embed(exprs_.input(x.input), w, ctx);
      break;
    case StepKind::Rows: {
      Tensor first = rows_of(x.args[w.lo], {w.lo, w.lo + 1}, plan);
      Shape shape = first.shape();
      shape[1] = w.size();
      v = Tensor::uninitialized(shape);
      const int64_t B = shape[0], inner = first.numel() / B;
      for (int64_t P = w.lo; P < w.hi; ++P) {
        Tensor part = rows_of(x.args[P], {P, P + 1}, plan);
        for (int64_t b = 0; b < B; ++b)
          std::memcpy(v.data_mut() + (b * w.size() + (P - w.lo)) * inner, part.data() + b * inner, inner * sizeof(float));
      }
      break;
    }
    case StepKind::AttnZHeads: {
      AttnCall call;
      call.in = head_sources(x, g_.n_heads(), [&](ExprId a) { return rows_of(a, {t.kv_lo, w.hi}, plan); });
      call.q_lo = w.lo;
      call.kv_lo = t.kv_lo;
      call.hi = w.hi;
      call.layout = &layout_;
      if (t.kv_lo > 0) {
        const Task& rt = plan.tasks.at(reference(e));
        call.k_prefix = slice1(rt.k, 0, t.kv_lo);
        call.v_prefix = slice1(rt.v, 0, t.kv_lo);
      }
      v = backend_.attention_z(g_.node(x.node).layer(), call, ctx).z;
      break;
    }
    case StepKind::ZGather: {
      // Head h's z from args[h]: each head read one input, whose full attention is shared.
      Tensor first = rows_of(x.args[0], w, plan);
      v = Tensor::uninitialized(first.shape());
      const int64_t rows = first.size(0) * first.size(1), H = first.size(2), E = first.size(3);
      for (int64_t h = 0; h < H; ++h) {
        Tensor src = h == 0 ? first : rows_of(x.args[h], w, plan);
        for (int64_t r = 0; r < rows; ++r)
          std::memcpy(v.data_mut() + (r * H + h) * E, src.data() + (r * H + h) * E, E * sizeof(float));
      }
      break;
    }
    case StepKind::Add: {
      Tensor a = rows_of(x.args[0], w, plan), b = rows_of(x.args[1], w, plan);
      v = Tensor::uninitialized(a.shape());
      kernels::add(a.data(), b.data(), a.numel(), v.data_mut());
      ctx.add_flops(static_cast<double>(a.numel()));
      break;
    }
    case StepKind::Patch:
      v = patch(e, x, rows_of(x.args[0], w, plan), w.lo, t.first);
      break;
    default:
      PP_CHECK(false, "stackable steps run in groups");
  }
  account(e, ctx.flops_, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  return finish(e, v, plan);
}

void Evaluator::execute(Plan& plan) {
  // Steps run rank by rank; at each rank references first (they serve the others' first
  // positions and prefixes), then the rest, stackable ones grouped across all experiments.
  std::unordered_set<ExprId> refs;
  std::map<int, std::vector<ExprId>> by_rank;
  for (ExprId e : plan.order) {
    Task& t = plan.tasks.at(e);
    if (t.need.empty() || t.cached) continue;
    by_rank[step_rank(exprs_, e)].push_back(e);
    if (ExprId ref = reference(e)) refs.insert(ref);
    // Consumers, to let go of values nobody reads any more.
    const Expr& x = exprs_.get(e);
    std::unordered_set<ExprId> deps(x.args.begin(), x.args.end());
    if (ExprId ref = reference(e)) deps.insert(ref);
    for (ExprId d : deps)
      if (plan.tasks.count(d)) ++plan.tasks.at(d).consumers;
  }
  for (auto& [rank, steps] : by_rank) {
    std::stable_partition(steps.begin(), steps.end(), [&](ExprId e) { return refs.count(e) > 0; });
    std::map<std::tuple<int, NodeId, int64_t, int64_t, int64_t>, std::vector<ExprId>> groups;
    for (ExprId e : steps) {
      const Task& t = plan.tasks.at(e);
      const Expr& x = exprs_.get(e);
      const bool in_group = !t.alone && !t.compute.empty() && traits(x.kind).stackable && x.interventions == 0;
      if (in_group && !refs.count(e))
        groups[{static_cast<int>(x.kind), x.node, t.compute.lo, t.compute.hi, t.kv_lo}].push_back(e);
      else if (in_group)
        run_group({e}, plan);
      else
        compute_alone(e, plan);
    }
    for (const auto& [key, group] : groups) run_group(group, plan);
  }
}

void Evaluator::release_inputs(ExprId e, Plan& plan) {
  const Expr& x = exprs_.get(e);
  std::unordered_set<ExprId> deps(x.args.begin(), x.args.end());
  if (ExprId ref = reference(e)) deps.insert(ref);
  for (ExprId d : deps) {
    auto it = plan.tasks.find(d);
    if (it == plan.tasks.end()) continue;
    Task& t = it->second;
    if (--t.consumers == 0 && !t.root) {
      t.value = Tensor();
      t.k = t.v = Tensor();
    }
  }
}

std::vector<Tensor> Evaluator::values(const std::vector<ExprId>& roots, Window rows) {
  Plan plan;
  for (ExprId r : roots) collect(r, plan);
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

// ---- Steps on their own, over all positions ------------------------------------------------

Tensor Evaluator::compute_full(ExprId id, ActId capture, Tensor* captured, bool record,
                               const std::function<Tensor(ExprId)>& arg, Task* keep_kv) {
  const Expr& e = exprs_.get(id);
  const auto start = std::chrono::steady_clock::now();
  ComputeContext ctx = context(id, record, capture);
  const int layer = e.node >= 0 ? g_.node(e.node).layer() : -1;
  Tensor v;
  switch (e.kind) {
    case StepKind::Embed:
      v = backend_.embed(exprs_.input(e.input), {0, seq_}, ctx);
      break;
    case StepKind::AttnZ:
    case StepKind::AttnZHeads: {
      AttnCall call;
      call.in = head_sources(e, g_.n_heads(), arg);
      call.hi = seq_;
      call.layout = &layout_;
      call.keep_kv = keep_kv != nullptr || (keeps_kv() && e.kind == StepKind::AttnZ);
      AttnResult r = backend_.attention_z(layer, call, ctx);
      v = r.z;
      if (r.k.defined()) {
        if (keep_kv) {
          keep_kv->k = r.k;
          keep_kv->v = r.v;
        }
        cache_.put(id, r.k, Cache::kKeys);
        cache_.put(id, r.v, Cache::kValues);
      }
      break;
    }
    case StepKind::AttnOut:
      v = backend_.attention_out(layer, arg(e.args[0]), ctx);
      break;
    case StepKind::Mlp:
      v = backend_.mlp(layer, arg(e.args[0]), ctx);
      break;
    case StepKind::Final:
      v = backend_.final_norm(arg(e.args[0]), ctx);
      break;
    case StepKind::Add: {
      Tensor a = arg(e.args[0]), b = arg(e.args[1]);
      v = Tensor::uninitialized(a.shape());
      kernels::add(a.data(), b.data(), a.numel(), v.data_mut());
      ctx.add_flops(static_cast<double>(a.numel()));
      break;
    }
    case StepKind::Patch:
      v = patch(id, e, arg(e.args[0]), 0, record);
      break;
    case StepKind::Rows:
    case StepKind::ZGather:
      PP_CHECK(false, "assembling steps are never computed alone");
  }
  account(id, ctx.flops_, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  if (captured) {
    PP_CHECK(ctx.captured_.defined(), "activation " + g_.activation(capture).name + " was not computed");
    *captured = ctx.captured_;
  }
  return v;
}

Tensor Evaluator::patch(ExprId id, const Expr& e, Tensor x, int64_t pos_offset, bool record) {
  Tensor v = x.clone();
  ComputeContext ctx = context(id, record);
  ctx.pos_offset_ = pos_offset;
  for (ActId a : acts(e.node, stage_of(e), true)) ctx.emit(a, v);
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
    Tensor v = compute_full(iv.source, iv.act, &captured, false, [&](ExprId a) { return value(a); }, nullptr);
    cache_.put(iv.source, v);
    cache_.put(iv.source, captured, iv.act + 1);
    t = captured;
  }
  recording_ = was_recording;
  return sources_.emplace(key, std::move(t)).first->second;
}

// ---- Probes --------------------------------------------------------------------------------

void Evaluator::record_output_probes(ExprId id, const Expr& e, const Tensor& v) {
  if (e.kind == StepKind::Rows || e.kind == StepKind::ZGather || e.kind == StepKind::Patch) return;
  for (ActId a : acts(e.node, stage_of(e), true)) {
    if (iv_.patched(a)) continue;  // recorded in order by the Patch step that follows
    for (const BoundIntervention& iv : iv_.of(a))
      probes_.push_back(ProbeRecord{iv.label, g_.activation(a).name, a, id, v});
  }
}

void Evaluator::record_probes(ExprId root) {
  // Dependencies before dependants, so records come in the order of the forward.
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

}  // namespace pathpatch
