#include "pathpatch/circuits.hpp"

#include <algorithm>
#include <array>
#include <map>
#include <cmath>
#include <nlohmann/json.hpp>
#include <numeric>
#include <queue>

#include "graph/error.hpp"
#include "graph/kernels.hpp"
#include "pathpatch/detail/backprop.hpp"
#include "pathpatch/detail/sites.hpp"

namespace pathpatch {

// ---- The graph ---------------------------------------------------------------------------------

EdgeGraph EdgeGraph::of(const Model& model) {
  const ModelConfig& c = model.config();
  EdgeGraph g;
  g.n_layers_ = c.n_layers;
  g.n_heads_ = c.n_heads;
  g.d_model_ = c.d_model;
  g.mlps_ = !c.attn_only;
  g.parallel_ = c.parallel_residual && g.mlps_;
  const int H = g.n_heads_;
  g.sources_.push_back("input");
  // Names built by appends: GCC 12 warns falsely (-Wrestrict) on "a" + std::to_string(L) + ...
  auto mlp_name = [](int L) { return std::string("m").append(std::to_string(L)); };
  for (int L = 0; L < g.n_layers_; ++L) {
    for (int h = 0; h < H; ++h)
      g.sources_.push_back(std::string("a").append(std::to_string(L)).append(".h").append(std::to_string(h)));
    if (g.mlps_) g.sources_.push_back(mlp_name(L));
  }
  for (int L = 0; L < g.n_layers_; ++L) {
    const int before = 1 + L * g.stride();  // input and every earlier layer
    for (const char* r : {"q", "k", "v"})
      for (int h = 0; h < H; ++h) {
        g.destinations_.push_back(g.sources_[g.head_index(L, h)] + "<" + r + ">");
        g.dest_prev_.push_back(before);
        g.dest_owner_.push_back(g.head_index(L, h));
      }
    if (g.mlps_) {
      g.destinations_.push_back(mlp_name(L));
      g.dest_prev_.push_back(g.parallel_ ? before : before + H);
      g.dest_owner_.push_back(g.mlp_index(L));
    }
  }
  g.destinations_.push_back("logits");
  g.dest_prev_.push_back(g.n_sources());
  g.dest_owner_.push_back(-1);
  g.scores_ = Tensor::full({g.n_sources(), g.n_destinations()}, 0.0f);
  g.in_circuit_.assign(static_cast<size_t>(g.n_sources()) * g.n_destinations(), 0);
  g.node_in_circuit_.assign(g.n_sources(), 0);
  return g;
}

std::string EdgeGraph::edge_name(int s, int d) const { return source(s) + "->" + destination(d); }

std::pair<int, int> EdgeGraph::find_edge(const std::string& name) const {
  const size_t arrow = name.find("->");
  if (arrow != std::string::npos) {
    const auto s = std::find(sources_.begin(), sources_.end(), name.substr(0, arrow));
    const auto d = std::find(destinations_.begin(), destinations_.end(), name.substr(arrow + 2));
    if (s != sources_.end() && d != destinations_.end() && is_edge(int(s - sources_.begin()), int(d - destinations_.begin())))
      return {int(s - sources_.begin()), int(d - destinations_.begin())};
  }
  throw NameError("no edge named '" + name + "' in this model's graph (edges are SOURCE->DESTINATION: " +
                  edge_name(0, 0) + ", " + edge_name(head_index(0, 0), logits_index()) + ", ...)");
}

int64_t EdgeGraph::n_edges() const {
  int64_t n = 0;
  for (int d = 0; d < n_destinations(); ++d) n += first_after(d);
  return n;
}

void EdgeGraph::set_in_circuit(int s, int d, bool on) {
  if (!is_edge(s, d)) throw InputError("'" + source(s) + "' does not feed '" + destination(d) + "': no such edge");
  in_circuit_[s * n_destinations() + d] = on;
}

int64_t EdgeGraph::circuit_edges() const { return std::count(in_circuit_.begin(), in_circuit_.end(), 1); }
int64_t EdgeGraph::circuit_nodes() const { return std::count(node_in_circuit_.begin(), node_in_circuit_.end(), 1); }

std::vector<std::pair<int, int>> EdgeGraph::edges_by_score(bool absolute) const {
  std::vector<std::pair<int, int>> edges;
  for (int d = 0; d < n_destinations(); ++d)
    for (int s = 0; s < first_after(d); ++s) edges.emplace_back(s, d);
  auto key = [&](const std::pair<int, int>& e) {
    const float v = score(e.first, e.second);
    return absolute ? std::fabs(v) : v;
  };
  std::stable_sort(edges.begin(), edges.end(), [&](const auto& a, const auto& b) { return key(a) > key(b); });
  return edges;
}

void EdgeGraph::update_nodes_from_edges() {
  // A node is in the circuit when an edge of the circuit leaves it and one enters it (the input
  // needs none entering).
  std::vector<uint8_t> out(n_sources(), 0), in(n_sources(), 0);
  in[input_index()] = 1;
  for (int s = 0; s < n_sources(); ++s)
    for (int d = 0; d < n_destinations(); ++d)
      if (in_circuit(s, d)) {
        out[s] = 1;
        if (owner(d) >= 0) in[owner(d)] = 1;
      }
  for (int s = 0; s < n_sources(); ++s) node_in_circuit_[s] = out[s] && in[s];
}

void EdgeGraph::prune() {
  for (bool changed = true; changed;) {
    update_nodes_from_edges();
    changed = false;
    for (int s = 0; s < n_sources(); ++s)
      for (int d = 0; d < n_destinations(); ++d) {
        uint8_t& e = in_circuit_[s * n_destinations() + d];
        const bool keep = node_in_circuit(s) && (owner(d) < 0 || node_in_circuit(owner(d)));
        if (e && !keep) e = 0, changed = true;
      }
  }
}

void EdgeGraph::select_all() {
  for (int d = 0; d < n_destinations(); ++d)
    for (int s = 0; s < first_after(d); ++s) in_circuit_[s * n_destinations() + d] = 1;
  prune();
}

void EdgeGraph::select_top(int64_t n, bool absolute) {
  if (n < 0 || n > n_edges())
    throw InputError("top " + std::to_string(n) + " edges: the graph has " + std::to_string(n_edges()));
  std::fill(in_circuit_.begin(), in_circuit_.end(), 0);
  const auto edges = edges_by_score(absolute);
  for (int64_t i = 0; i < n; ++i) in_circuit_[edges[i].first * n_destinations() + edges[i].second] = 1;
  prune();
}

void EdgeGraph::select_threshold(float threshold, bool absolute) {
  std::fill(in_circuit_.begin(), in_circuit_.end(), 0);
  for (int d = 0; d < n_destinations(); ++d)
    for (int s = 0; s < first_after(d); ++s) {
      const float v = absolute ? std::fabs(score(s, d)) : score(s, d);
      in_circuit_[s * n_destinations() + d] = v >= threshold;
    }
  prune();
}

void EdgeGraph::select_greedy(int64_t n, bool absolute) {
  if (n < 0 || n > n_edges())
    throw InputError("greedy " + std::to_string(n) + " edges: the graph has " + std::to_string(n_edges()));
  std::fill(in_circuit_.begin(), in_circuit_.end(), 0);
  auto key = [&](int s, int d) { return absolute ? std::fabs(score(s, d)) : score(s, d); };
  using Entry = std::pair<float, std::pair<int, int>>;
  std::priority_queue<Entry> frontier;  // edges into nodes already in the circuit
  auto open = [&](int node) {           // node -1: the logits
    for (int d = 0; d < n_destinations(); ++d)
      if (owner(d) == node)
        for (int s = 0; s < first_after(d); ++s) frontier.push({key(s, d), {s, d}});
  };
  std::vector<uint8_t> reached(n_sources(), 0);
  open(-1);
  for (int64_t i = 0; i < n && !frontier.empty(); ++i) {
    const auto [s, d] = frontier.top().second;
    frontier.pop();
    in_circuit_[s * n_destinations() + d] = 1;
    if (!reached[s]) {
      reached[s] = 1;
      open(s);
    }
  }
  prune();
}

// ---- EAP-IG's JSON -----------------------------------------------------------------------------

std::string EdgeGraph::to_json() const {
  nlohmann::ordered_json j;
  j["cfg"] = {{"n_layers", n_layers_}, {"n_heads", n_heads_}, {"parallel_attn_mlp", parallel_}, {"d_model", d_model_}};
  nlohmann::ordered_json nodes = nlohmann::ordered_json::object();
  for (int s = 0; s < n_sources(); ++s) nodes[source(s)] = {{"in_graph", node_in_circuit(s)}};
  nodes["logits"] = {{"in_graph", true}};
  j["nodes"] = nodes;
  nlohmann::ordered_json edges = nlohmann::ordered_json::object();
  for (int d = 0; d < n_destinations(); ++d)
    for (int s = 0; s < first_after(d); ++s)
      edges[edge_name(s, d)] = {{"score", score(s, d)}, {"in_graph", in_circuit(s, d)}};
  j["edges"] = edges;
  return j.dump();
}

EdgeGraph EdgeGraph::from_json(const Model& model, const std::string& text, const std::string& where) {
  EdgeGraph g = of(model);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(where + ": not JSON (" + e.what() + ")");
  }
  if (!j.is_object() || !j.contains("cfg") || !j.contains("edges") || !j["edges"].is_object())
    throw FormatError(where + ": not an EAP-IG graph (expected an object with \"cfg\" and \"edges\")");
  const nlohmann::json& cfg = j["cfg"];
  auto differs = [&](const char* key, const nlohmann::json& value, bool required) {
    if (!cfg.contains(key) ? required : cfg[key] != value)
      throw InputError(where + ": cfg." + key + " is " + (cfg.contains(key) ? cfg[key].dump() : std::string("missing")) +
                       ", the model's is " + value.dump());
  };
  differs("n_layers", g.n_layers_, true);
  differs("n_heads", g.n_heads_, true);
  differs("parallel_attn_mlp", g.parallel_, false);
  differs("d_model", g.d_model_, false);
  for (const auto& [name, edge] : j["edges"].items()) {
    std::pair<int, int> e;
    try {
      e = g.find_edge(name);
    } catch (const NameError& err) {
      throw FormatError(where + ": " + err.what());
    }
    if (!edge.is_object() || !edge.contains("score") || !edge["score"].is_number())
      throw FormatError(where + ": edge '" + name + "' has no numeric \"score\"");
    g.set_score(e.first, e.second, edge["score"].get<float>());
    if (edge.contains("in_graph")) {
      if (!edge["in_graph"].is_boolean()) throw FormatError(where + ": edge '" + name + "': \"in_graph\" is not true or false");
      g.in_circuit_[e.first * g.n_destinations() + e.second] = edge["in_graph"].get<bool>();
    }
  }
  g.update_nodes_from_edges();
  return g;
}

