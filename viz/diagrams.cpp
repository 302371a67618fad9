// Provenance, model and circuit diagrams on the Graphviz wrapper (see diagrams.hpp).
#include "viz/diagrams.hpp"

#include <algorithm>
#include <cctype>
#include <climits>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "graph/error.hpp"
#include "models/model.hpp"
#include "pathpatch/circuits.hpp"
#include "pathpatch/patching.hpp"
#include "pathpatch/run.hpp"
#include "viz/heatmap.hpp"

namespace pathpatch::viz {

namespace {

const char* const kFont = "Helvetica";

std::string fmt(float v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g", v);
  return buf;
}

// s + sep + x, without the separator when s is empty.
void append(std::string& s, const char* sep, const std::string& x) {
  if (!s.empty()) s += sep;
  s += x;
}

// "0-3,5,7-8" for a sorted list of integers.
std::string ranges(const std::vector<int>& xs) {
  std::string s;
  for (size_t i = 0; i < xs.size();) {
    size_t j = i;
    while (j + 1 < xs.size() && xs[j + 1] == xs[j] + 1) ++j;
    append(s, ",", std::to_string(xs[i]));
    if (j > i) {
      s += '-';
      s += std::to_string(xs[j]);
    }
    i = j + 1;
  }
  return s;
}

std::string plural(const char* word, const std::vector<int>& xs) {
  return std::string(word) + (xs.size() == 1 ? " " : "s ") + ranges(xs);
}

// Graph-wide look shared by the diagrams.
void base_style(Digraph& g, bool left_to_right) {
  g.set("rankdir", left_to_right ? "LR" : "BT");
  g.set("fontname", kFont);
  g.set("fontsize", "12");
  g.set("nodesep", "0.2");
  g.set("ranksep", "0.3");
  g.set("newrank", "true");  // ranks may hold nodes of several clusters
  g.node_defaults({{"shape", "box"}, {"style", "filled"}, {"fillcolor", "white"}, {"fontname", kFont},
                   {"fontsize", "10"}, {"height", "0.3"}, {"margin", "0.08,0.03"}});
  g.edge_defaults({{"color", "#555555"}, {"arrowsize", "0.6"}, {"fontname", kFont}, {"fontsize", "8"},
                   {"fontcolor", "#333333"}});
}

// Ids in reading order for same_rank(ids, true) inside a cluster: under rankdir=LR dot lays a
// cluster's ordered rank out bottom to top, so the order is turned around to read top to bottom.
std::vector<std::string> reading_order(std::vector<std::string> ids, bool left_to_right) {
  if (left_to_right) std::reverse(ids.begin(), ids.end());
  return ids;
}

// A cluster's frame, its title on top whichever way the ranks run.
Attrs frame(bool left_to_right, Attrs more) {
  more.push_back({"labelloc", left_to_right ? "t" : "b"});
  more.push_back({"fontsize", "9"});
  return more;
}

// ---- Provenance: the DAG and what reaches each step ----------------------------------------------

struct Dag {
  const ExprTable* t = nullptr;
  std::vector<ExprId> order;  // reachable steps, each after everything it reads
  std::unordered_map<ExprId, std::vector<ExprId>> reads;      // distinct arguments and replace sources
  std::unordered_map<ExprId, std::vector<ExprId>> consumers;  // distinct readers of each step
  std::unordered_map<ExprId, std::vector<int>> inputs;        // input indices reaching each step (sorted)
  std::unordered_map<uint64_t, int> input_index;              // batch key -> input index
};

// Steps whose values replace activations inside `x` (another input's plain forward, say).
std::vector<ExprId> replace_sources(const ExprTable& t, const Expr& x) {
  std::vector<ExprId> out;
  for (const BoundIntervention& iv : t.list(x.interventions))
    if (iv.op == Op::Replace && iv.source) out.push_back(iv.source);
  return out;
}

// What a step's value depends on: its arguments, and the sources of the values patched into it.
std::vector<ExprId> reads_of(const ExprTable& t, ExprId e) {
  const Expr& x = t.get(e);
  std::set<ExprId> r(x.args.begin(), x.args.end());
  for (ExprId s : replace_sources(t, x)) r.insert(s);
  return {r.begin(), r.end()};
}

std::vector<ExprId> topological(const ExprTable& t, ExprId root) {
  struct Frame {
    ExprId e;
    std::vector<ExprId> reads;
    size_t next = 0;
  };
  std::vector<ExprId> order;
  std::unordered_set<ExprId> seen{root};
  std::vector<Frame> stack{{root, reads_of(t, root)}};
  while (!stack.empty()) {
    Frame& f = stack.back();
    if (f.next < f.reads.size()) {
      ExprId a = f.reads[f.next++];
      if (seen.insert(a).second) stack.push_back({a, reads_of(t, a)});  // f may dangle from here
    } else {
      order.push_back(f.e);
      stack.pop_back();
    }
  }
  return order;
}

Dag analyse(const ExprTable& t, ExprId root, const std::vector<uint64_t>& keys) {
  Dag d;
  d.t = &t;
  d.order = topological(t, root);
  for (size_t k = 0; k < keys.size(); ++k) d.input_index.emplace(keys[k], static_cast<int>(k));
  for (ExprId e : d.order) {
    const Expr& x = t.get(e);
    std::set<int> in;
    if (x.kind == StepKind::Embed) {
      // Inputs the caller did not name are numbered after the named ones, as they are met.
      auto [it, added] = d.input_index.emplace(x.input, static_cast<int>(d.input_index.size()));
      in.insert(it->second);
    }
    d.reads[e] = reads_of(t, e);
    for (ExprId a : d.reads[e]) {
      d.consumers[a].push_back(e);
      in.insert(d.inputs[a].begin(), d.inputs[a].end());
    }
    d.inputs[e] = {in.begin(), in.end()};
  }
  return d;
}

bool consumers_are(const Dag& d, ExprId e, std::set<ExprId> expected) {
  auto it = d.consumers.find(e);
  std::set<ExprId> have = it == d.consumers.end() ? std::set<ExprId>{} : std::set<ExprId>(it->second.begin(), it->second.end());
  return have == expected;
}

// ---- Provenance: collapsing --------------------------------------------------------------------
//
// Steps are drawn in boxes. Without collapsing, one box per step. Collapsing contracts an edge
// between two steps when both are plain (an attention, MLP or residual sum with no intervention),
// of one layer, reached by the same inputs, and no other path joins them (so the drawing stays a
// DAG); then runs of boxes with the same steps in consecutive layers become one ("layers 2-11").
// Split steps (head gathers, per-head q/k/v, rows by position), patches, embeddings, ln_final and
// the steps where inputs meet stay boxes of their own, so every split stays visible.

struct Box {
  std::vector<ExprId> members;  // in topological order; the last is the box's output
  int first = -1, last = -1;    // layers spanned
  bool fixed = false;           // a split z drawn with its output: never merged further
  bool alive = true;
  ExprId top() const { return members.back(); }
};

struct Drawing {
  std::vector<Box> boxes;
  std::unordered_map<ExprId, int> owner;   // step -> its box
  std::unordered_map<ExprId, size_t> pos;  // step -> topological index
  const Box& of(ExprId e) const { return boxes[owner.at(e)]; }
};

// A step whose value mixes inputs none of its arguments mixes alone (a1 in nano's experiment).
bool meeting_point(const Dag& d, ExprId e) {
  const Expr& x = d.t->get(e);
  if (x.args.size() < 2) return false;
  for (ExprId a : x.args)
    if (d.inputs.at(a) == d.inputs.at(e)) return false;
  return true;
}

bool plain_step(const Dag& d, ExprId e) {
  const Expr& x = d.t->get(e);
  const bool kind = x.kind == StepKind::AttnZ || x.kind == StepKind::AttnOut || x.kind == StepKind::Mlp ||
                    x.kind == StepKind::Add;
  return kind && !x.interventions && !meeting_point(d, e);
}

// Boxes that read from box b (b excluded).
std::set<int> successors(const Drawing& w, const Dag& d, int b) {
  std::set<int> out;
  for (ExprId m : w.boxes[b].members)
    if (auto it = d.consumers.find(m); it != d.consumers.end())
      for (ExprId c : it->second)
        if (w.owner.at(c) != b) out.insert(w.owner.at(c));
  return out;
}

// Whether `to` can be reached from `from` other than by a direct edge (merging them would make a cycle).
bool other_path(const Drawing& w, const Dag& d, int from, int to) {
  std::vector<int> todo;
  std::set<int> seen;
  for (int s : successors(w, d, from))
    if (s != to) todo.push_back(s), seen.insert(s);
  while (!todo.empty()) {
    int b = todo.back();
    todo.pop_back();
    if (b == to) return true;
    for (int s : successors(w, d, b))
      if (seen.insert(s).second) todo.push_back(s);
  }
  return false;
}

void merge(Drawing& w, int from, int into) {
  Box &src = w.boxes[from], &dst = w.boxes[into];
  for (ExprId e : src.members) w.owner[e] = into;
  dst.members.insert(dst.members.end(), src.members.begin(), src.members.end());
  std::sort(dst.members.begin(), dst.members.end(), [&](ExprId a, ExprId b) { return w.pos.at(a) < w.pos.at(b); });
  dst.first = std::min(dst.first, src.first);
  dst.last = std::max(dst.last, src.last);
  dst.fixed = dst.fixed || src.fixed;
  src.alive = false;
  src.members.clear();
}

// A step as its place in a layer: "aL.head:AttnZ", "fL:Add".
std::string layer_step(const Graph& g, const Expr& x) {
  return g.node(x.node).name().str_with_layer("L") + ":" + step_name(x.kind);
}

// The steps of a box's first layer, in forward order.
std::vector<std::string> signature(const Dag& d, const Graph& g, const Box& b) {
  std::vector<ExprId> first;
  for (ExprId e : b.members)
    if (g.node(d.t->get(e).node).layer() == b.first) first.push_back(e);
  std::sort(first.begin(), first.end(), [&](ExprId x, ExprId y) { return step_rank(*d.t, x) < step_rank(*d.t, y); });
  std::vector<std::string> sig;
  for (ExprId e : first) sig.push_back(layer_step(g, d.t->get(e)));
  return sig;
}

// Whether a signature holds every step of a plain layer: attention (z, out), its sum, and the MLP
// and its sum where the model has them.
bool full_layer(const Graph& g, const std::vector<std::string>& sig) {
  std::vector<std::string> all;
  for (auto [node, kind] : {std::pair{g.attention(0), StepKind::AttnZ}, {g.attention(0), StepKind::AttnOut},
                            {g.attn_sum(0), StepKind::Add}, {g.mlp(0), StepKind::Mlp}, {g.mlp_sum(0), StepKind::Add}})
    if (node >= 0) all.push_back(g.node(node).name().str_with_layer("L") + ":" + step_name(kind));
  std::sort(all.begin(), all.end());
  std::vector<std::string> have = sig;
  std::sort(have.begin(), have.end());
  return have == all;
}

Drawing collapse(const Dag& d, const Graph& g, bool enabled) {
  Drawing w;
  for (ExprId e : d.order) {
    const int layer = g.node(d.t->get(e).node).layer();
    w.pos[e] = w.boxes.size();
    w.owner[e] = static_cast<int>(w.boxes.size());
    w.boxes.push_back(Box{{e}, layer, layer});
  }
  if (!enabled) return w;
  const ExprTable& t = *d.t;
  // A split z (per-head inputs) is drawn inside its output step when nothing else reads it.
  for (ExprId o : d.order) {
    const Expr& O = t.get(o);
    if (O.kind != StepKind::AttnOut || O.interventions) continue;
    const ExprId z = O.args[0];
    const StepKind k = t.get(z).kind;
    if ((k == StepKind::ZGather || k == StepKind::AttnZHeads) && consumers_are(d, z, {o})) {
      merge(w, w.owner[z], w.owner[o]);
      w.boxes[w.owner[o]].fixed = true;
    }
  }
  // Plain steps of one layer, one input set.
  for (ExprId e : d.order) {
    for (ExprId a : d.reads.at(e)) {
      const int ba = w.owner[a], be = w.owner[e];
      if (ba == be || w.boxes[ba].fixed || w.boxes[be].fixed || !plain_step(d, a) || !plain_step(d, e)) continue;
      if (g.node(t.get(a).node).layer() != g.node(t.get(e).node).layer() || d.inputs.at(a) != d.inputs.at(e)) continue;
      if (!other_path(w, d, ba, be)) merge(w, ba, be);
    }
  }
  // Runs of layers: a box joins the box below it when their layers hold the same steps.
  for (ExprId e : d.order) {
    const int b2 = w.owner[e];
    Box& upper = w.boxes[b2];
    if (upper.top() != e || upper.fixed || upper.first < 1 || upper.first != upper.last) continue;
    const std::vector<std::string> sig = signature(d, g, upper);
    if (sig.size() < 2) continue;  // single steps stay as they are
    std::set<int> below;
    for (ExprId m : upper.members)
      for (ExprId a : d.reads.at(m))
        if (w.owner[a] != b2) below.insert(w.owner[a]);
    for (int b1 : below) {
      const Box& lower = w.boxes[b1];
      if (lower.fixed || lower.last != upper.first - 1 || signature(d, g, lower) != sig) continue;
      if (d.inputs.at(lower.top()) != d.inputs.at(e) || other_path(w, d, b1, b2)) continue;
      merge(w, b1, b2);
      break;
    }
  }
  return w;
}

// ---- Provenance: labels ------------------------------------------------------------------------

// The argument most slots read: the unsplit majority of a split step.
ExprId majority(const std::vector<ExprId>& args) {
  std::map<ExprId, int> count;
  for (ExprId a : args) ++count[a];
  return std::max_element(count.begin(), count.end(), [](auto& x, auto& y) { return x.second < y.second; })->first;
}

// Heads of a split attention that read something other than the majority.
std::vector<int> split_heads(const Expr& x) {
  std::vector<int> heads;
  const ExprId maj = majority(x.args);
  const size_t per = x.kind == StepKind::AttnZHeads ? 3 : 1;
  for (size_t h = 0; h * per < x.args.size(); ++h) {
    bool differs = false;
    for (size_t r = 0; r < per; ++r) differs = differs || x.args[h * per + r] != maj;
    if (differs) heads.push_back(static_cast<int>(h));
  }
  return heads;
}

std::string describe(const Model& m, const BoundIntervention& iv) {
  std::string s = std::string(op_name(iv.op)) + " " + m.graph().activation(iv.act).name;
  if (!iv.heads.empty()) s += " " + plural("head", iv.heads);
  if (!iv.positions.empty()) s += " " + std::string("pos ") + ranges(iv.positions);
  return s;
}

struct LabelContext {
  const Model& m;
  const Dag& d;
  const Drawing& w;
  const DiagramOptions& o;
  const Result& r;
};

std::string input_name(const DiagramOptions& o, int k) {
  if (k < static_cast<int>(o.input_names.size()) && !o.input_names[k].empty()) return o.input_names[k];
  return "input " + std::to_string(k);
}

std::string inputs_text(const DiagramOptions& o, const std::vector<int>& in) {
  std::string s;
  for (int k : in) append(s, ", ", input_name(o, k));
  return s;
}

std::string step_title(const LabelContext& c, ExprId top) {
  const ExprTable& t = *c.d.t;
  const Expr& x = t.get(top);
  const std::string& node = c.m.graph().node(x.node).text();
  switch (x.kind) {
    case StepKind::Embed: return node + "\\n" + inputs_text(c.o, c.d.inputs.at(top));
    case StepKind::Rows: return node + " input\\n(by position)";
    case StepKind::AttnZ: return node + " z";
    case StepKind::AttnZHeads: return node + " z\\n(q/k/v split: " + plural("head", split_heads(x)) + ")";
    case StepKind::ZGather: return node + " z\\n(" + plural("head", split_heads(x)) + " split)";
    case StepKind::AttnOut: {
      ExprId z = x.args[0];
      if (c.w.owner.at(z) != c.w.owner.at(top)) return node + " out";
      const Expr& Z = t.get(z);
      if (Z.kind == StepKind::AttnZHeads) return node + "\\n(q/k/v split: " + plural("head", split_heads(Z)) + ")";
      if (Z.kind == StepKind::ZGather) return node + "\\n(" + plural("head", split_heads(Z)) + " split)";
      return node;
    }
    case StepKind::Patch: {
      std::string s = "patched:";
      for (const BoundIntervention& iv : t.list(x.interventions)) s += "\\n" + describe(c.m, iv);
      return s;
    }
    default: return node;  // Mlp (fL.head), Add (aL, fL), Final (ln_final)
  }
}

Shape step_shape(const LabelContext& c, ExprId e) {
  const Expr& x = c.d.t->get(e);
  const ModelConfig& cfg = c.m.config();
  Shape bt{c.r.hidden.defined() ? c.r.hidden.size(0) : 0, c.r.hidden.defined() ? c.r.hidden.size(1) : 0};
  switch (x.kind) {
    case StepKind::AttnZ:
    case StepKind::AttnZHeads:
    case StepKind::ZGather: return {bt[0], bt[1], cfg.n_heads, cfg.d_head};
    case StepKind::Patch: return step_shape(c, x.args[0]);
    default: return {bt[0], bt[1], cfg.d_model};
  }
}

// A box of several steps: "layer 3", "layers 2-11", "a1.head", "layers 0-11: aL, fL", and the inputs.
std::string box_title(const LabelContext& c, const Box& b) {
  const ExprTable& t = *c.d.t;
  const Graph& g = c.m.graph();
  const ExprId top = b.top();
  if (b.members.size() == 1 || b.fixed) return step_title(c, top);
  std::vector<std::string> names;
  for (ExprId e : b.members) {
    const Node& n = g.node(t.get(e).node);
    if (n.layer() != b.first) continue;
    std::string name = b.first == b.last ? n.text() : n.name().str_with_layer("L");
    if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
  }
  std::string list;
  for (const auto& n : names) append(list, ", ", n);
  const bool full = full_layer(g, signature(c.d, g, b));
  const std::string first = std::to_string(b.first), last = std::to_string(b.last);
  std::string title = b.first == b.last ? (full ? "layer " + first : list)
                                        : "layers " + first + "-" + last + (full ? "" : ": " + list);
  return title + "\\n(" + inputs_text(c.o, c.d.inputs.at(top)) + ")";
}

std::string step_label(const LabelContext& c, const Box& b) {
  const ExprId top = b.top();
  std::string s = box_title(c, b);
  const Expr& x = c.d.t->get(top);
  // Interventions inside a step (not a Patch of its outputs) change it too: say so.
  if (x.kind != StepKind::Patch && x.interventions)
    for (const BoundIntervention& iv : c.d.t->list(x.interventions)) s += "\\n+ " + describe(c.m, iv);
  if (c.o.show_shapes) s += "\\n" + to_string(step_shape(c, top));
  if (c.o.show_cache && c.r.cache) s += c.r.cache->contains(top) ? "\\ncached" : "\\nnot cached";
  return s;
}

// What the edge from `arg` into split step `e` carries ("heads 0-2", "q 1, k 0-3", "pos 4").
std::string edge_label(const Expr& x, ExprId arg) {
  std::vector<int> slots;
  for (size_t i = 0; i < x.args.size(); ++i)
    if (x.args[i] == arg) slots.push_back(static_cast<int>(i));
  if (x.kind == StepKind::ZGather) return plural("head", slots);
  if (x.kind == StepKind::Rows) return "pos " + ranges(slots);
  if (x.kind != StepKind::AttnZHeads) return "";
  std::vector<int> by_role[3];
  for (int s : slots) by_role[s % 3].push_back(s / 3);
  if (by_role[0] == by_role[1] && by_role[1] == by_role[2]) return plural("head", by_role[0]);
  std::string out;
  const char* names[3] = {"q", "k", "v"};
  for (int r = 0; r < 3; ++r)
    if (!by_role[r].empty()) append(out, ", ", std::string(names[r]) + " " + ranges(by_role[r]));
  return out;
}

void fill_by_inputs(Attrs& a, const std::vector<int>& in) {
  if (in.size() == 1) {
    a.push_back({"fillcolor", input_colour(in[0])});
    return;
  }
  // Several inputs reach the step: stripes of their colours.
  std::string stripes;
  for (int k : in) append(stripes, ":", input_colour(k));
  a.push_back({"style", "striped"});
  a.push_back({"fillcolor", stripes});
}

std::string step_id(ExprId e) { return "s" + std::to_string(e); }

void provenance_legend(Digraph& g, const Dag& d, const DiagramOptions& o, bool any_mixed) {
  std::set<int> used;
  for (auto& [e, in] : d.inputs)
    if (d.t->get(e).kind == StepKind::Embed) used.insert(in.begin(), in.end());
  std::vector<std::string> ids;
  for (int k : used) {
    ids.push_back("legend_input" + std::to_string(k));
    g.node(ids.back(), {{"label", input_name(o, k)}, {"fillcolor", input_colour(k)}});
  }
  if (any_mixed && used.size() > 1) {
    std::vector<int> all(used.begin(), used.end());
    // A striped swatch, its words beside it: written across the stripes they were hard to read.
    Attrs a{{"label", ""}, {"width", "0.4"}};
    fill_by_inputs(a, all);
    ids.push_back("legend_mixed");
    g.node(ids.back(), a);
    ids.push_back("legend_mixed_text");
    g.node(ids.back(), {{"label", "several inputs"}, {"shape", "plaintext"}, {"style", ""}});
  }
  g.same_rank(reading_order(ids, o.left_to_right), true);
  g.cluster("legend", "inputs", ids, frame(o.left_to_right, {{"style", "rounded"}, {"color", "#999999"}}));
}

}  // namespace

// ---- Provenance: the diagram -------------------------------------------------------------------

DiagramOptions DiagramOptions::for_inputs(const std::vector<Batch>& inputs, std::vector<std::string> names) {
  DiagramOptions o;
  for (const Batch& b : inputs) o.input_keys.push_back(b.key());
  o.input_names = std::move(names);
  return o;
}

Digraph provenance_graph(const Result& r, const Model& m, const DiagramOptions& o) {
  if (!r.cache || r.root == 0) throw InputError("provenance diagram: the result holds no provenance (no run behind it)");
  const Cache::Lease lease(*r.cache, "provenance diagram");  // the drawing reads the cache's steps
  const ExprTable& t = r.cache->exprs();
  Dag d = analyse(t, r.root, o.input_keys);
  Drawing w = collapse(d, m.graph(), o.collapse);
  LabelContext c{m, d, w, o, r};

  Digraph g("provenance");
  base_style(g, o.left_to_right);
  g.set("labelloc", "t");
  g.set("label", std::to_string(r.stats.steps) + " steps: " + std::to_string(r.stats.computed) + " computed, " +
                     std::to_string(r.stats.cache_hits) + " from the cache");

  // Boxes, in order; boxes ending in steps of the same rank (step_rank) share a rank.
  std::map<int, std::vector<std::string>> ranks;
  bool any_mixed = false;
  for (const Box& b : w.boxes) {
    if (!b.alive) continue;
    const ExprId top = b.top();
    const StepKind k = t.get(top).kind;
    Attrs a{{"label", step_label(c, b)}};
    fill_by_inputs(a, d.inputs.at(top));
    any_mixed = any_mixed || d.inputs.at(top).size() > 1;
    if (k == StepKind::Embed) a.push_back({"penwidth", "2"});
    if (k == StepKind::Final) a.push_back({"peripheries", "2"});
    if (k == StepKind::Patch) a.push_back({"shape", "note"});
    g.node(step_id(top), a);
    ranks[step_rank(t, top)].push_back(step_id(top));
  }
  // Edges between boxes, one per (from, to), labelled with what a split step takes from each.
  std::map<std::pair<ExprId, ExprId>, std::string> edges;
  std::vector<std::pair<ExprId, ExprId>> edge_order;
  std::set<std::pair<ExprId, ExprId>> replacing;  // edges that bring a patched-in value: dashed
  for (ExprId e : d.order) {
    const Expr& x = t.get(e);
    const std::vector<ExprId> sources = replace_sources(t, x);
    for (ExprId a : d.reads.at(e)) {
      const ExprId from = w.of(a).top(), to = w.of(e).top();
      if (from == to) continue;
      auto [it, added] = edges.emplace(std::make_pair(from, to), "");
      if (added) edge_order.push_back(it->first);
      std::string l = o.edge_labels ? edge_label(x, a) : "";
      if (std::find(sources.begin(), sources.end(), a) != sources.end()) {
        l = "replaces";
        replacing.insert(it->first);
      }
      if (!l.empty()) append(it->second, "; ", l);
    }
  }
  for (const auto& key : edge_order) {
    Attrs a;
    if (!edges[key].empty()) a.push_back({"label", edges[key]});
    if (replacing.count(key)) a.push_back({"style", "dashed"});
    g.edge(step_id(key.first), step_id(key.second), a);
  }
  for (const auto& [key, ids] : ranks)
    if (ids.size() > 1) g.same_rank(ids);
  if (o.legend) provenance_legend(g, d, o, any_mixed);
  return g;
}

std::string provenance_dot(const Result& r, const Model& m, const DiagramOptions& o) {
  return provenance_graph(r, m, o).dot();
}

std::string render_provenance(const Result& r, const Model& m, const std::string& path_or_format,
                              const DiagramOptions& o) {
  Digraph g = provenance_graph(r, m, o);
  const bool is_file = std::filesystem::path(path_or_format).has_extension();
  std::string bytes = g.render(is_file ? format_for_path(path_or_format) : path_or_format);
  if (is_file) write_file(path_or_format, bytes);
  return bytes;
}

// ---- The model's DAG ---------------------------------------------------------------------------

namespace {

// The attention of one layer, inside its layer's box: one node, or its heads (and their q, k, v).
// Returns (node the residual enters, node whose output leaves) for the edges around it.
std::pair<std::string, std::string> draw_attention(Digraph& g, const Model& m, int L, Granularity gran,
                                                   bool left_to_right, std::vector<std::string>& members) {
  const std::string name = PathName::sublayer(Block::Attn, L).str();
  if (gran == Granularity::Layers) {
    g.node(name, {{"fillcolor", "#dbe9f6"}});
    members.push_back(name);
    return {name, name};
  }
  std::vector<std::string> heads, qkv;
  for (int h = 0; h < m.config().n_heads; ++h) {
    std::string head = PathName::head_of(L, h).str();
    g.node(head, {{"label", "h" + std::to_string(h)}, {"shape", "circle"}, {"fillcolor", "#dbe9f6"},
                  {"width", "0.3"}, {"fixedsize", "true"}, {"fontsize", "8"}});
    heads.push_back(head);
    if (gran == Granularity::QKV)
      for (Role role : {Role::Q, Role::K, Role::V}) {
        std::string id = PathName::head_input(L, h, role).str();
        g.node(id, {{"label", role_name(role)}, {"shape", "circle"}, {"width", "0.2"}, {"fixedsize", "true"},
                    {"fontsize", "7"}, {"fillcolor", "#f2f2f2"}});
        g.edge(id, head, {{"arrowsize", "0.3"}});
        qkv.push_back(id);
      }
  }
  g.same_rank(reading_order(heads, left_to_right), true);
  if (!qkv.empty()) g.same_rank(reading_order(qkv, left_to_right), true);
  std::vector<std::string> all = heads;
  all.insert(all.end(), qkv.begin(), qkv.end());
  members.insert(members.end(), all.begin(), all.end());
  g.cluster(name, name, all, frame(left_to_right, {{"style", "rounded,filled"}, {"fillcolor", "#f5f9fd"}, {"color", "#9bbcd9"}}),
            "layer" + std::to_string(L));
  const std::vector<std::string>& in = qkv.empty() ? heads : qkv;
  return {in[in.size() / 2], heads[heads.size() / 2]};
}

}  // namespace

// The model's nodes as drawn: a sub-layer's id is its entry point for edges coming in (the box of
// its heads when they are drawn), a residual sum's id is itself.
Digraph model_graph(const Model& m, Granularity gran, bool left_to_right) {
  const Graph& graph = m.graph();
  Digraph g("model");
  base_style(g, left_to_right);
  g.set("compound", "true");  // edges may end at a cluster's border (lhead / ltail)
  const std::string emb = graph.node(graph.embedding()).text();
  g.node(emb, {{"fillcolor", "#e8e8e8"}, {"penwidth", "2"}});
  const bool split = gran != Granularity::Layers;
  // Edges out of a node and into one: the attention with heads drawn is a cluster, entered and left
  // through one of its heads (one edge stands for one per head).
  std::map<NodeId, std::pair<std::string, Attrs>> into, out_of;
  auto edge = [&](NodeId from, NodeId to, Attrs a) {
    auto f = out_of.count(from) ? out_of[from] : std::make_pair(graph.node(from).text(), Attrs{});
    auto t = into.count(to) ? into[to] : std::make_pair(graph.node(to).text(), Attrs{});
    a.insert(a.end(), f.second.begin(), f.second.end());
    a.insert(a.end(), t.second.begin(), t.second.end());
    g.edge(f.first, t.first, a);
  };
  for (int L = 0; L < graph.n_layers(); ++L) {
    const std::string l = std::to_string(L);
    std::vector<std::string> members;
    const Attrs layer_box = frame(left_to_right, {{"style", "rounded"}, {"color", "#bbbbbb"}});
    g.cluster("layer" + l, "layer " + l, {}, layer_box);  // first, so the attention's box nests in it
    auto [enter, leave] = draw_attention(g, m, L, gran, left_to_right, members);
    const std::string attn_cluster = "cluster_" + graph.node(graph.attention(L)).text();
    into[graph.attention(L)] = {enter, split ? Attrs{{"lhead", attn_cluster}} : Attrs{}};
    out_of[graph.attention(L)] = {leave, split ? Attrs{{"ltail", attn_cluster}} : Attrs{}};
    for (NodeId n : {graph.attn_sum(L), graph.mlp(L), graph.mlp_sum(L)}) {
      if (n < 0) continue;
      const Node& node = graph.node(n);
      const bool sum = node.is(PathName::Residual);
      g.node(node.text(), sum ? Attrs{{"label", node.text() + " (+)"}, {"fillcolor", "#fff2cc"}}
                              : Attrs{{"fillcolor", "#e2f0d9"}});
      members.push_back(node.text());
    }
    for (NodeId n : {graph.attention(L), graph.attn_sum(L), graph.mlp(L), graph.mlp_sum(L)}) {
      if (n < 0) continue;
      const Node& node = graph.node(n);
      for (size_t i = 0; i < node.inputs.size(); ++i) {
        // A sum's residual edge is drawn dashed; the sub-layer edges solid.
        const bool residual_edge = node.is(PathName::Residual) && i == 0;
        edge(node.inputs[i], n, residual_edge ? Attrs{{"color", "#999999"}, {"style", "dashed"}} : Attrs{});
      }
    }
    g.cluster("layer" + l, "layer " + l, members, layer_box);
  }
  g.node(graph.node(graph.output()).text(), {{"fillcolor", "#e8e8e8"}, {"penwidth", "2"}});
  edge(graph.node(graph.output()).inputs[0], graph.output(), {});
  return g;
}

std::string model_dot(const Model& m, Granularity g, bool left_to_right) { return model_graph(m, g, left_to_right).dot(); }

// ---- Circuits ----------------------------------------------------------------------------------

namespace {

// Layer (and MLP after attention) of a path name, for ranks: "a3.head2.q" -> (3, 0), "f3" -> (3, 1),
// "emb" -> (-1, 0); anything else (logits, ln_final) goes on top.
std::pair<int, int> name_rank(const std::string& text) {
  const auto name = PathName::parse(text);
  if (!name || name->kind == PathName::Final) return {INT_MAX, 0};
  if (name->kind == PathName::Emb) return {-1, 0};
  return {name->layer, name->block == Block::Mlp ? 1 : 0};
}

// Nodes by (layer, 0 attention / 1 MLP), and how each group's rank is labelled.
using RankGroups = std::map<std::pair<int, int>, std::vector<std::string>>;

std::string rank_name(const std::pair<int, int>& key) {
  if (key.first < 0) return "embed";
  return "layer " + std::to_string(key.first) + (key.second ? " mlp" : "");
}

// One rank per group, in layer order: a grey "layer L" label leads each rank, and invisible edges
// between the labels keep the ranks in order even where no edge joins them.
void layer_ranks(Digraph& g, const RankGroups& groups) {
  std::string previous;
  for (const auto& [key, ids] : groups) {
    const std::string anchor = "rank " + rank_name(key);
    g.node(anchor, {{"label", rank_name(key)}, {"shape", "plaintext"}, {"style", ""}, {"fontcolor", "#888888"}});
    std::vector<std::string> row{anchor};
    row.insert(row.end(), ids.begin(), ids.end());
    g.same_rank(row, true);
    if (!previous.empty()) g.edge(previous, anchor, {{"style", "invis"}});
    previous = anchor;
  }
}

std::string edge_width(float effect, float max_abs) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%.2f", 1.0 + 5.0 * std::fabs(effect) / std::max(max_abs, 1e-12f));
  return buf;
}

void circuit_legend(Digraph& g, const std::string& metric, float threshold, const std::string& title) {
  std::string text = (title.empty() ? "" : title + "\\n") + "metric: " + (metric.empty() ? "effect" : metric) +
                     "\\nshown: |effect| >= " + fmt(threshold) + "\\nred: positive, blue: negative\\nwidth: |effect|";
  g.node("legend", {{"label", text}, {"shape", "note"}, {"fillcolor", "#fafafa"}, {"fontsize", "9"}});
}

// The name a sweep cell goes by: a path name when the sweep is per head, else site + layer.
std::string cell_name(const SweepResult& s, const std::vector<int64_t>& idx, const CircuitOptions& o) {
  std::string layer, head, pos, site = s.title;
  for (size_t a = 0; a < s.axes.size(); ++a) {
    const std::string& label = s.labels.at(a).at(idx[a]);
    if (s.axes[a] == "layer") layer = label;
    else if (s.axes[a] == "head") head = label;
    else if (s.axes[a] == "position") pos = label;
  }
  std::string name;
  const int L = std::atoi(layer.c_str());
  if (!head.empty())
    name = head == "mlp" ? PathName::sublayer(Block::Mlp, L).str() : PathName::head_of(L, std::atoi(head.c_str())).str();
  else
    name = site + layer;
  if (!head.empty() && (site == "q" || site == "k" || site == "v" || site == "pattern")) name += "." + site;
  if (!pos.empty()) {
    name += "\\n@ pos " + pos;
    int p = std::atoi(pos.c_str());
    if (p >= 0 && p < static_cast<int>(o.position_labels.size())) name += " '" + o.position_labels[p] + "'";
  }
  return name;
}

}  // namespace

