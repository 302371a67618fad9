#include "pathpatch/run.hpp"

#include <algorithm>
#include <set>

#include "graph/error.hpp"

namespace pathpatch {

const Tensor& Result::probe(std::string_view label) const {
  const ProbeRecord* found = nullptr;
  size_t count = 0;
  const std::string full = expand_activation_name(label);
  for (const ProbeRecord& p : probes)
    if (p.label == label || p.activation == full) {
      found = &p;
      ++count;
    }
  if (!found) throw NameError("no probe labelled '" + std::string(label) + "' recorded in this result");
  if (count > 1)
    throw InputError("probe '" + std::string(label) + "' was recorded on " + std::to_string(count) +
                     " paths; pick one from Result::probes by its expression");
  return found->value;
}

void check_inputs(const Model& model, const std::vector<Batch>& inputs) {
  if (inputs.empty()) throw InputError("run: no inputs given");
  for (size_t i = 0; i < inputs.size(); ++i) {
    model.validate(inputs[i], "input " + std::to_string(i));
    if (!inputs[i].same_layout(inputs[0]))
      throw InputError("input " + std::to_string(i) + " is " + std::to_string(inputs[i].size) + " x " +
                       std::to_string(inputs[i].seq) + " with its own padding, input 0 is " +
                       std::to_string(inputs[0].size) + " x " + std::to_string(inputs[0].seq) +
                       "; all inputs of a run need the same batch size, length and padding mask");
  }
}

Shape activation_shape(const Model& model, ActId act, int64_t batch, int64_t seq) {
  const ModelConfig& c = model.config();
  const Activation& a = model.graph().activation(act);
  Shape s;
  for (char ax : a.axes) {
    switch (ax) {
      case 'B': s.push_back(batch); break;
      case 'T':
      case 'S': s.push_back(seq); break;
      case 'H': s.push_back(a.kv_heads ? c.n_kv_heads : c.n_heads); break;
      case 'E': s.push_back(c.d_head); break;
      case 'D': s.push_back(c.d_model); break;
      case 'F': s.push_back(c.d_mlp); break;
      case 'V': s.push_back(c.vocab_size); break;
      default: PP_CHECK(false, std::string("unknown axis letter ") + ax);
    }
  }
  return s;
}

namespace {

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

}  // namespace

std::vector<BoundIntervention> bind_interventions(const Model& model, ExprTable& exprs, const std::vector<Batch>& inputs,
                                                  const std::vector<uint64_t>& input_keys,
                                                  const std::vector<Intervention>& interventions) {
  const Graph& g = model.graph();
  const int64_t B = inputs[0].size, T = inputs[0].seq;
  std::vector<std::map<std::pair<NodeId, StepKind>, ExprId>> plain_steps(inputs.size());
  std::vector<bool> traced(inputs.size(), false);
  InterventionIndex none;
  Tracer plain(g, exprs, input_keys, T, none);

  std::vector<BoundIntervention> out;
  for (const Intervention& iv : interventions) {
    BoundIntervention b;
    b.op = iv.op;
    b.act = g.find_activation(iv.activation);
    const Activation& info = g.activation(b.act);
    const std::string what = std::string(op_name(iv.op)) + " on " + info.name;
    const int64_t heads = info.kv_heads ? model.config().n_kv_heads : model.config().n_heads;
    if (!iv.select.heads.empty() && info.head_axis() < 0) throw InputError(what + ": this activation has no head axis");
    if (!iv.select.positions.empty() && info.pos_axis() < 0)
      throw InputError(what + ": this activation has no position axis");
    b.heads = normalise(iv.select.heads, heads, false, what + ": head");
    b.positions = normalise(iv.select.positions, T, true, what + ": position");
    switch (iv.op) {
      case Op::Replace: {
        if (iv.source < 0 || iv.source >= static_cast<int>(inputs.size()))
          throw InputError(what + ": source input " + std::to_string(iv.source) + " does not exist (there are " +
                           std::to_string(inputs.size()) + " inputs)");
        if (!traced[iv.source]) {
          plain.plain(iv.source, &plain_steps[iv.source]);
          traced[iv.source] = true;
        }
        b.source = plain_steps[iv.source].at({info.node, info.stage});
        break;
      }
      case Op::Add:
      case Op::Set:
        check_broadcast(iv.value, activation_shape(model, b.act, B, T), what);
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

namespace detail {

void set_reference(Tracer& tracer, const Model& model, ExprTable& exprs, const std::vector<Batch>& inputs,
                   const std::vector<uint64_t>& keys) {
  if (inputs.size() < 2) return;  // one input: nothing differs from it
  InterventionIndex none;
  Tracer plain(model.graph(), exprs, keys, inputs[0].seq, none);
  std::map<std::pair<NodeId, StepKind>, ExprId> steps;
  plain.plain(0, &steps);
  std::vector<int64_t> first;
  for (const Batch& b : inputs) {
    int64_t p = b.seq;
    for (int64_t t = 0; t < b.seq && p == b.seq; ++t)
      for (int64_t i = 0; i < b.size; ++i)
        if (b.id(i, t) != inputs[0].id(i, t) || b.real(i, t) != inputs[0].real(i, t)) p = t;
    first.push_back(p);
  }
  tracer.set_reference(std::move(steps), std::move(first));
}

Result run_traced(const Model& model, const std::vector<Batch>& inputs, const RunOptions& options,
                  const TraceFn& trace, const PathAlphabet* names) {
  check_inputs(model, inputs);
  Result r;
  r.cache = options.cache ? options.cache : std::make_shared<Cache>();
  r.cache->bind_owner(model.id());
  ExprTable& exprs = r.cache->exprs();
  std::vector<uint64_t> keys;
  for (const Batch& b : inputs) keys.push_back(exprs.add_input(b));

  std::vector<BoundIntervention> bound = bind_interventions(model, exprs, inputs, keys, options.interventions);
  InterventionIndex index(model.graph(), exprs, bound);
  Tracer tracer(model.graph(), exprs, keys, inputs[0].seq, index, names);
  set_reference(tracer, model, exprs, inputs, keys);
  r.root = trace(tracer, r.stats.node_visits);

  Evaluator ev(model, *r.cache, inputs[0], index, tracer.has_reference() ? &tracer.facts() : nullptr);
  r.hidden = ev.value(r.root);
  ev.record_probes(r.root);
  if (options.logits) r.logits = model.unembed(r.hidden);
  r.probes = std::move(ev.probes());

  const CacheCounters& c = r.cache->counters();
  r.stats.computed = ev.stats().computed;
  r.stats.cache_hits = ev.stats().cache_hits;
  r.stats.flops = ev.stats().flops;
  r.stats.flops_saved = ev.stats().flops_saved;
  r.stats.seconds = ev.stats().seconds;
  r.stats.bytes_held = c.bytes_held;
  r.stats.peak_bytes = c.peak_bytes;
  std::set<ExprId> seen;
  std::vector<ExprId> stack{r.root};
  while (!stack.empty()) {
    ExprId e = stack.back();
    stack.pop_back();
    if (!seen.insert(e).second) continue;
    for (ExprId a : exprs.get(e).args) stack.push_back(a);
  }
  r.stats.steps = seen.size();
  return r;
}

}  // namespace detail

Result run(const Model& model, const std::vector<Batch>& inputs, const WhichFn& which, const BranchFn& branch,
           const RunOptions& options) {
  check_inputs(model, inputs);
  const PathAlphabet names(model.graph(), inputs[0].seq);
  return detail::run_traced(model, inputs, options, [&](Tracer& tracer, uint64_t& visits) {
    ExprId root = tracer.trace(which, branch, options.path_budget);
    visits = tracer.visits();
    return root;
  }, &names);
}

Result forward(const Model& model, const Batch& batch, const RunOptions& options) {
  return run(model, {batch}, [](const Path&) { return 0; }, [](const Path&) { return Split::None; }, options);
}

}  // namespace pathpatch