// ---- Scores from gradients ----------------------------------------------------------------------

const char* edge_method_name(EdgeMethod m) {
  switch (m) {
    case EdgeMethod::Eap: return "EAP";
    case EdgeMethod::EapIgInputs: return "EAP-IG";
    case EdgeMethod::EapIgActivations: return "EAP-IG (activations)";
  }
  return "?";
}

namespace {

// Each source's activation as rows of one matrix [sources, B*T*D]: the input's embeddings, each
// head's result, each MLP's output.
Tensor source_matrix(const Model& m, const EdgeGraph& g, const Tape& tape, int64_t B, int64_t T) {
  const int64_t D = m.config().d_model, H = m.config().n_heads, ND = B * T * D;
  Tensor out = Tensor::uninitialized({g.n_sources(), ND});
  std::copy_n(tape[m.acts().embed].data(), ND, out.data_mut());
  for (int L = 0; L < g.n_layers(); ++L) {
    const Tensor& result = tape[m.acts().layers[L].result];  // [B,T,H,D]
    for (int h = 0; h < H; ++h) {
      float* row = out.data_mut() + int64_t(g.head_index(L, h)) * ND;
      for (int64_t n = 0; n < B * T; ++n) std::copy_n(result.data() + (n * H + h) * D, D, row + n * D);
    }
    if (g.has_mlps()) std::copy_n(tape[m.acts().layers[L].mlp_out].data(), ND, out.data_mut() + int64_t(g.mlp_index(L)) * ND);
  }
  return out;
}

void keep_sources(const Model& m, Tape& tape) {
  tape.keep(m.acts().embed);
  for (const LayerActs& la : m.acts().layers) {
    tape.keep(la.result);
    tape.keep(la.mlp_out);
  }
}

}  // namespace

