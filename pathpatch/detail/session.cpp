#include "pathpatch/detail/session.hpp"

#include <set>

#include "graph/error.hpp"

namespace pathpatch::detail {

namespace {

// Sorted, unique values in [0, limit); negative ones count from the end where allowed.
std::vector<int> normalise(const std::vector<int>& values, int64_t limit, bool negative_ok, const std::string& what) {
  std::set<int> out;
  for (int v : values) {
    int64_t x = v < 0 && negative_ok ? v + limit : v;
    if (x < 0 || x >= limit)
      throw InputError(what + " " + std::to_string(v) + " is out of range (there are " + std::to_string(limit) + ")");
    out.insert(static_cast<int>(x));
  }
  return {out.begin(), out.end()};
}

// Per input, the first position where its ids or mask differ from input 0's.
std::vector<int64_t> first_differences(const std::vector<Batch>& inputs) {
  std::vector<int64_t> first;
  for (const Batch& b : inputs) {
    int64_t p = b.seq;
    for (int64_t t = 0; t < b.seq && p == b.seq; ++t)
      for (int64_t i = 0; i < b.size; ++i)
        if (b.id(i, t) != inputs[0].id(i, t) || b.real(i, t) != inputs[0].real(i, t)) p = t;
    first.push_back(p);
  }
  return first;
}

}  // namespace

Session::Session(const Model& model, const std::vector<Batch>& inputs, std::shared_ptr<Cache> cache)
    : model_(model), inputs_(inputs), cache_(cache ? std::move(cache) : std::make_shared<Cache>()),
      lease_(*cache_, "run") {
  check_inputs(model, inputs);
  cache_->bind_owner(model.id());
  for (const Batch& b : inputs) keys_.push_back(exprs().add_input(b));
  plain_.resize(inputs.size());
  if (inputs.size() > 1) {  // one input: nothing differs from it
    Reference r;
    r.steps = plain_steps(0);
    for (const auto& [where, e] : r.steps) r.exprs.insert(e);
    r.first_difference = first_differences(inputs);
    reference_ = std::move(r);
  }
}

const std::map<std::pair<NodeId, StepKind>, ExprId>& Session::plain_steps(int input) {
  auto& steps = plain_.at(input);
  if (!steps) {
    InterventionIndex none;
    Tracer plain(model_.graph(), exprs(), keys_, seq(), none);
    steps.emplace();
    plain.plain(input, &*steps);
  }
  return *steps;
}

Tracer Session::tracer(const InterventionIndex& index, const PathAlphabet* names) const {
  Tracer t(model_.graph(), exprs(), keys_, seq(), index, names);
  if (reference_) t.set_reference(&*reference_);
  return t;
}

std::vector<BoundIntervention> Session::bind(const std::vector<Intervention>& interventions) {
  const Graph& g = model_.graph();
  const int64_t B = inputs_[0].size, T = seq();
  std::vector<BoundIntervention> out;
  for (const Intervention& iv : interventions) {
    BoundIntervention b;
    b.op = iv.op;
    b.act = g.find_activation(iv.activation);
    const Activation& info = g.activation(b.act);
    const std::string what = std::string(op_name(iv.op)) + " on " + info.name;
    const int64_t heads = info.kv_heads ? g.n_kv_heads() : g.n_heads();
    if (!iv.select.heads.empty() && info.head_axis() < 0) throw InputError(what + ": this activation has no head axis");
    if (!iv.select.positions.empty() && info.pos_axis() < 0)
      throw InputError(what + ": this activation has no position axis");
    b.heads = normalise(iv.select.heads, heads, false, what + ": head");
    b.positions = normalise(iv.select.positions, T, true, what + ": position");
    switch (iv.op) {
      case Op::Replace:
        if (iv.source < 0 || iv.source >= static_cast<int>(inputs_.size()))
          throw InputError(what + ": source input " + std::to_string(iv.source) + " does not exist (there are " +
                           std::to_string(inputs_.size()) + " inputs)");
        b.source = plain_steps(iv.source).at({info.node, info.stage});
        break;
      case Op::Add:
      case Op::Set:
        check_broadcast(iv.value, activation_shape(model_, b.act, B, T), what);
        b.value = iv.value;
        b.value_hash = hash_tensor(iv.value);
        break;
      case Op::Probe:
        b.label = iv.label.empty() ? info.name : iv.label;
        break;
      case Op::Zero:
        break;
    }
    out.push_back(std::move(b));
  }
  return out;
}

RunStats run_stats(const EvalStats& eval, const Cache& cache) {
  RunStats s;
  s.computed = eval.computed;
  s.cache_hits = eval.cache_hits;
  s.flops = eval.flops;
  s.flops_saved = eval.flops_saved;
  s.seconds = eval.seconds;
  s.bytes_held = cache.counters().bytes_held;
  s.peak_bytes = cache.counters().peak_bytes;
  return s;
}

Result run_traced(const Model& model, const std::vector<Batch>& inputs, const RunOptions& options, const TraceFn& trace,
                  const PathAlphabet* names) {
  Session session(model, inputs, options.cache);
  const std::vector<BoundIntervention> bound = session.bind(options.interventions);
  const InterventionIndex index(model.graph(), session.exprs(), bound);
  Tracer tracer = session.tracer(index, names);
  uint64_t visits = 0;
  const ExprId root = trace(tracer, visits);

  Result r;
  r.cache = session.cache();
  r.root = root;
  Evaluator ev(model, *r.cache, inputs[0], index, tracer.has_reference() ? &tracer.facts() : nullptr);
  r.hidden = ev.value(r.root);
  ev.record_probes(r.root);
  if (options.logits) r.logits = model.unembed(r.hidden);
  r.probes = std::move(ev.probes());
  r.stats = run_stats(ev.stats(), *r.cache);
  r.stats.node_visits = visits;
  r.stats.steps = r.cache->exprs().reachable(root).size();
  return r;
}

}  // namespace pathpatch::detail