std::string input_colour(int k) {
  static const char* const palette[] = {"#8ecae6", "#ffb4a2", "#b5e48c", "#ffd166",
                                        "#cdb4db", "#90e0ef", "#f4a261", "#c9c9c9"};
  return palette[static_cast<size_t>(k) % (sizeof palette / sizeof palette[0])];
}

std::string effect_colour(float effect) { return effect >= 0 ? "#c0392b" : "#2471a3"; }

Digraph circuit_graph(const SweepResult& sweep, float threshold, const CircuitOptions& o) {
  if (static_cast<size_t>(sweep.values.dim()) != sweep.axes.size() || sweep.labels.size() != sweep.axes.size())
    throw InputError("circuit: the sweep's values, axes and labels disagree");
  const SweepResult s = relative_to(sweep, o.baseline);
  Digraph g("circuit");
  base_style(g, o.left_to_right);
  const Shape& shape = s.values.shape();
  float max_abs = 0;
  for (int64_t i = 0; i < s.values.numel(); ++i)
    if (std::fabs(s.values.data()[i]) >= threshold) max_abs = std::max(max_abs, std::fabs(s.values.data()[i]));
  const size_t layer_axis = static_cast<size_t>(std::find(s.axes.begin(), s.axes.end(), "layer") - s.axes.begin());
  RankGroups by_layer;
  g.node("output", {{"label", o.output}, {"penwidth", "2"}, {"fillcolor", "#e8e8e8"}});
  if (!o.sender.empty()) g.node("sender", {{"label", o.sender}, {"penwidth", "2"}, {"fillcolor", "#e8e8e8"}});
  std::vector<int64_t> idx(shape.size(), 0);
  for (int64_t flat = 0; flat < s.values.numel(); ++flat) {
    for (int64_t rest = flat, a = static_cast<int64_t>(shape.size()) - 1; a >= 0; --a) {
      idx[a] = rest % shape[a];
      rest /= shape[a];
    }
    const float v = s.values.data()[flat];
    if (std::isnan(v) || std::fabs(v) < threshold) continue;
    const std::string id = "c" + std::to_string(flat);
    const float t = v / std::max(max_abs, 1e-12f);
    g.node(id, {{"label", cell_name(s, idx, o) + "\\n" + fmt(v)},
                {"fillcolor", diverging_colour(t)},
                {"fontcolor", std::fabs(t) > 0.65f ? "white" : "black"}});
    Attrs edge{{"penwidth", edge_width(v, max_abs)}, {"color", effect_colour(v)}};
    if (o.sender.empty()) {
      g.edge(id, "output", edge);
    } else {
      g.edge("sender", id, edge);
      g.edge(id, "output", {{"color", "#bbbbbb"}, {"style", "dashed"}});
    }
    const int layer = layer_axis < idx.size() ? std::atoi(s.labels[layer_axis][idx[layer_axis]].c_str()) : 0;
    by_layer[{layer, 0}].push_back(id);
  }
  layer_ranks(g, by_layer);
  if (o.legend) {
    circuit_legend(g, s.metric, threshold, s.title);
    g.same_rank({"output", "legend"});  // out of the way, beside the output
  }
  return g;
}