EdgeGraph edge_attribution(const Model& model, const Batch& clean, const Batch& corrupted, const Metric& metric,
                           const EdgeAttributionOptions& options) {
  check_inputs(model, {clean, corrupted});
  check_differentiable(metric);
  if (options.steps < 1) throw InputError("EAP-IG needs at least one step, not " + std::to_string(options.steps));
  const bool ig = options.method == EdgeMethod::EapIgInputs;
  const int steps = options.steps;
  EdgeGraph g = EdgeGraph::of(model);
  // Gradients averaged: 1 (EAP), m (EAP-IG), m per node (EAP-IG on activations: the input, and
  // each layer's attention and MLP).
  const int nodes = 1 + model.config().n_layers * (g.has_mlps() ? 2 : 1);
  const int total = options.method == EdgeMethod::Eap ? 1 : ig ? steps : nodes * steps;
  const int64_t B = clean.size, T = clean.seq, ND = B * T * model.config().d_model;
  const size_t n_acts = model.graph().activations().size();
  auto forward_tape = [&] {  // what a backward from the top reads
    Tape t(n_acts);
    for (int L = 0; L < model.config().n_layers; ++L) model.keep_for_backward(L, t);
    return t;
  };
  auto backward_tape = [&] {
    Tape t = forward_tape();
    keep_sources(model, t);
    return t;
  };
  // The plain runs: the sources' difference, and the metric's references. The run the first
  // gradient is taken on (clean for EAP, corrupted for EAP-IG's k = 0) keeps its backward's state.
  Tape clean_tape = options.method == EdgeMethod::Eap ? backward_tape() : Tape(n_acts);
  keep_sources(model, clean_tape);
  Tape corrupted_tape = ig ? backward_tape() : Tape(n_acts);
  if (!ig) keep_sources(model, corrupted_tape);
  const detail::Pass clean_pass = detail::forward_pass(model, clean, Tensor(), clean_tape, 0);
  const detail::Pass corrupted_pass = detail::forward_pass(model, corrupted, Tensor(), corrupted_tape, 0);
  Tensor delta = source_matrix(model, g, corrupted_tape, B, T);
  {
    const Tensor c = source_matrix(model, g, clean_tape, B, T);
    for (int64_t i = 0; i < delta.numel(); ++i) delta.data_mut()[i] -= c.data()[i];
  }
  const Scorer scorer(model, metric, clean, clean_pass.hidden, corrupted_pass.hidden);

  // The gradients at every destination's input, summed over the steps ([destinations, B*T*D]):
  // the scores are linear in them, so one product with the differences at the end scores every
  // edge (EAP-IG's per-step products would cost a third of a forward each on GPT-2 small).
  Tensor grads = Tensor::full({g.n_destinations(), ND}, 0.0f);
  auto add_rows = [&](int d0, const Tensor& d) { kernels::add_inplace(grads.data_mut() + int64_t(d0) * ND, d.data(), d.numel()); };
  detail::BackwardHooks hooks;
  hooks.logits_input = [&](const Tensor& d) { add_rows(g.logits_index(), d); };
  hooks.mlp_input = [&](int L, const Tensor& d) { add_rows(g.mlp_input_index(L), d); };
  hooks.head_inputs = [&](int L, const Tensor& x, const HeadInputGrads& d) {
    model.head_inputs_backward(L, x, d, grads.data_mut() + int64_t(g.head_input_index(L, 0, 0)) * ND);
  };

  // One gradient: a forward (or the plain run's, kept) and the backward through the hooks.
  int done = 0;
  auto gradient_of = [&](const detail::Pass& pass, const Tape& tape, int cut_attention, int cut_mlp) {
    GradientSink nothing(n_acts);
    hooks.cut_attention = cut_attention;
    hooks.cut_mlp = cut_mlp;
    detail::backward_pass(model, clean, pass, tape, scorer.gradient(pass.hidden), nothing, 0, &hooks);
    if (options.progress) options.progress(++done, total);
  };
  auto interpolate = [](const Tensor& from, const Tensor& to, float alpha) {  // from + alpha (to - from)
    Tensor out = from.clone();
    float* r = out.data_mut();
    for (int64_t i = 0; i < out.numel(); ++i) r[i] += alpha * (to.data()[i] - r[i]);
    return out;
  };
  switch (options.method) {
    case EdgeMethod::Eap:
      gradient_of(clean_pass, clean_tape, -1, -1);
      break;
    case EdgeMethod::EapIgInputs:
      for (int k = 0; k < steps; ++k) {
        if (k == 0) {  // the corrupted run itself
          gradient_of(corrupted_pass, corrupted_tape, -1, -1);
          continue;
        }
        Tape tape = forward_tape();
        const Tensor resid0 = interpolate(corrupted_pass.resid_pre[0], clean_pass.resid_pre[0], float(k) / steps);
        gradient_of(detail::forward_pass(model, clean, resid0, tape, 0), tape, -1, -1);
      }
      break;
    case EdgeMethod::EapIgActivations:
      // Each node's output (the input's embeddings, a layer's heads together, an MLP) k/m of the
      // way from corrupted to clean, k = 1 .. m, on the clean run, one node at a time.
      for (int node = 0; node < nodes; ++node) {
        const int L = (node - 1) / (g.has_mlps() ? 2 : 1);
        const bool mlp = node > 0 && g.has_mlps() && (node - 1) % 2 == 1;
        const ActId act = node == 0 ? model.acts().embed : mlp ? model.acts().layers[L].mlp_out : model.acts().layers[L].result;
        for (int k = 1; k <= steps; ++k) {
          Tape tape = forward_tape();
          tape.set(act, interpolate(corrupted_tape[act], clean_tape[act], float(k) / steps));
          gradient_of(detail::forward_pass(model, clean, Tensor(), tape, 0), tape, node > 0 && !mlp ? L : -1,
                      mlp ? L : -1);
        }
      }
      break;
  }
  // scores[s, d] = delta[s] . grads[d] for the sources before d, a layer's destinations at a time.
  float* scores = g.scores_mut();
  for (int d0 = 0; d0 < g.n_destinations();) {
    int d1 = d0 + 1;
    while (d1 < g.n_destinations() && g.first_after(d1) == g.first_after(d0)) ++d1;
    kernels::gemm(false, true, g.first_after(d0), d1 - d0, ND, delta.data(), ND, grads.data() + int64_t(d0) * ND, ND,
                  0.0f, scores + d0, g.n_destinations());
    d0 = d1;
  }
  kernels::scale(scores, g.scores().numel(), 1.0f / static_cast<float>(B * total));
  return g;
}

