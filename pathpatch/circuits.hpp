#pragma once
// Circuits: a model's components as EAP-IG's graph, edge scores from gradients (EAP, EAP-IG),
// circuits chosen by score, and their faithfulness measured exactly on the engine.
//
//   pp::EdgeGraph g = pp::edge_attribution(model, clean, corrupt, metric);   // EAP-IG, 5 steps
//   g.select_top(30);                                  // the 30 edges of largest |score|, then pruned
//   pp::Faithfulness f = pp::faithfulness(model, clean, corrupt, g, metric);  // exact: path patching
//   pp::write_file("circuit.json", g.to_json());       // EAP-IG's format (its Graph.from_json reads it)
//
// The graph is Hanna et al. (2024)'s, as hannamw/EAP-IG builds it. Sources: `input` (the
// embeddings), each head `a{L}.h{H}` (its hook_result) and each MLP `m{L}` (hook_mlp_out).
// Destinations: each head's q, k and v inputs (`a{L}.h{H}<q>`), each MLP's input and `logits` (the
// final residual). Every source feeds every destination after it; in a parallel block (GPT-NeoX)
// a layer's MLP reads only what enters the layer. On grouped-query models every query head has its
// own k and v input (EAP-IG's ungrouped attention); nothing is asked of the user. Attention-only
// models have no `m{L}`.
//
// Scores follow EAP-IG's conventions: the activation difference is corrupted - clean, the gradient
// is of the metric's batch mean, summed over positions and rows and divided by the number of rows
// (EAP-IG's `partial(metric, mean=True)`; its `loss=True` metrics are the negation of ours). EAP
// takes the gradient on the clean input; EAP-IG averages it over the inputs corrupted + k/m
// (clean - corrupted) at the embeddings, k = 0 .. m-1; EAP-IG on activations over clean runs in
// which one node's output (the embeddings, a layer's heads together, or an MLP) is set to
// corrupted + k/m (clean - corrupted), k = 1 .. m, for each node in turn (no gradient passes into
// the node set).
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "pathpatch/metrics.hpp"
#include "pathpatch/patching.hpp"

namespace pathpatch {

class EdgeGraph {
 public:
  // The graph of a model's components, every edge out of the circuit, every score 0.
  static EdgeGraph of(const Model& model);
  // EAP-IG's JSON ({"cfg", "nodes", "edges"}): scores and membership of the edges it names.
  // FormatError for bad JSON or an edge this model's graph lacks; InputError for another model's
  // sizes.
  static EdgeGraph from_json(const Model& model, const std::string& json_text, const std::string& where);
  std::string to_json() const;

  int n_sources() const { return static_cast<int>(sources_.size()); }
  int n_destinations() const { return static_cast<int>(destinations_.size()); }
  const std::string& source(int s) const { return sources_.at(s); }
  const std::string& destination(int d) const { return destinations_.at(d); }
  bool is_edge(int s, int d) const { return s < first_after(d); }  // the source comes before
  std::string edge_name(int s, int d) const;  // "a0.h1->a2.h3<k>"
  // The (source, destination) of an edge name; NameError if the graph has no such edge.
  std::pair<int, int> find_edge(const std::string& name) const;
  int64_t n_edges() const;

  float score(int s, int d) const { return scores_.data()[s * n_destinations() + d]; }
  void set_score(int s, int d, float v) { scores_.data_mut()[s * n_destinations() + d] = v; }
  const Tensor& scores() const { return scores_; }  // [sources, destinations]; 0 where no edge
  bool in_circuit(int s, int d) const { return in_circuit_[s * n_destinations() + d] != 0; }
  void set_in_circuit(int s, int d, bool on);
  bool node_in_circuit(int s) const { return node_in_circuit_.at(s) != 0; }
  int64_t circuit_edges() const;
  int64_t circuit_nodes() const;  // sources in the circuit
  std::vector<std::pair<int, int>> edges_by_score(bool absolute = true) const;  // every edge, best first

  // Choosing a circuit (as EAP-IG's apply_topn / apply_threshold / apply_greedy): each starts from an
  // empty circuit and prunes at the end. InputError for n beyond the number of edges.
  void select_top(int64_t n, bool absolute = true);
  void select_threshold(float threshold, bool absolute = true);
  // From the logits up: the best edge into a node already in the circuit, n times.
  void select_greedy(int64_t n, bool absolute = true);
  void select_all();
  // Until nothing changes: drops nodes without an incoming (input excepted) or an outgoing circuit
  // edge, and edges whose source is dropped.
  void prune();

  // A source's layer and head (-1 for an MLP; input: layer -1).
  int source_layer(int s) const { return s == 0 ? -1 : (s - 1) / stride(); }
  int source_head(int s) const { return s == 0 || (s - 1) % stride() == n_heads_ ? -1 : (s - 1) % stride(); }
  // The source node a destination belongs to (-1 for logits), and its layer's shape.
  int owner(int d) const { return dest_owner_.at(d); }
  int n_layers() const { return n_layers_; }
  int n_heads() const { return n_heads_; }
  bool parallel() const { return parallel_; }
  bool has_mlps() const { return mlps_; }

  // Indices (EAP-IG's forward and backward orders).
  int input_index() const { return 0; }
  int head_index(int layer, int head) const { return 1 + layer * stride() + head; }
  int mlp_index(int layer) const { return 1 + layer * stride() + n_heads_; }
  int head_input_index(int layer, int head, int role) const { return layer * dstride() + role * n_heads_ + head; }
  int mlp_input_index(int layer) const { return layer * dstride() + 3 * n_heads_; }
  int logits_index() const { return n_destinations() - 1; }
  // The sources before destination d: [0, first_after(d)).
  int first_after(int d) const { return dest_prev_.at(d); }

