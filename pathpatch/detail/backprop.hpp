#pragma once
// Reverse mode over a whole forward: one forward that keeps what the backward reads (Pass, on a
// Tape), and the backward from d ln_final down, step by step through the Model's *_backward
// functions. Shared by gradients() and attribution patching (attribution.cpp) and edge
// attribution (circuits.cpp). Not part of the public headers.
#include <functional>
#include <vector>

#include "models/model.hpp"

namespace pathpatch::detail {

// One forward over whole sequences, as the backward reads it: each layer's inputs (the tape holds
// the rest). Named outputs (residuals, z, sub-layer outputs, ln_final) go to the tape, which keeps
// those it wants.
struct Pass {
  std::vector<Tensor> resid_pre, resid_mid, z;  // per layer (resid_mid: sequential blocks only)
  Tensor final_in, hidden;                      // the final norm's input and output [B,T,D]
  int64_t bytes() const;
};

// `resid0`, if defined, replaces the embeddings [B,T,D]. Layers below `first_kept` keep no inputs
// (the backward will not reach them).
Pass forward_pass(const Model& m, const Batch& batch, const Tensor& resid0, Tape& tape, int first_kept);

// What edge attribution reads as the backward passes: the gradient at each component's input
// (EAP-IG's hook_q/k/v_input, hook_mlp_in, and the final residual). Each is called once per layer
// (top layer first), only if set.
struct BackwardHooks {
  std::function<void(const Tensor& d_final_resid)> logits_input;                  // [B,T,D]
  std::function<void(int layer, const Tensor& d_mlp_input)> mlp_input;            // through the MLP alone
  // Each query head's own q, k, v gradients before RoPE, [B,T,H,E] (k, v not summed over a group).
  std::function<void(int layer, const Tensor& x, const HeadInputGrads& d)> head_inputs;
  // A layer whose attention (all heads) or MLP output the forward took from outside (Tape::set):
  // no gradient passes into it, as into a constant (-1: none).
  int cut_attention = -1, cut_mlp = -1;
};

// From d hidden down to the residual entering layer `lowest`, handing each activation's gradient
// to the sink as it passes.
void backward_pass(const Model& m, const Batch& batch, const Pass& p, const Tape& tape, const Tensor& dhidden,
                   GradientSink& sink, int lowest, const BackwardHooks* hooks = nullptr);

}  // namespace pathpatch::detail