// ---- Circuits on the engine ---------------------------------------------------------------------

Pattern edge_pattern(const EdgeGraph& g, int s, int d) {
  if (!g.is_edge(s, d)) throw InputError("'" + g.source(s) + "' does not feed '" + g.destination(d) + "': no such edge");
  std::vector<Pattern> words;
  auto component = [&](int node) {  // the words a path says passing into a source's output
    const int L = g.source_layer(node), h = g.source_head(node);
    const Block b = h >= 0 ? Block::Attn : Block::Mlp;
    words.push_back(Pattern::name(PathName::residual(b, L)));
    words.push_back(Pattern::name(PathName::sublayer(b, L)));
    if (b == Block::Attn) words.push_back(Pattern::name(PathName::head_of(L, h)));
  };
  if (d == g.logits_index()) {
    words.push_back(Pattern::name(PathName::ln_final()));
  } else {
    const int node = g.owner(d), L = g.source_layer(node), h = g.source_head(node);
    component(node);
    if (h >= 0) {
      const int role = (d - g.head_input_index(L, 0, 0)) / g.n_heads();
      words.push_back(Pattern::name(PathName::head_input(L, h, static_cast<Role>(role))));
    }
  }
  if (s == g.input_index()) {
    words.push_back(Pattern::name(PathName::emb()));
  } else {
    component(s);
  }
  return Pattern::sequence(std::move(words));
}