 private:
  friend EdgeGraph edge_attribution(const Model&, const Batch&, const Batch&, const Metric&,
                                    const struct EdgeAttributionOptions&);
  float* scores_mut() { return scores_.data_mut(); }
  int stride() const { return n_heads_ + (mlps_ ? 1 : 0); }
  int dstride() const { return 3 * n_heads_ + (mlps_ ? 1 : 0); }
  void update_nodes_from_edges();

  int n_layers_ = 0, n_heads_ = 0, d_model_ = 0;
  bool parallel_ = false, mlps_ = true;
  std::vector<std::string> sources_, destinations_;
  std::vector<int> dest_prev_, dest_owner_;
  Tensor scores_;
  std::vector<uint8_t> in_circuit_, node_in_circuit_;
};

enum class EdgeMethod {
  Eap,               // the gradient on the clean input (Syed et al. 2023)
  EapIgInputs,       // integrated gradients over the embeddings, `steps` points (Hanna et al. 2024)
  EapIgActivations,  // each node's output interpolated in turn (EAP-IG's "EAP-IG-activations"):
                     // `steps` points per node, the clean run otherwise; 1 + 2 x layers nodes
};
const char* edge_method_name(EdgeMethod m);  // "EAP", "EAP-IG", "EAP-IG (activations)"

struct EdgeAttributionOptions {
  EdgeMethod method = EdgeMethod::EapIgInputs;
  int steps = 5;  // EAP-IG's m
  Progress progress;
};

// Every edge's score (EdgeGraph::scores), nothing in the circuit yet. The clean and corrupted
// inputs must share their layout. InputError for a custom metric. Cost: EAP two forwards and a
// backward, EAP-IG one forward and `steps` forwards and backwards; memory: the sources' differences
// and the gradients at every destination's input, (sources + destinations) x B x T x d_model floats
// (230 MB for GPT-2 small at 8 x 16 tokens), besides one backward's saved activations.
EdgeGraph edge_attribution(const Model& model, const Batch& clean, const Batch& corrupted, const Metric& metric,
                           const EdgeAttributionOptions& options = {});

// The experiment of a circuit, as an automaton over path names: every path that passes an edge
// outside the circuit reads the corrupted input (1), the others the clean one (0). (As path rules
// it would be one rule per edge outside the circuit, too many to compile.)
CompiledRules circuit_rules(const Model& model, int64_t seq, const EdgeGraph& graph);
// One edge as a path-rule pattern (graph/path.hpp's words): the edge a1.h0 -> a2.h3<k> is
// "a2 a2.head a2.head3 a2.head3.k a1 a1.head a1.head0".
Pattern edge_pattern(const EdgeGraph& graph, int source, int destination);

// What an edge outside the circuit carries instead of its source's output in the clean run.
enum class Ablation {
  Corrupted,  // the corrupted run's (path patching with circuit_rules: exact on every family)
  Mean,       // the mean of the source's output over a batch's rows and real positions (EAP-IG's
              // "mean"): each destination's input rebuilt as the clean run's residual minus, for
              // every source outside the circuit, its output less that mean
};

struct Faithfulness {
  float circuit = 0, clean = 0, corrupted = 0;  // the metric's batch means
  float faithfulness = 0;                       // (circuit - corrupted) / (clean - corrupted)
  std::vector<float> circuit_rows;              // the circuit's run, per row
  int64_t edges = 0, nodes = 0;                 // the circuit's size
};

// Runs the clean input with every edge outside the circuit patched from the corrupted run (path
// patching with circuit_rules), exactly. InputError if clean and corrupted score the same.
Faithfulness faithfulness(const Model& model, const Batch& clean, const Batch& corrupted, const EdgeGraph& circuit,
                          const Metric& metric, std::shared_ptr<Cache> cache = nullptr);
// The same with every edge outside the circuit carrying its source's mean over `mean_over`'s rows
// (Ablation::Mean); `corrupted` is then the run with every edge so ablated (the empty circuit).
// `corrupted_input` is the metric's corrupted reference where it needs one (KL, the normalised
// logit difference). On Gemma-2 a head's output passes the post-attention norm before the
// residual: there the rebuilt inputs ablate heads at hook_result, as EAP-IG does, not exactly.
Faithfulness mean_ablated_faithfulness(const Model& model, const Batch& clean, const Batch& corrupted_input,
                                       const Batch& mean_over, const EdgeGraph& circuit, const Metric& metric);

// The clean run's final hidden states [B,T,D] with each destination's input rebuilt: the residual
// as this run computes it, less, for every source whose edge into the destination is outside the
// circuit, its output in this run minus ablated[source] ([D], broadcast, or [B,T,D]). With the
// corrupted run's outputs it is circuit_rules' experiment (but on Gemma-2, whose post-norm sits
// between the heads and the residual); with means, mean ablation. InputError for wrong shapes.
Tensor rebuilt_hidden(const Model& model, const Batch& clean, const EdgeGraph& circuit,
                      const std::vector<Tensor>& ablated);

// The exact score of each edge given: the metric's batch mean on the clean run with that edge
// alone patched from the corrupted run, minus the clean run's (ACDC's test, all edges planned
// together: what they share is computed once). On EAP's scale (a first-order estimate of the same
// change) up to EAP-IG's division by the number of rows.
std::vector<float> exact_edge_scores(const Model& model, const Batch& clean, const Batch& corrupted,
                                     const EdgeGraph& graph, const std::vector<std::pair<int, int>>& edges,
                                     const Metric& metric, const PatchingOptions& options = {});

}  // namespace pathpatch