std::string circuit_dot(const SweepResult& s, float threshold, const CircuitOptions& o) {
  return circuit_graph(s, threshold, o).dot();
}

Digraph circuit_graph(const std::vector<WeightedEdge>& edges, float threshold, const CircuitOptions& o) {
  Digraph g("circuit");
  base_style(g, o.left_to_right);
  float max_abs = 0;
  for (const WeightedEdge& e : edges)
    if (std::fabs(e.effect) >= threshold) max_abs = std::max(max_abs, std::fabs(e.effect));
  RankGroups ranks;
  for (const WeightedEdge& e : edges) {
    if (std::isnan(e.effect) || std::fabs(e.effect) < threshold) continue;
    for (const std::string* n : {&e.sender, &e.receiver}) {
      if (g.has_node(*n)) continue;
      const auto key = name_rank(*n);
      g.node(*n, {{"fillcolor", key.first == INT_MAX || key.first < 0 ? "#e8e8e8" : "#f7f7f7"}});
      if (key.first != INT_MAX) ranks[key].push_back(*n);
    }
    g.edge(e.sender, e.receiver,
           {{"penwidth", edge_width(e.effect, max_abs)}, {"color", effect_colour(e.effect)}, {"label", fmt(e.effect)}});
  }
  layer_ranks(g, ranks);
  if (o.legend) circuit_legend(g, o.metric, threshold, "");
  return g;
}