CompiledRules circuit_rules(const Model& model, int64_t seq, const EdgeGraph& g) {
  // A path's words name the components it passes, output first: "ln_final", then for each
  // component its words (graph/path.hpp), then "emb". The automaton's state is the input the path
  // is in (a destination), or how far it has read a component's words; a word that names a source
  // whose edge into that input is outside the circuit sends it to `dead` (reads input 1). States
  // are made as they are reached, so a small circuit makes a small automaton.
  const PathAlphabet alphabet(model.graph(), seq);
  const std::vector<PathEntry>& words = alphabet.entries();
  const int n_words = static_cast<int>(words.size());
  enum Kind { Dead, End, Start, Into, AttnResidual, AttnSublayer, MlpResidual, HeadOut };
  std::map<std::array<int, 3>, int> index;
  std::vector<std::array<int, 3>> keys;
  Automaton a;
  auto state = [&](Kind k, int x = 0, int y = 0) {
    const auto [it, inserted] = index.emplace(std::array<int, 3>{k, x, y}, static_cast<int>(keys.size()));
    if (inserted) {
      keys.push_back(it->first);
      a.out.push_back(k == Dead ? 1 : 0);
    }
    return it->second;
  };
  const int dead = state(Dead);
  a.start = state(Start);
  for (size_t q = 0; q < keys.size(); ++q) {  // keys grows as states are reached
    const auto [k, x, y] = keys[q];
    std::vector<int> row(n_words, dead);
    for (int i = 0; i < n_words; ++i) {
      const PathName& w = words[i].name;
      switch (k) {
        case Start:  // the output
          if (w.kind == PathName::Final) row[i] = state(Into, g.logits_index());
          break;
        case Into:  // x: the destination whose input the path is in
          if (w.kind == PathName::Emb) row[i] = g.in_circuit(g.input_index(), x) ? state(End) : dead;
          if (w.kind == PathName::Residual) row[i] = state(w.block == Block::Attn ? AttnResidual : MlpResidual, x, w.layer);
          break;
        case AttnResidual:  // "aL" read; y = L
          if (w.kind == PathName::Sublayer && w.block == Block::Attn && w.layer == y) row[i] = state(AttnSublayer, x, y);
          break;
        case AttnSublayer:  // "aL aL.head" read: the head decides the edge
          if (w.kind == PathName::Head && w.layer == y)
            row[i] = g.in_circuit(g.head_index(y, w.head), x) ? state(HeadOut, y, w.head) : dead;
          break;
        case HeadOut:  // into head (x, y): which of its inputs the path goes on in
          if (w.kind == PathName::HeadInput && w.layer == x && w.head == y)
            row[i] = state(Into, g.head_input_index(x, y, static_cast<int>(w.role)));
          break;
        case MlpResidual:  // "fL" read
          if (w.kind == PathName::Sublayer && w.block == Block::Mlp && w.layer == y)
            row[i] = g.in_circuit(g.mlp_index(y), x) ? state(Into, g.mlp_input_index(y)) : dead;
          break;
        default:  // dead stays dead; after "emb" there is nothing
          break;
      }
    }
    a.delta.push_back(std::move(row));
  }
  return CompiledRules(model, seq, a);
}

