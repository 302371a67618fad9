#pragma once
// The kinds of step the engine computes, and one table of what each kind is.
//
// A step is one piece of the forward: an embedding, one attention's z, its output, an MLP, a
// residual sum, the final norm, plus the pieces splits and patches add (rows assembled by position,
// z assembled by head, a patch of a step's outputs). The tracer builds expressions of these kinds
// (provenance.hpp), the evaluator computes them (evaluator.hpp), viz draws them; each asks this
// table rather than switching over the kinds itself.
#include <cstdint>

namespace pathpatch {

enum class StepKind : uint8_t {
  Embed,       // input -> resid_pre0                       args: {}          input: batch key
  Rows,        // position P's row from args[P]             args: [T]
  AttnZ,       // ln1 .. z of one attention on one input     args: {x}
  AttnZHeads,  // z with per-head q/k/v inputs               args: [3H] (q, k, v of head 0, 1, ...)
  ZGather,     // head h's z from args[h] (an AttnZ)         args: [H]
  AttnOut,     // result, attn_out from z                    args: {z}
  Mlp,         // ln2 .. mlp_out                             args: {x}
  Add,         // residual sum at aL / fL                    args: {residual, sub-layer}
  Final,       // ln_final                                   args: {x}
  Patch,       // output activations' interventions          args: {x}
};
inline constexpr int kStepKinds = 10;

struct StepTraits {
  const char* name;  // "AttnZ": statistics, diagrams
  // The step whose named activations this kind computes (an activation's `stage` is one of Embed,
  // AttnZ, AttnOut, Mlp, Add, Final). Rows and Patch compute none of their own: themselves.
  StepKind stage;
  int order;        // where it runs within its node: the evaluator runs steps by (node, order)
  bool stackable;   // steps of many experiments can be computed in one call, batches stacked
  bool assembles;   // builds its value from rows or heads of its arguments; computes nothing
};

inline constexpr StepTraits kStepTraits[kStepKinds] = {
    //  name          stage              order stackable assembles
    {"Embed",      StepKind::Embed,       1,    false,    false},
    {"Rows",       StepKind::Rows,        1,    false,    true},
    {"AttnZ",      StepKind::AttnZ,       2,    true,     false},
    {"AttnZHeads", StepKind::AttnZ,       2,    false,    false},
    {"ZGather",    StepKind::AttnZ,       3,    false,    true},
    {"AttnOut",    StepKind::AttnOut,     5,    true,     false},
    {"Mlp",        StepKind::Mlp,         2,    true,     false},
    {"Add",        StepKind::Add,         2,    false,    false},
    {"Final",      StepKind::Final,       2,    true,     false},
    {"Patch",      StepKind::Patch,       1,    false,    false},  // order: its argument's + 1
};

constexpr const StepTraits& traits(StepKind k) { return kStepTraits[static_cast<int>(k)]; }
inline const char* step_name(StepKind k) { return traits(k).name; }

}  // namespace pathpatch
