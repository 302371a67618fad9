#pragma once
// Interventions on named activations (graphpatch's idea): replace a value with another input's,
// zero it, add to it, set it (to a dataset mean, say), or probe it (record without changing).
// Each may select heads and positions; the ones given for one activation apply in order, so a
// probe placed before a zero sees the value before it was zeroed.
//
// An intervention applies wherever its activation is computed: under a split, on every path.
#include <cstdint>
#include <string>
#include <vector>

#include "graph/graph.hpp"
#include "graph/tensor.hpp"

namespace pathpatch {

enum class Op { Replace, Zero, Add, Set, Probe };
const char* op_name(Op op);

struct Select {
  std::vector<int> heads;      // empty: all heads (for hook_k, hook_v, hook_rot_k: key/value heads)
  std::vector<int> positions;  // empty: all positions; negative values count from the end
};

struct Intervention {
  Op op = Op::Probe;
  std::string activation;  // a TransformerLens name or short form ("z3")
  Select select;
  int source = -1;         // Replace: the input whose plain forward supplies the value
  Tensor value;            // Add / Set: shaped like a trailing part of the activation's shape
  std::string label;       // Probe: name under which the value is recorded (default: activation)
};

Intervention replace(std::string activation, int source_input, Select select = {});
Intervention zero(std::string activation, Select select = {});
Intervention add(std::string activation, Tensor value, Select select = {});
Intervention set(std::string activation, Tensor value, Select select = {});
Intervention probe(std::string activation, std::string label = "");

using ExprId = uint32_t;

// An intervention bound to a graph and a run: names resolved, positions made non-negative.
struct BoundIntervention {
  Op op;
  ActId act;
  std::vector<int> heads;      // sorted, unique; empty = all
  std::vector<int> positions;  // sorted, unique; empty = all
  ExprId source = 0;           // Replace: the plain-forward expression that computes the value
  Tensor value;
  uint64_t value_hash = 0;
  std::string label;
  uint64_t key() const;        // a hash of what it computes (probes have no effect on it)
  // Whether two change the activation alike (everything but the label; values compared bit for
  // bit): what a key's hit is confirmed by, so that a hash collision never merges two.
  bool same_effect(const BoundIntervention& o) const;
};

// What a probe recorded: one computed instance of a probed activation.
struct ProbeRecord {
  std::string label;       // the probe's label (its activation's name as given, unless set)
  std::string activation;  // the full TransformerLens name
  ActId act;
  ExprId expr;             // the step that computed this instance
  Tensor value;
};

// Applies one intervention to `x` (the activation's value, writable) given its axis layout;
// `source` is the replacing value for Replace (shaped like x). `x` may hold positions
// [pos_offset, pos_offset + n) of the activation; selected positions outside are skipped.
void apply_intervention(const Activation& info, const BoundIntervention& iv, Tensor& x, const Tensor* source,
                        int64_t pos_offset = 0);

// Checks a value for Add/Set against an activation of shape `shape` (trailing-axis broadcast).
void check_broadcast(const Tensor& value, const Shape& shape, const std::string& what);

uint64_t hash_tensor(const Tensor& t);
uint64_t hash_combine(uint64_t seed, uint64_t v);

}  // namespace pathpatch