namespace {

void check_graph(const Model& m, const EdgeGraph& g) {
  if (g.n_layers() != m.config().n_layers || g.n_heads() != m.config().n_heads)
    throw InputError("the edge graph has " + std::to_string(g.n_layers()) + " layers of " + std::to_string(g.n_heads()) +
                     " heads, the model " + std::to_string(m.config().n_layers) + " of " +
                     std::to_string(m.config().n_heads));
}

}  // namespace

Faithfulness faithfulness(const Model& model, const Batch& clean, const Batch& corrupted, const EdgeGraph& circuit,
                          const Metric& metric, std::shared_ptr<Cache> cache) {
  check_inputs(model, {clean, corrupted});
  check_graph(model, circuit);
  if (!cache) cache = std::make_shared<Cache>();
  const Scorer scorer = detail::plain_scorer(model, metric, clean, corrupted, cache);
  RunOptions o;
  o.cache = cache;
  o.logits = false;
  const Result r = run(model, {clean, corrupted}, circuit_rules(model, clean.seq, circuit), o);
  Faithfulness f;
  f.circuit_rows = scorer.per_example(r.hidden);
  f.circuit = metric_mean(f.circuit_rows);
  f.clean = scorer.clean_value();
  f.corrupted = scorer.corrupted_value();
  if (std::fabs(f.clean - f.corrupted) < 1e-6f)
    throw InputError("faithfulness: the clean and corrupted runs score the same (" + std::to_string(f.clean) +
                     "), so there is nothing to recover");
  f.faithfulness = (f.circuit - f.corrupted) / (f.clean - f.corrupted);
  f.edges = circuit.circuit_edges();
  f.nodes = circuit.circuit_nodes();
  return f;
}

