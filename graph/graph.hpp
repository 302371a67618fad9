#pragma once
// The model as a DAG of named nodes. Building it computes nothing.
//
// Two naming schemes meet here:
//  - node names (nano-path-patching), used by path predicates: `emb`; per layer L `aL` (residual +
//    attention), `aL.head` (the attention sub-layer), `fL` (residual + MLP), `fL.head` (the MLP
//    sub-layer); `ln_final`. Splits add the edge names `aL.headH`, `aL.headH.q|k|v`, `aL.head.posP`
//    and `fL.head.posP` (see path.hpp).
//  - activation names (TransformerLens), used to read and patch values: `blocks.3.attn.hook_z`, ...
//    Every activation belongs to the node that computes it.
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace pathpatch {

using NodeId = int32_t;
using ActId = int32_t;

enum class NodeKind { Embed, Attention, Mlp, Residual, Final };

// Which part of a node's computation produces an activation. The evaluator memoises each part on
// its own, so patching z reuses the cached attention pattern, and so on.
enum class Stage : uint8_t {
  Embed,     // token (+ position) embedding
  AttnZ,     // ln1 .. pattern .. z
  AttnOut,   // per-head result and attn_out
  Mlp,       // ln2 .. mlp_out
  Residual,  // the residual sums: resid_mid, resid_post, next resid_pre
  Final,     // ln_final
};

struct Node {
  std::string name;
  NodeKind kind;
  int layer = -1;               // -1 for emb and ln_final
  std::vector<NodeId> inputs;   // Residual: {residual, sub-layer}; Attention, Mlp, Final: {input}
};

struct Activation {
  std::string name;   // TransformerLens name
  NodeId node;        // the node computing it
  int layer = -1;
  Stage stage;
  bool is_output;     // the value the stage passes on (z, attn_out, mlp_out, resid_*, ln_final)
  std::string axes;   // one letter per axis, batch first: "BTD", "BTHE", "BHTS" (see kernels.hpp)
  bool kv_heads = false;  // the H axis counts key/value heads (Llama k, v, rot_k)
  int pos_axis() const;   // axis of query positions (T), or -1
  int head_axis() const;  // axis of heads (H), or -1
};

class Graph {
 public:
  NodeId add_node(std::string name, NodeKind kind, int layer, std::vector<NodeId> inputs);
  ActId add_activation(Activation a);
  void set_output(NodeId id) { output_ = id; }

  const Node& node(NodeId id) const { return nodes_.at(id); }
  const Activation& activation(ActId id) const { return acts_.at(id); }
  const std::vector<Node>& nodes() const { return nodes_; }
  const std::vector<Activation>& activations() const { return acts_; }
  NodeId output() const { return output_; }

  // Lookups by name; find_* throw a NameError listing the closest valid names.
  NodeId find_node(std::string_view name) const;
  ActId find_activation(std::string_view name) const;  // full TL names and short forms ("z3")
  int lookup_node(std::string_view name) const;        // -1 if absent
  int lookup_activation(std::string_view name) const;  // -1 if absent (full names only)

  // Activations of one node computed by one stage (in order), e.g. the ones a patch must follow.
  std::vector<ActId> activations_of(NodeId node, Stage stage) const;

  int n_layers = 0;
  int n_heads = 0;
  int n_kv_heads = 0;
  bool has_mlp = true;

 private:
  std::vector<Node> nodes_;
  std::vector<Activation> acts_;
  std::unordered_map<std::string, NodeId> node_index_;
  std::unordered_map<std::string, ActId> act_index_;
  NodeId output_ = -1;
};

// TransformerLens-style short forms: "z3" -> "blocks.3.attn.hook_z", "resid_pre0", "pattern1",
// "mlp_out2", "ln1.0" ... Returns the input unchanged when it is not a short form.
std::string expand_activation_name(std::string_view name);

// The `count` names in `candidates` closest to `name` (edit distance), for error messages.
std::vector<std::string> closest_names(std::string_view name, const std::vector<std::string>& candidates,
                                       size_t count = 3);
std::string did_you_mean(std::string_view name, const std::vector<std::string>& candidates);

}  // namespace pathpatch
