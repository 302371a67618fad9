#pragma once
// A model's weights by what they do (the slots of family.hpp), and where a checkpoint stores them:
// the family's table of names, filtered by what the config uses. One table serves loading, random
// checkpoints and the parameter count.
#include <cstdint>
#include <string>
#include <vector>

#include "graph/tensor.hpp"
#include "models/config.hpp"
#include "models/family.hpp"

namespace pathpatch {

class Checkpoint;

// y = x W + b, with W as the checkpoint stores it: [in, out] (GPT-2's Conv1D) or [out, in]
// (nn.Linear). `col_offset` selects a block of outputs of a fused matrix (GPT-2's c_attn); the bias,
// if any, is indexed the same way.
struct Linear {
  Tensor w;
  Tensor b;  // undefined: no bias
  bool out_in = false;
  int64_t in = 0, out = 0, col_offset = 0;

  // y[:, 0:cols] = x[:, 0:nin] W[in0:in0+nin, col0:col0+cols] (+ bias). Strides in floats.
  void apply(const float* x, int64_t ldx, int64_t rows, float* y, int64_t ldy, int64_t col0, int64_t cols,
             bool bias = true, int64_t in0 = 0, int64_t nin = -1) const;
  // The backward of apply: dx[:, 0:in] = dy[:, 0:cols] W[:, col0:col0+cols]^T + beta * dx.
  void apply_transposed(const float* dy, int64_t ldy, int64_t rows, float* dx, int64_t ldx, int64_t col0,
                        int64_t cols, float beta = 0.0f) const;
};

struct NormWeights {
  Tensor w;  // the scale as applied: (1 + w) already for RMSNormPlusOne
  Tensor b;  // LayerNorm's bias; undefined for RMSNorm
};

struct LayerWeights {
  NormWeights attn_norm, attn_post_norm;  // post norms: Gemma-2 only
  Linear q, k, v, o;
  NormWeights mlp_norm, mlp_post_norm;
  Linear mlp_in;   // GPT-2 c_fc, Llama gate_proj, GPT-NeoX dense_h_to_4h
  Linear mlp_up;   // gated MLPs: up_proj
  Linear mlp_out;  // GPT-2 c_proj, Llama down_proj, GPT-NeoX dense_4h_to_h
};

struct ModelWeights {
  Tensor tok_embed;  // [V, D]
  Tensor pos_embed;  // [n_ctx, D]: learned positions only
  std::vector<LayerWeights> layers;
  NormWeights final_norm;
  Tensor unembed;    // [V, D]: tok_embed when tied
  Tensor unembed_bias;  // [V]: TransformerLens's b_U, only after weight processing (Model::processed)
};

// One tensor of a checkpoint's Hugging Face layout, and how to draw it at random.
struct TensorSpec {
  enum Init { Embedding, Linear, NormWeight, NormOffset, Bias };  // NormOffset: w of (1 + w)
  std::string name;
  Shape shape;
  Init init;
  int64_t fan_in = 1;
};

// Every tensor a model of this config reads, under its Hugging Face name (with the family's first
// prefix), in the family's order.
std::vector<TensorSpec> checkpoint_layout(const ModelConfig& cfg);

// Reads the weights the config uses from a checkpoint. WeightError naming the tensor, the file and
// the shape expected for anything missing, misshapen or not finite.
ModelWeights load_weights(const ModelConfig& cfg, const Checkpoint& ckpt);

// Whether the config reads a slot its family lists, and the shape stored there.
bool slot_used(const ModelConfig& cfg, WeightSlot s);
Shape slot_shape(const ModelConfig& cfg, WeightSlot s);

// The number of weights the config reads, computed in T (double to check that int64_t holds it).
template <class T>
T parameter_count(const ModelConfig& cfg) {
  T total = 0;
  for (const WeightName& n : cfg.family->names) {
    if (!slot_used(cfg, n.slot)) continue;
    T count = 1;
    for (int64_t d : slot_shape(cfg, n.slot)) count *= T(d);
    total += per_layer(n.slot) ? count * T(cfg.n_layers) : count;
  }
  return total;
}

}  // namespace pathpatch