Tensor rebuilt_hidden(const Model& m, const Batch& batch, const EdgeGraph& g, const std::vector<Tensor>& ablated) {
  check_inputs(m, {batch});
  check_graph(m, g);
  const ModelConfig& c = m.config();
  const int64_t B = batch.size, T = batch.seq, D = c.d_model, H = c.n_heads, N = B * T;
  if (static_cast<int>(ablated.size()) != g.n_sources())
    throw InputError("ablated values: " + std::to_string(ablated.size()) + " for " + std::to_string(g.n_sources()) +
                     " sources");
  for (int s = 0; s < g.n_sources(); ++s)
    if (!ablated[s].defined() || (ablated[s].shape() != Shape{D} && ablated[s].shape() != Shape{B, T, D}))
      throw InputError("ablated value of '" + g.source(s) + "': expected [" + std::to_string(D) + "] or [" +
                       std::to_string(B) + ", " + std::to_string(T) + ", " + std::to_string(D) + "]");
  Tape tape(m.graph().activations().size());
  tape.keep(m.acts().embed);
  for (const LayerActs& la : m.acts().layers) tape.keep(la.result);
  std::vector<Tensor> out(g.n_sources());  // each source's output in this run [B,T,D]
  Tensor x = m.embed(batch, Window{0, T}, tape);
  out[g.input_index()] = tape[m.acts().embed];
  // The input of destination d: x less what the edges outside the circuit take away.
  auto input_of = [&](int d, const Tensor& residual) {
    Tensor in;
    for (int s = 0; s < g.first_after(d); ++s) {
      if (g.in_circuit(s, d)) continue;
      if (!in.defined()) in = residual.clone();
      const Tensor& a = ablated[s];
      float* p = in.data_mut();
      const float* o = out[s].data();
      for (int64_t i = 0; i < N * D; ++i) p[i] -= o[i] - a.data()[a.numel() == D ? i % D : i];
    }
    return in.defined() ? in : residual;
  };
  for (int L = 0; L < c.n_layers; ++L) {
    AttnCall call;
    std::vector<const float*> seen;  // distinct inputs, by storage
    auto index_of = [&](const Tensor& t) {
      for (size_t i = 0; i < seen.size(); ++i)
        if (seen[i] == t.data()) return static_cast<int>(i);
      seen.push_back(t.data());
      call.in.x.push_back(t);
      return static_cast<int>(seen.size() - 1);
    };
    call.in.q.resize(H);
    call.in.k.resize(H);
    call.in.v.resize(H);
    for (int h = 0; h < H; ++h) {
      call.in.q[h] = index_of(input_of(g.head_input_index(L, h, 0), x));
      call.in.k[h] = index_of(input_of(g.head_input_index(L, h, 1), x));
      call.in.v[h] = index_of(input_of(g.head_input_index(L, h, 2), x));
    }
    call.hi = T;
    call.layout = &batch;
    Tensor z = m.attention_z(L, call, tape).z;
    Tensor attn = m.attention_out(L, z, tape);
    const Tensor& result = tape[m.acts().layers[L].result];  // [B,T,H,D]
    for (int h = 0; h < H; ++h) {
      Tensor o = Tensor::uninitialized({B, T, D});
      for (int64_t n = 0; n < N; ++n) std::copy_n(result.data() + (n * H + h) * D, D, o.data_mut() + n * D);
      out[g.head_index(L, h)] = o;
    }
    Tensor mid = Tensor::uninitialized(x.shape());
    kernels::add(x.data(), attn.data(), x.numel(), mid.data_mut());
    if (g.has_mlps()) {
      Tensor mlp = m.mlp(L, input_of(g.mlp_input_index(L), g.parallel() ? x : mid), tape);
      out[g.mlp_index(L)] = mlp;
      kernels::add_inplace(mid.data_mut(), mlp.data(), mid.numel());
    }
    x = mid;
  }
  return m.final_norm(input_of(g.logits_index(), x), tape);
}