std::string circuit_dot(const std::vector<WeightedEdge>& edges, float threshold, const CircuitOptions& o) {
  return circuit_graph(edges, threshold, o).dot();
}

Digraph circuit_graph(const EdgeGraph& eg, const std::string& scored_by, const CircuitOptions& o) {
  Digraph g("circuit");
  base_style(g, o.left_to_right);
  float max_abs = 0;
  for (int s = 0; s < eg.n_sources(); ++s)
    for (int d = 0; d < eg.n_destinations(); ++d)
      if (eg.in_circuit(s, d)) max_abs = std::max(max_abs, std::fabs(eg.score(s, d)));
  RankGroups ranks;
  auto node = [&](int source) {  // -1: the logits
    const std::string name = source < 0 ? "logits" : eg.source(source);
    if (g.has_node(name)) return name;
    const bool ends = source <= 0;
    g.node(name, {{"fillcolor", ends ? "#e8e8e8" : "#f7f7f7"}});
    if (source == 0) ranks[{-1, 0}].push_back(name);
    if (source > 0) ranks[{eg.source_layer(source), eg.source_head(source) >= 0 ? 0 : 1}].push_back(name);
    return name;
  };
  for (int s = 0; s < eg.n_sources(); ++s)
    for (int d = 0; d < eg.n_destinations(); ++d) {
      if (!eg.in_circuit(s, d)) continue;
      const float score = eg.score(s, d);
      const std::string& dest = eg.destination(d);
      const size_t role = dest.find('<');  // "a1.h2<k>": the head's key input
      std::string label = fmt(score);
      if (role != std::string::npos) label = dest.substr(role + 1, 1) + " " + label;
      g.edge(node(s), node(eg.owner(d)),
             {{"penwidth", edge_width(score, max_abs)}, {"color", effect_colour(score)}, {"label", label}});
    }
  layer_ranks(g, ranks);
  if (o.legend) {
    const std::string text = scored_by + "\\nmetric: " + (o.metric.empty() ? "effect" : o.metric) + "\\n" +
                             std::to_string(eg.circuit_edges()) + " edges of " + std::to_string(eg.n_edges()) +
                             "\\nred: positive, blue: negative\\nwidth: |score|; q, k, v: the head's input";
    g.node("legend", {{"label", text}, {"shape", "note"}, {"fillcolor", "#fafafa"}, {"fontsize", "9"}});
  }
  return g;
}

}  // namespace pathpatch::viz
