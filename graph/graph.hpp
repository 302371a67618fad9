#pragma once
// The model as a DAG of named nodes. Building it computes nothing.
//
// Every family shares one skeleton: pre-norm decoder blocks, each an attention and (unless the
// model is attention-only) an MLP, wired sequentially or in parallel (skeleton below). Two naming
// schemes meet here:
//  - node names (nano-path-patching, typed as PathName in path.hpp), used by path predicates: `emb`;
//    per layer L `aL` (residual + attention), `aL.head` (the attention sub-layer), `fL` (residual +
//    MLP), `fL.head` (the MLP sub-layer); `ln_final`. Splits add the edge names `aL.headH`,
//    `aL.headH.q|k|v`, `aL.head.posP`, `fL.head.posP`, `aL.headH.q|k|v.posP` and `ln_final.posP`
//    (PathAlphabet below).
//  - activation names (TransformerLens), used to read and patch values: `blocks.3.attn.hook_z`, ...
//    Every activation belongs to the node that computes it; the family's options decide which
//    exist (models/activations.cpp).
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "graph/path.hpp"
#include "graph/step.hpp"

namespace pathpatch {

using NodeId = int32_t;
using ActId = int32_t;

// The shape of the DAG.
struct Skeleton {
  int n_layers = 0;
  int n_heads = 0;     // query heads
  int n_kv_heads = 0;  // key/value heads (grouped-query attention: fewer than n_heads)
  bool has_mlp = true;
  // Parallel residual (GPT-NeoX, GPT-J): layer L's MLP reads resid_pre(L), as its attention does,
  // not resid_pre(L) + attention. See path.hpp for what that means for paths.
  bool parallel = false;
};

struct Node {
  PathEntry entry;             // emb, aL, aL.head, fL, fL.head or ln_final
  std::vector<NodeId> inputs;  // a residual sum: {residual, sub-layer}; a sub-layer, ln_final: {input}
  const PathName& name() const { return entry.name; }
  const std::string& text() const { return entry.text; }
  int layer() const { return entry.name.layer; }
  bool is(PathName::Kind k) const { return entry.name.kind == k; }
};

struct Activation {
  std::string name;   // TransformerLens name
  NodeId node;        // the node computing it
  int layer = -1;
  StepKind stage;     // the step computing it: Embed, AttnZ, AttnOut, Mlp, Add or Final
  bool is_output;     // the value the step passes on (z, attn_out, mlp_out, resid_*, ln_final)
  std::string axes;   // one letter per axis, batch first: "BTD", "BTHE", "BHTS" (see kernels.hpp)
  bool kv_heads = false;  // the H axis counts key/value heads (k, v, rot_k under grouped-query attention)
  int pos_axis() const;   // axis of query positions (T), or -1
  int head_axis() const;  // axis of heads (H), or -1
};

class Graph {
 public:
  Graph() = default;
  explicit Graph(const Skeleton& s);  // the nodes; activations are added by the model
  ActId add_activation(Activation a);

  const Skeleton& skeleton() const { return skeleton_; }
  int n_layers() const { return skeleton_.n_layers; }
  int n_heads() const { return skeleton_.n_heads; }
  int n_kv_heads() const { return skeleton_.n_kv_heads; }
  bool has_mlp() const { return skeleton_.has_mlp; }

  const Node& node(NodeId id) const { return nodes_.at(id); }
  const Activation& activation(ActId id) const { return acts_.at(id); }
  const std::vector<Node>& nodes() const { return nodes_; }
  const std::vector<Activation>& activations() const { return acts_; }

  // The nodes by role. `mlp` and `mlp_sum` are -1 for attention-only models.
  NodeId embedding() const { return 0; }
  NodeId output() const { return static_cast<NodeId>(nodes_.size()) - 1; }  // ln_final
  NodeId attention(int layer) const { return layers_.at(layer).attn; }
  NodeId attn_sum(int layer) const { return layers_.at(layer).attn_sum; }
  NodeId mlp(int layer) const { return layers_.at(layer).mlp; }
  NodeId mlp_sum(int layer) const { return layers_.at(layer).mlp_sum; }
  NodeId node_of(const PathName& name) const;  // -1 unless `name` names a node of this graph

