#pragma once
// What the engine asks of a model: one function per kind of step (Backend), and what the model sees
// of the engine while it computes one (ComputeContext). models/ implements Backend; graph/'s
// evaluator calls it; neither knows the other's insides.
//
// Every value passed between steps is [B, T, ...] with positions on axis 1 (kernels.hpp has the
// dimension letters). A step may be asked for a window of positions only.
#include <cstdint>
#include <vector>

#include "graph/batch.hpp"
#include "graph/graph.hpp"
#include "graph/tensor.hpp"

namespace pathpatch {

// Positions [lo, hi) of the position axis.
struct Window {
  int64_t lo = 0, hi = 0;
  int64_t size() const { return hi > lo ? hi - lo : 0; }
  bool empty() const { return hi <= lo; }
};

// The inputs of one attention, per query head: each head reads its q, k and v from one of `x`.
struct HeadSources {
  std::vector<Tensor> x;     // distinct residual inputs
  std::vector<int> q, k, v;  // per query head: index into x
};

// One attention computation: queries at positions [q_lo, hi), keys and values at [0, hi), of which
// [0, kv_lo) come precomputed (the prefix) and [kv_lo, hi) from the inputs.
struct AttnCall {
  HeadSources in;             // each input holds positions [kv_lo, hi): [B, hi - kv_lo, D]
  int64_t q_lo = 0, kv_lo = 0, hi = 0;
  Tensor k_prefix, v_prefix;  // [B, kv_lo, G, E], keys after RoPE; undefined when kv_lo == 0
  const Batch* layout = nullptr;  // masks and position ids of the B rows
  bool keep_kv = false;       // also return the keys and values of [kv_lo, hi)
};

struct AttnResult {
  Tensor z;     // [B, hi - q_lo, H, E]
  Tensor k, v;  // [B, hi - kv_lo, G, E] when asked for
};

// What model code sees while computing one step.
class ComputeContext {
 public:
  virtual ~ComputeContext() = default;
  // True when an intervention, a probe or a capture needs `act`: the model computes activations
  // that are optional to its output (the per-head result) only then.
  virtual bool wants(ActId act) const = 0;
  // Hands over a freshly computed activation: interventions on it apply in place, in order; probes
  // and captures keep a reference, so the model must not write into `value` afterwards.
  virtual void emit(ActId act, Tensor& value) = 0;
  void add_flops(double f) { flops_ += f; }
  double flops() const { return flops_; }

 private:
  double flops_ = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const Graph& graph() const = 0;
  // Each returns the step's output for the positions asked (row-wise steps: those of their input);
  // internal activations go through ctx.emit.
  virtual Tensor embed(const Batch& batch, Window rows, ComputeContext& ctx) const = 0;  // [B,w,D]
  virtual AttnResult attention_z(int layer, const AttnCall& call, ComputeContext& ctx) const = 0;
  virtual Tensor attention_out(int layer, const Tensor& z, ComputeContext& ctx) const = 0;  // [B,w,D]
  virtual Tensor mlp(int layer, const Tensor& x, ComputeContext& ctx) const = 0;            // [B,w,D]
  virtual Tensor final_norm(const Tensor& x, ComputeContext& ctx) const = 0;                // [B,w,D]
  virtual Tensor unembed(const Tensor& h) const = 0;                                        // [B,w,V]
};

}  // namespace pathpatch
