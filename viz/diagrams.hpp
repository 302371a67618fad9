#pragma once
// Diagrams drawn with Graphviz: the provenance DAG of a run, the model's DAG, and circuits found by
// a sweep or path patching.
//
//   namespace viz = pathpatch::viz;
//   pp::Result r = pp::run(model, {clean, corrupt}, which, branch);
//   auto opts = viz::DiagramOptions::for_inputs({clean, corrupt}, {"clean", "corrupted"});
//   viz::render_provenance(r, model, "paths.svg", opts);      // or "paths.png", or just "svg" (bytes)
//   std::string dot = viz::provenance_dot(r, model, opts);    // the DOT source
//
//   viz::model_graph(model, viz::Granularity::Heads).render_file("model.png");
//
//   pp::SweepResult s = pp::sweep_senders(model, clean, corrupt, {pp::Receiver::logits()}, metric);
//   viz::CircuitOptions co;
//   co.baseline = viz::Baseline::Clean;                        // effect = value - clean
//   viz::circuit_graph(s, 0.1f, co).render_file("circuit.svg");  // cells with |effect| >= 0.1
//
// Every function has a *_graph form returning the viz::Digraph (render it to any format) and a
// *_dot form returning its DOT source.
#include <cstdint>
#include <string>
#include <vector>

#include "graph/batch.hpp"
#include "viz/graphviz.hpp"
#include "viz/heatmap.hpp"

namespace pathpatch {
struct Result;
struct SweepResult;
class EdgeGraph;
class Model;
}  // namespace pathpatch

namespace pathpatch::viz {

// ---- The provenance DAG of a run ---------------------------------------------------------------

struct DiagramOptions {
  // The run's inputs, by Batch::key(), in the order given to run(): an embedding is coloured by
  // the index of the input it reads. Embeddings of inputs not listed are numbered after them, in
  // the order they are met.
  std::vector<uint64_t> input_keys;
  std::vector<std::string> input_names;  // legend names ("clean", ...); default "input k"
  // Draw the plain steps of a layer that the same inputs reach as one box ("layer 0", "a1.head",
  // "f1.head, f1"), and runs of such boxes over consecutive layers as one ("layers 2-11"). Split
  // steps, patches and the steps where inputs meet keep boxes of their own. Off: one node per step.
  bool collapse = true;
  bool show_shapes = false;   // each step's tensor shape
  bool show_cache = false;    // whether the memo cache holds each step's value (after the run)
  bool edge_labels = true;    // which heads, q/k/v or positions an edge carries into a split step
  bool left_to_right = false; // default: bottom to top, inputs at the bottom
  bool legend = true;         // the inputs' colours

  // Options naming the inputs of a run (their keys, in order).
  static DiagramOptions for_inputs(const std::vector<Batch>& inputs, std::vector<std::string> names = {});
};

// Nodes are the steps (ExprIds) r.root depends on (its arguments, recursively, and the steps whose
// values a replace intervention patches in, drawn with a dashed edge), each drawn once; edges run
// from the inputs toward the output. Step nodes have ids "s<ExprId>" (a collapsed box: the id of
// its last step); legend nodes start with "legend".
Digraph provenance_graph(const Result& r, const Model& m, const DiagramOptions& o = {});
std::string provenance_dot(const Result& r, const Model& m, const DiagramOptions& o = {});
// `path_or_format`: a file name (format from its extension; the file is written) or a bare format
// ("svg", "png", "dot"). Returns the rendered bytes either way.
std::string render_provenance(const Result& r, const Model& m, const std::string& path_or_format,
                              const DiagramOptions& o = {});

// ---- The model's DAG ---------------------------------------------------------------------------

enum class Granularity {
  Layers,  // emb -> aL.head -> aL -> fL.head -> fL -> ... -> ln_final
  Heads,   // each attention's heads aL.headH
  QKV,     // and each head's q, k, v inputs aL.headH.q|k|v
};

Digraph model_graph(const Model& m, Granularity g = Granularity::Layers, bool left_to_right = false);
std::string model_dot(const Model& m, Granularity g = Granularity::Layers, bool left_to_right = false);

// ---- Circuits ----------------------------------------------------------------------------------

struct CircuitOptions {
  Baseline baseline = Baseline::None;  // a sweep's effects are its values minus this (heatmap.hpp)
  std::string output = "logits";  // what the cells' effects reach (sender sweeps)
  // Receiver sweeps: the node the cells receive from ("a0.head3"), drawn with an edge into each cell.
  std::string sender;
  std::string metric;             // legend text for the explicit-edge form (a sweep names its own)
  std::vector<std::string> position_labels;  // token strings, for cells on a position axis
  bool left_to_right = false;     // default: bottom to top, the output at the top
  bool legend = true;
};

// Cells of a sweep (layer x head, layer x position, or layer x position x head) whose |effect| >=
// threshold, each with an edge to the output (or from opts.sender): width by |effect|, colour by
// sign (red positive, blue negative), one rank per layer. A legend names the metric and the threshold.
Digraph circuit_graph(const SweepResult& sweep, float threshold, const CircuitOptions& o = {});
std::string circuit_dot(const SweepResult& sweep, float threshold, const CircuitOptions& o = {});

// An explicit list of weighted edges (path patching between named senders and receivers: "a0.head3"
// -> "a2.head1.q", "a2.head1" -> "logits"). Edges with |effect| < threshold are left out, and so are
// nodes left without an edge.
struct WeightedEdge {
  std::string sender;
  std::string receiver;
  float effect = 0;
};
Digraph circuit_graph(const std::vector<WeightedEdge>& edges, float threshold, const CircuitOptions& o = {});
std::string circuit_dot(const std::vector<WeightedEdge>& edges, float threshold, const CircuitOptions& o = {});

// The circuit of an edge graph (pathpatch/circuits.hpp): its nodes by layer, its edges with width
// by |score| and colour by sign, each edge into a head labelled with the input it enters (q, k, v)
// and its score. The legend says what scored the edges.
Digraph circuit_graph(const EdgeGraph& graph, const std::string& scored_by, const CircuitOptions& o = {});

// The colour the diagrams give input k ("#rrggbb"), and the signs of effects.
std::string input_colour(int k);
std::string effect_colour(float effect);

}  // namespace pathpatch::viz