  // Lookups by name; find_* throw a NameError listing the closest valid names.
  NodeId find_node(std::string_view name) const;
  ActId find_activation(std::string_view name) const;  // full TL names and short forms ("z3")
  int lookup_node(std::string_view name) const;        // -1 if absent
  int lookup_activation(std::string_view name) const;  // -1 if absent (full names only)

  // Activations of one node computed by one step kind (in order), e.g. the ones a patch must follow.
  std::vector<ActId> activations_of(NodeId node, StepKind stage) const;

 private:
  struct Layer {
    NodeId attn = -1, attn_sum = -1, mlp = -1, mlp_sum = -1;
  };
  NodeId add_node(PathName name, std::vector<NodeId> inputs);

  Skeleton skeleton_;
  std::vector<Node> nodes_;
  std::vector<Layer> layers_;
  std::vector<Activation> acts_;
  std::unordered_map<std::string, ActId> act_index_;
};

// Every path name of a graph for sequences of `seq` positions, numbered: the words paths are made
// of. The tracer pushes these entries onto paths; path rules use them as their alphabet.
//
// The names of the heads' inputs' positions, aL.headH.q|k|v.posP, are symbols too, numbered after
// entries(), but not interned: there are layers x heads x 3 x seq of them (221k for GPT-2 small at
// 512 positions), and a sweep compiles an alphabet per experiment. name() makes any symbol's name.
class PathAlphabet {
 public:
  PathAlphabet(const Graph& g, int64_t seq);

  const std::vector<PathEntry>& entries() const { return entries_; }  // the interned symbols
  int64_t seq() const { return seq_; }
  int size() const { return size_; }  // every symbol, the heads' inputs' positions included
  // Symbol numbers.
  int node(NodeId n) const { return n; }
  int head(int layer, int head) const { return head_base_.at(layer) + 4 * head; }
  int head_input(int layer, int head, Role r) const { return this->head(layer, head) + 1 + static_cast<int>(r); }
  int position(NodeId sublayer, int64_t pos) const { return pos_base_.at(sublayer) + static_cast<int>(pos); }
  int final_position(int64_t pos) const { return final_base_ + static_cast<int>(pos); }
  int head_input_position(int layer, int head, Role r, int64_t pos) const {
    return listed_ + static_cast<int>(((int64_t{layer} * heads_ + head) * 3 + static_cast<int>(r)) * seq_ + pos);
  }
  bool interned(int symbol) const { return symbol < listed_; }
  const PathEntry& at(int symbol) const { return entries_.at(symbol); }  // interned symbols only
  PathName name(int symbol) const;
  int find(const PathName& n) const;  // the symbol of a name, -1 if this graph's paths never hold it

 private:
  const Graph* graph_;
  int64_t seq_;
  int heads_, final_base_, listed_, size_;
  std::vector<PathEntry> entries_;  // the graph's nodes first, in node order
  std::vector<int> head_base_;      // per layer: its heads, each followed by its q, k, v
  std::vector<int> pos_base_;       // per node (sub-layers only): its positions
};

// TransformerLens-style short forms: "z3" -> "blocks.3.attn.hook_z", "resid_pre0", "pattern1",
// "mlp_out2", "ln1.0" ... Returns the input unchanged when it is not a short form.
std::string expand_activation_name(std::string_view name);

// The `count` names in `candidates` closest to `name` (edit distance), for error messages.
std::vector<std::string> closest_names(std::string_view name, const std::vector<std::string>& candidates,
                                       size_t count = 3);
std::string did_you_mean(std::string_view name, const std::vector<std::string>& candidates);

}  // namespace pathpatch
