#include "pathpatch/patching.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>

#include "graph/error.hpp"
#include "pathpatch/detail/session.hpp"
#include "pathpatch/detail/sites.hpp"

namespace pathpatch {

using detail::check_site;
using detail::numbers;

namespace {

// Declared first in a sweep, destroyed last: once everything the sweep held is freed, the idle
// buffers go back to the system, so a finished sweep keeps no idle memory.
struct ReleaseIdleBuffers {
  ~ReleaseIdleBuffers() { release_idle_buffers(); }
};

// The final hidden states a sweep needs: the scored positions, through the shared cache.
ExperimentOptions window(const Scorer& scorer, const std::shared_ptr<Cache>& cache, const Progress& progress,
                         RunStats* stats) {
  ExperimentOptions o;
  o.cache = cache;
  o.progress = progress;
  o.stats = stats;
  o.first = scorer.first_position();
  o.last = scorer.last_position();
  return o;
}

// The sweep's warnings: what makes its numbers say less than they seem to.
void warn(const std::vector<Batch>& inputs, const std::vector<Experiment>& experiments, const Scorer& scorer,
          SweepResult& res) {
  if (experiments.empty())
    res.warnings.push_back("no cell of '" + res.title + "' has an experiment (no sender comes before the receivers, "
                           "as in layer 0, or no receiver after the senders; every value is NaN)");
  detail::reference_warnings(inputs[0], inputs[1], scorer, res.warnings);
}

// Runs a sweep's experiments and writes each one's score into its cell of res.values (the batch's
// mean) and res.per_example (each row's): units of other shards stay NaN, units in the log are read
// back instead of computed, and each unit is recorded in the log as it finishes.
void score(const Model& model, const std::vector<Batch>& inputs, const std::vector<Experiment>& experiments,
           const std::vector<int64_t>& cells, const Scorer& scorer, ExperimentOptions eo, const Shard& shard,
           UnitLog* log, const std::string& part, SweepResult& res) {
  const int64_t n = res.values.numel(), B = inputs[0].size;
  Shape rows_shape = res.values.shape();
  rows_shape.push_back(B);
  res.per_example = Tensor::full(rows_shape, std::numeric_limits<float>::quiet_NaN());
  float* values = res.values.data_mut();
  float* rows = res.per_example.data_mut();
  auto fill = [&](const UnitCell& c) {
    values[c.cell] = metric_mean(c.rows);
    std::copy(c.rows.begin(), c.rows.end(), rows + c.cell * B);
    res.filled.push_back(c.cell);
  };
  eo.shard = shard;
  if (log)
    eo.skip = [&](size_t unit) {
      const UnitCells* resumed = log->finished(part, unit);
      if (!resumed) return false;
      const std::string where = "resumed unit " + std::to_string(unit) + (part.empty() ? "" : " of " + part);
      for (const UnitCell& c : *resumed) {
        if (c.cell < 0 || c.cell >= n)
          throw InputError(where + ": cell " + std::to_string(c.cell) + " is outside the sweep's " + std::to_string(n) +
                           " values (the log belongs to another sweep)");
        if (static_cast<int64_t>(c.rows.size()) != B)
          throw InputError(where + ": cell " + std::to_string(c.cell) + " has " + std::to_string(c.rows.size()) +
                           " rows, the batch " + std::to_string(B) + " (the log belongs to another sweep)");
        fill(c);
      }
      return true;
    };
  eo.finished = [&](size_t unit, size_t first, const std::vector<Tensor>& hidden) {
    UnitCells done;
    for (size_t i = 0; i < hidden.size(); ++i) {
      done.push_back(UnitCell{cells[first + i], scorer.per_example(hidden[i], scorer.first_position())});
      fill(done.back());
    }
    if (log) log->record(part, unit, done);
  };
  run_experiments(model, inputs, experiments, eo);
  std::sort(res.filled.begin(), res.filled.end());
  warn(inputs, experiments, scorer, res);
}


}  // namespace

std::vector<Tensor> run_experiments(const Model& model, const std::vector<Batch>& inputs,
                                    const std::vector<Experiment>& experiments, const ExperimentOptions& options) {
  detail::Session session(model, inputs, options.cache);
  const int64_t T = session.seq();
  const int64_t last = options.last < 0 ? T - 1 : options.last;
  if (options.first < 0 || options.first > last || last >= T)
    throw InputError("run_experiments: positions " + std::to_string(options.first) + ".." + std::to_string(last) +
                     " are not within the " + std::to_string(T) + " positions");

  // Rules compile once per distinct rule set (a sweep often repeats one).
  std::map<std::string, std::unique_ptr<CompiledRules>> compiled;
  RowFacts facts;  // facts agree between experiments: they share inputs and reference
  std::vector<ExprId> roots;
  for (const Experiment& x : experiments) {
    x.rules.check_inputs(inputs.size());
    for (const Intervention& iv : x.interventions)
      if (iv.op == Op::Probe) throw InputError("run_experiments: probes are not recorded here; use run()");
    auto& rules = compiled[x.rules.str()];
    if (!rules) rules = std::make_unique<CompiledRules>(model, T, x.rules);
    const std::vector<BoundIntervention> bound = session.bind(x.interventions);
    const InterventionIndex index(model.graph(), session.exprs(), bound);
    Tracer tracer = session.tracer(index);
    roots.push_back(rules->trace(tracer));
    for (const auto& [e, fact] : tracer.facts()) facts[e] = fact;
  }

  // Every unit starts from the cache as the plain runs and the planning left it, so that its
  // numbers do not depend on which units this process computed before it (sharding.hpp).
  const Cache::Snapshot start = session.cache()->snapshot();
  const InterventionIndex none;
  const size_t chunk = std::max<size_t>(options.chunk, 1);
  const size_t units = (roots.size() + chunk - 1) / chunk;
  std::vector<size_t> mine;
  size_t total = 0, done = 0;
  for (size_t u = 0; u < units; ++u)
    if (options.shard.owns(u) && !(options.skip && options.skip(u))) {
      mine.push_back(u);
      total += std::min(roots.size(), (u + 1) * chunk) - u * chunk;
    }
  std::vector<Tensor> out(roots.size());
  EvalStats work;
  for (size_t u : mine) {
    const size_t begin = u * chunk, end = std::min(roots.size(), begin + chunk);
    Evaluator ev(model, *session.cache(), inputs[0], none, inputs.size() > 1 ? &facts : nullptr);
    ev.set_memoise(false);  // one-off steps: storing them would push out the plain runs' values
    std::vector<Tensor> hidden = ev.values({roots.begin() + begin, roots.begin() + end}, {options.first, last + 1});
    work.add(ev.stats());
    session.cache()->restore(start);
    if (options.finished)
      options.finished(u, begin, hidden);  // handed over there, not kept
    else
      std::move(hidden.begin(), hidden.end(), out.begin() + begin);
    done += end - begin;
    if (options.progress) options.progress(done, total);
  }
  if (options.stats) *options.stats = detail::run_stats(work, *session.cache());
  return out;
}

std::map<std::string, SweepResult> activation_patching(const Model& model, const Batch& clean, const Batch& corrupted,
                                                       const Sites& sites, const Metric& metric,
                                                       const PatchingOptions& options) {
  const ReleaseIdleBuffers release_at_the_end;
  check_inputs(model, {clean, corrupted});
  for (const std::string& n : sites.names) check_site(model, n);
  auto cache = options.cache ? options.cache : std::make_shared<Cache>();
  Scorer scorer = detail::plain_scorer(model, metric, clean, corrupted, cache);
  const bool denoise = options.direction == Direction::Denoise;
  const std::vector<Batch> inputs = denoise ? std::vector<Batch>{corrupted, clean} : std::vector<Batch>{clean, corrupted};
  const detail::SiteLayout layout = detail::site_layout(model, sites, clean.seq);
  const std::vector<int>& layers = layout.layers;
  const std::vector<std::vector<int>>& groups = layout.groups;

  std::map<std::string, SweepResult> out;
  for (const std::string& name : sites.names) {
    const bool per_head = detail::is_head_site(name);
    const int heads = detail::site_heads(model, name, layout);
    SweepResult res = detail::site_result(name, layout, heads, scorer);
    // Experiments patching the same positions go together: their later layers change the same
    // positions and stack into one GEMM per step.
    std::vector<Experiment> experiments;
    std::vector<int64_t> cells;
    const int64_t G = static_cast<int64_t>(groups.size());
    for (int64_t gi = 0; gi < G; ++gi)
      for (size_t li = 0; li < layers.size(); ++li)
        for (int h = 0; h < heads; ++h) {
          Select sel;
          sel.positions = groups[gi];
          if (per_head) sel.heads = {h};
          Experiment x;
          x.interventions.push_back(replace(expand_activation_name(name + std::to_string(layers[li])), 1, sel));
          experiments.push_back(std::move(x));
          cells.push_back(detail::site_cell(layout, heads, li, gi, h));
        }
    ExperimentOptions eo = window(scorer, cache, options.progress, &res.stats);
    eo.chunk = layers.size() * heads;  // a unit: every layer and head at one position group
    score(model, inputs, experiments, cells, scorer, eo, options.shard, options.log, name, res);
    out[name] = std::move(res);
  }
  return out;
}

// ---- Path patching -------------------------------------------------------------------------

Receiver::Kind Receiver::kind_named(std::string_view name) {
  for (Kind k : {Q, K, V, Input})
    if (name == kind_name(k)) return k;
  throw InputError("receiver kind '" + std::string(name) + "': expected q, k, v or input");
}

const char* Receiver::kind_name(Kind k) {
  switch (k) {
    case Logits: return "logits";
    case Q: return "q";
    case K: return "k";
    case V: return "v";
    case Input: return "input";
  }
  return "?";
}

namespace {

// The path from a sender's output up the residual stream: aL aL.head aL.headH, or fL fL.head.
Pattern sender_pattern(const Model& m, const Sender& s) {
  const ModelConfig& c = m.config();
  if (s.layer < 0 || s.layer >= c.n_layers)
    throw InputError("sender layer " + std::to_string(s.layer) + " does not exist (the model has " + std::to_string(c.n_layers) + ")");
  if (s.head >= c.n_heads || s.head < -1)
    throw InputError("sender head " + std::to_string(s.head) + " does not exist (the model has " +
                     std::to_string(c.n_heads) + "; -1 stands for the layer's MLP)");
  if (s.head < 0) {
    if (!m.graph().has_mlp()) throw InputError("sender: this model has no MLPs");
    return Pattern::sequence({Pattern::name(PathName::residual(Block::Mlp, s.layer)),
                              Pattern::name(PathName::sublayer(Block::Mlp, s.layer))});
  }
  return Pattern::sequence({Pattern::name(PathName::residual(Block::Attn, s.layer)),
                            Pattern::name(PathName::sublayer(Block::Attn, s.layer)),
                            Pattern::name(PathName::head_of(s.layer, s.head))});
}

PathName sender_name(const Sender& s) {
  return s.head < 0 ? PathName::sublayer(Block::Mlp, s.layer) : PathName::head_of(s.layer, s.head);
}

std::string join_ints(const std::vector<int>& v) {
  std::string s;
  for (int x : v) s.append(s.empty() ? "" : ", ").append(std::to_string(x));
  return s;
}

std::string receiver_name(const Receiver& r) {
  if (r.kind == Receiver::Logits) return "the logits";
  std::string name = PathName::head_of(r.layer, r.head).str();
  return r.kind == Receiver::Input ? name : name.append(".").append(Receiver::kind_name(r.kind));
}

// Positions counted from the start, sorted and unique; empty for every position (none named, or
// all of them: the words of the whole input name no position, rules.hpp). InputError for one
// outside `seq` (0: unknown).
std::vector<int> resolve_rows(const std::vector<int>& positions, int64_t seq, const std::string& what) {
  if (positions.empty()) return {};
  if (seq <= 0) throw InputError(what + " names positions: pass the inputs' length");
  std::vector<int> out;
  for (int p : positions) out.push_back(static_cast<int>(resolve_position(p, seq, what + " position")));
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  if (static_cast<int64_t>(out.size()) == seq) out.clear();
  return out;
}

std::vector<int> receiver_rows(const Receiver& r, int64_t seq) {
  if (r.kind == Receiver::Logits && !r.positions.empty())
    throw InputError("the logits receive at every position; the metric chooses the positions it reads "
                     "(Metric positions), not the receiver (a sender's positions choose what it sends)");
  return resolve_rows(r.positions, seq, "receiver " + receiver_name(r));
}

// The rows along which a sender reaches a receiver (empty: all). Between them a path passes only
// residual edges and MLPs, which keep each row at its own position: a sender's row P reaches the
// receiver's row P alone, so the sender's positions restrict the receiver's.
std::vector<int> rows_between(const Sender& s, const Receiver& r, int64_t seq) {
  const std::vector<int> sent = resolve_rows(s.positions, seq, "sender " + sender_name(s).str());
  const std::vector<int> received = receiver_rows(r, seq);
  if (sent.empty()) return received;
  if (received.empty()) return sent;
  std::vector<int> both;
  std::set_intersection(sent.begin(), sent.end(), received.begin(), received.end(), std::back_inserter(both));
  if (both.empty())
    throw RuleError("sender " + sender_name(s).str() + " at positions " + join_ints(sent) + " sends nothing to receiver " +
                    receiver_name(r) + " at positions " + join_ints(received) +
                    ": the residual stream carries each row to its own position only");
  return both;
}

// Where a path reaches a receiver along `rows` (empty: every row): ln_final, or aL aL.head aL.headH
// aL.headH.q|k|v, then the row's name where rows are given (ln_final.posP, aL.headH.q.posP).
Pattern receiver_pattern(const Model& m, const Receiver& r, const std::vector<int>& rows) {
  auto at_rows = [&](const PathName& input, auto row_name) {
    if (rows.empty()) return Pattern::name(input);
    std::vector<Pattern> names;
    for (int p : rows) names.push_back(Pattern::name(row_name(p)));
    return Pattern::sequence({Pattern::name(input), Pattern::either(std::move(names))});
  };
  if (r.kind == Receiver::Logits) return at_rows(PathName::ln_final(), PathName::final_position);
  const ModelConfig& c = m.config();
  const int L = r.layer, H = r.head;
  if (L < 0 || L >= c.n_layers || H < 0 || H >= c.n_heads)
    throw InputError("receiver " + PathName::head_of(L, H).str() + " does not exist");
  auto input = [&](Role role) {
    return at_rows(PathName::head_input(L, H, role), [&](int p) { return PathName::head_input_position(L, H, role, p); });
  };
  Pattern inputs = r.kind == Receiver::Q   ? input(Role::Q)
                   : r.kind == Receiver::K ? input(Role::K)
                   : r.kind == Receiver::V ? input(Role::V)
                                           : Pattern::either({input(Role::Q), input(Role::K), input(Role::V)});
  return Pattern::sequence({Pattern::name(PathName::residual(Block::Attn, L)),
                            Pattern::name(PathName::sublayer(Block::Attn, L)), Pattern::name(PathName::head_of(L, H)),
                            inputs});
}

// Refuses positions that are padding in some row: a position names one column of the left-padded
// batch, which is a different token in rows of other lengths.
void check_not_padding(const std::vector<int>& rows, const std::string& what, const Batch& clean,
                       const Batch& corrupted) {
  for (int p : rows)
    for (const Batch* b : {&clean, &corrupted})
      for (int64_t row = 0; row < b->size; ++row)
        if (!b->real(row, p))
          throw InputError(what + " position " + std::to_string(p) + " is padding in row " + std::to_string(row) +
                           " of the " + (b == &clean ? "clean" : "corrupted") + " prompts (" +
                           std::to_string(b->length(row)) + " tokens of " + std::to_string(b->seq) +
                           "); positions are columns of the left-padded batch: use prompts of one length, or "
                           "positions from the end (-1)");
}

// Refuses senders and receivers the model lacks, and positions outside the inputs or on padding.
void check_ends(const Model& m, const std::vector<Sender>& senders, const std::vector<Receiver>& receivers,
                const Batch& clean, const Batch& corrupted) {
  for (const Sender& s : senders) {
    sender_pattern(m, s);
    const std::string what = "sender " + sender_name(s).str();
    check_not_padding(resolve_rows(s.positions, clean.seq, what), what, clean, corrupted);
  }
  for (const Receiver& r : receivers) {
    const std::vector<int> rows = receiver_rows(r, clean.seq);
    receiver_pattern(m, r, rows);
    check_not_padding(rows, "receiver " + receiver_name(r), clean, corrupted);
  }
}

// MLPs a path may pass between receiver and sender: (fL fL.head)* over every layer.
Pattern mlps_between() {
  return Pattern::sequence({Pattern::names(NameSet::every_layer(PathName::residual(Block::Mlp, 0))),
                            Pattern::names(NameSet::every_layer(PathName::sublayer(Block::Mlp, 0)))})
      .star();
}

}  // namespace

PathRules path_patching_rules(const Model& model, const std::vector<Sender>& senders,
                              const std::vector<Receiver>& receivers, bool mlps_on_path, int64_t seq) {
  if (senders.empty()) throw InputError("path patching: no senders");
  if (receivers.empty()) throw InputError("path patching: no receivers");
  PathRules rules;
  for (const Receiver& r : receivers)
    for (const Sender& s : senders) {
      if (r.kind != Receiver::Logits && s.layer >= r.layer)
        throw RuleError("sender " + sender_name(s).str() + " does not come before receiver " +
                        PathName::head_of(r.layer, r.head).str() + ": there is no path from it to the receiver's input");
      std::vector<Pattern> parts{receiver_pattern(model, r, rows_between(s, r, seq))};
      if (mlps_on_path) parts.push_back(mlps_between());
      parts.push_back(sender_pattern(model, s));
      rules.add(Pattern::sequence(std::move(parts)), 1);
    }
  return rules;
}

Result path_patch(const Model& model, const Batch& clean, const Batch& corrupted, const std::vector<Sender>& senders,
                  const std::vector<Receiver>& receivers, const PathPatchingOptions& options) {
  RunOptions o;
  o.cache = options.cache;
  check_inputs(model, {clean, corrupted});
  check_ends(model, senders, receivers, clean, corrupted);
  return run(model, {clean, corrupted},
             path_patching_rules(model, senders, receivers, options.mlps_on_path, clean.seq), o);
}

namespace {

SweepResult grid(const Model& m, const std::string& title, const Scorer& scorer, int columns, bool mlp_column) {
  SweepResult res = detail::scored_result(title, scorer);
  res.axes = {"layer", "head"};
  res.labels.push_back(numbers(m.config().n_layers));
  std::vector<std::string> heads = numbers(m.config().n_heads);
  if (mlp_column) heads.push_back("mlp");
  res.labels.push_back(heads);
  res.values = Tensor::full({m.config().n_layers, columns}, std::numeric_limits<float>::quiet_NaN());
  return res;
}

}  // namespace

SweepResult sweep_senders(const Model& model, const Batch& clean, const Batch& corrupted,
                          const std::vector<Receiver>& receivers, const Metric& metric,
                          const PathPatchingOptions& options, bool include_mlps,
                          const std::vector<int>& sender_positions) {
  const ReleaseIdleBuffers release_at_the_end;
  check_inputs(model, {clean, corrupted});
  auto cache = options.cache ? options.cache : std::make_shared<Cache>();
  Scorer scorer = detail::plain_scorer(model, metric, clean, corrupted, cache);
  check_ends(model, {}, receivers, clean, corrupted);
  check_not_padding(resolve_rows(sender_positions, clean.seq, "sender"), "sender", clean, corrupted);
  const int H = model.config().n_heads;
  const bool mlps = include_mlps && model.graph().has_mlp();
  const int columns = H + (mlps ? 1 : 0);
  SweepResult res = grid(model, "senders", scorer, columns, mlps);
  std::vector<Experiment> experiments;
  std::vector<int64_t> cells;
  for (int L = 0; L < model.config().n_layers; ++L)
    for (int h = 0; h < columns; ++h) {
      bool causal = true;
      for (const Receiver& r : receivers) causal = causal && (r.kind == Receiver::Logits || L < r.layer);
      if (!causal) continue;  // no path: left as NaN
      Experiment x;
      x.rules = path_patching_rules(model, {Sender{L, h < H ? h : -1, sender_positions}}, receivers,
                                    options.mlps_on_path, clean.seq);
      experiments.push_back(std::move(x));
      cells.push_back(L * columns + h);
    }
  ExperimentOptions eo = window(scorer, cache, options.progress, &res.stats);
  eo.chunk = options.chunk;
  score(model, {clean, corrupted}, experiments, cells, scorer, eo, options.shard, options.log, "", res);
  return res;
}

SweepResult sweep_receivers(const Model& model, const Batch& clean, const Batch& corrupted,
                            const std::vector<Sender>& senders, Receiver::Kind kind, const Metric& metric,
                            const PathPatchingOptions& options, const std::vector<int>& positions) {
  const ReleaseIdleBuffers release_at_the_end;
  check_inputs(model, {clean, corrupted});
  if (kind == Receiver::Logits) throw InputError("sweep_receivers: sweep heads' q, k, v or input, not the logits");
  if (senders.empty()) throw InputError("sweep_receivers: no senders");
  check_ends(model, senders, {}, clean, corrupted);
  const Sender* latest = &senders[0];
  for (const Sender& s : senders)
    if (s.layer > latest->layer) latest = &s;
  const int first = latest->layer + 1;  // receivers come after every sender
  if (first >= model.config().n_layers)
    throw RuleError("sweep_receivers: sender " + sender_name(*latest).str() +
                    " is in the last layer; no head comes after it to receive its output");
  check_ends(model, {}, {Receiver{kind, first, 0, positions}}, clean, corrupted);  // the sweep's first
  auto cache = options.cache ? options.cache : std::make_shared<Cache>();
  Scorer scorer = detail::plain_scorer(model, metric, clean, corrupted, cache);
  const int H = model.config().n_heads;
  SweepResult res = grid(model, "receivers", scorer, H, false);
  std::vector<Experiment> experiments;
  std::vector<int64_t> cells;
  for (int L = first; L < model.config().n_layers; ++L)
    for (int h = 0; h < H; ++h) {
      Experiment x;
      x.rules = path_patching_rules(model, senders, {Receiver{kind, L, h, positions}}, options.mlps_on_path, clean.seq);
      experiments.push_back(std::move(x));
      cells.push_back(int64_t{L} * H + h);
    }
  ExperimentOptions eo = window(scorer, cache, options.progress, &res.stats);
  eo.chunk = options.chunk;
  score(model, {clean, corrupted}, experiments, cells, scorer, eo, options.shard, options.log, "", res);
  return res;
}

}  // namespace pathpatch