namespace {

// Each source's mean output over a batch's rows and real positions [D].
std::vector<Tensor> source_means(const Model& m, const EdgeGraph& g, const Batch& batch) {
  const size_t n_acts = m.graph().activations().size();
  Tape tape(n_acts);
  keep_sources(m, tape);
  detail::forward_pass(m, batch, Tensor(), tape, m.config().n_layers);
  const int64_t B = batch.size, T = batch.seq, D = m.config().d_model;
  const Tensor rows = source_matrix(m, g, tape, B, T);  // [sources, B*T*D]
  std::vector<Tensor> means;
  int64_t real = 0;
  for (int64_t b = 0; b < B; ++b) real += batch.length(b);
  for (int s = 0; s < g.n_sources(); ++s) {
    std::vector<double> sum(D, 0.0);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0; t < T; ++t)
        if (batch.real(b, t))
          for (int64_t i = 0; i < D; ++i) sum[i] += rows.data()[(s * B * T + b * T + t) * D + i];
    Tensor mean = Tensor::uninitialized({D});
    for (int64_t i = 0; i < D; ++i) mean.data_mut()[i] = static_cast<float>(sum[i] / static_cast<double>(real));
    means.push_back(mean);
  }
  return means;
}

}  // namespace

Faithfulness mean_ablated_faithfulness(const Model& model, const Batch& clean, const Batch& corrupted_input,
                                       const Batch& mean_over, const EdgeGraph& circuit, const Metric& metric) {
  check_inputs(model, {clean, corrupted_input});
  model.validate(mean_over, "the batch of the means");
  check_graph(model, circuit);
  const std::vector<Tensor> means = source_means(model, circuit, mean_over);
  const EdgeGraph none = EdgeGraph::of(model);  // every edge ablated
  auto cache = std::make_shared<Cache>();
  const Scorer scorer = detail::plain_scorer(model, metric, clean, corrupted_input, cache);
  Faithfulness f;
  f.circuit_rows = scorer.per_example(rebuilt_hidden(model, clean, circuit, means));
  f.circuit = metric_mean(f.circuit_rows);
  f.clean = scorer.clean_value();
  f.corrupted = metric_mean(scorer.per_example(rebuilt_hidden(model, clean, none, means)));
  if (std::fabs(f.clean - f.corrupted) < 1e-6f)
    throw InputError("faithfulness: the clean run and the run with every edge mean-ablated score the same (" +
                     std::to_string(f.clean) + "), so there is nothing to recover");
  f.faithfulness = (f.circuit - f.corrupted) / (f.clean - f.corrupted);
  f.edges = circuit.circuit_edges();
  f.nodes = circuit.circuit_nodes();
  return f;
}

std::vector<float> exact_edge_scores(const Model& model, const Batch& clean, const Batch& corrupted,
                                     const EdgeGraph& graph, const std::vector<std::pair<int, int>>& edges,
                                     const Metric& metric, const PatchingOptions& options) {
  check_inputs(model, {clean, corrupted});
  check_graph(model, graph);
  auto cache = options.cache ? options.cache : std::make_shared<Cache>();
  const Scorer scorer = detail::plain_scorer(model, metric, clean, corrupted, cache);
  std::vector<Experiment> experiments;
  for (const auto& [s, d] : edges) {
    Experiment x;
    x.rules.add(edge_pattern(graph, s, d), 1);
    experiments.push_back(std::move(x));
  }
  ExperimentOptions eo;
  eo.cache = cache;
  eo.progress = options.progress;
  eo.first = scorer.first_position();
  eo.last = scorer.last_position();
  const std::vector<Tensor> hidden = run_experiments(model, {clean, corrupted}, experiments, eo);
  std::vector<float> out;
  for (const Tensor& h : hidden) out.push_back(scorer.mean(h, scorer.first_position()) - scorer.clean_value());
  return out;
}

}  // namespace pathpatch
