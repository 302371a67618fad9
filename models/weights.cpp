#include "models/weights.hpp"

#include <cstdio>
#include <cstring>

#include "graph/error.hpp"
#include "graph/kernels.hpp"
#include "models/checkpoint.hpp"

namespace pathpatch {

void Linear::apply(const float* x, int64_t ldx, int64_t rows, float* y, int64_t ldy, int64_t col0, int64_t cols,
                   bool bias, int64_t in0, int64_t nin) const {
  if (nin < 0) nin = in;
  const int64_t c = col_offset + col0;
  const int64_t ld = w.size(1);
  if (!out_in) {
    kernels::gemm(false, false, rows, cols, nin, x, ldx, w.data() + in0 * ld + c, ld, 0.0f, y, ldy);
  } else {
    kernels::gemm(false, true, rows, cols, nin, x, ldx, w.data() + c * ld + in0, ld, 0.0f, y, ldy);
  }
  if (bias && b.defined()) kernels::add_row_bias(y, rows, cols, ldy, b.data() + c);
}

void Linear::apply_transposed(const float* dy, int64_t ldy, int64_t rows, float* dx, int64_t ldx, int64_t col0,
                              int64_t cols, float beta) const {
  const int64_t c = col_offset + col0;
  const int64_t ld = w.size(1);
  if (!out_in) {
    kernels::gemm(false, true, rows, in, cols, dy, ldy, w.data() + c, ld, beta, dx, ldx);
  } else {
    kernels::gemm(false, false, rows, in, cols, dy, ldy, w.data() + c * ld, ld, beta, dx, ldx);
  }
}

// ---- The table ------------------------------------------------------------------------------

bool slot_used(const ModelConfig& c, WeightSlot s) {
  const bool layer_norm = c.norm == Norm::LayerNorm, mlp = !c.attn_only;
  switch (s) {
    case WeightSlot::TokenEmbed: return true;
    case WeightSlot::PosEmbed: return c.learned_positions;
    case WeightSlot::FinalNorm: return true;
    case WeightSlot::FinalNormBias: return layer_norm;
    case WeightSlot::Unembed: return !c.tie_embeddings;
    case WeightSlot::AttnNorm: return true;
    case WeightSlot::AttnNormBias: return layer_norm;
    case WeightSlot::Q:
    case WeightSlot::K:
    case WeightSlot::V:
    case WeightSlot::QKV:
    case WeightSlot::O: return true;
    case WeightSlot::QBias:
    case WeightSlot::KBias:
    case WeightSlot::VBias:
    case WeightSlot::QKVBias: return c.qkv_bias;
    case WeightSlot::OBias: return c.o_bias;
    case WeightSlot::AttnPostNorm: return c.post_norms;
    case WeightSlot::MlpNorm: return mlp;
    case WeightSlot::MlpNormBias: return mlp && layer_norm;
    case WeightSlot::MlpIn:
    case WeightSlot::MlpOut: return mlp;
    case WeightSlot::MlpInBias:
    case WeightSlot::MlpOutBias: return mlp && c.mlp_bias;
    case WeightSlot::MlpUp: return mlp && c.gated_mlp;
    case WeightSlot::MlpUpBias: return mlp && c.gated_mlp && c.mlp_bias;
    case WeightSlot::MlpPostNorm: return mlp && c.post_norms;
  }
  return false;
}

namespace {

// A projection's matrix as the family stores it.
Shape matrix(const ModelConfig& c, int64_t out, int64_t in) {
  return c.family->matrices == MatrixLayout::OutIn ? Shape{out, in} : Shape{in, out};
}

}  // namespace

Shape slot_shape(const ModelConfig& c, WeightSlot s) {
  const int64_t D = c.d_model, V = c.vocab_size, F = c.d_mlp, HE = int64_t(c.n_heads) * c.d_head,
                GE = int64_t(c.n_kv_heads) * c.d_head;
  switch (s) {
    case WeightSlot::TokenEmbed:
    case WeightSlot::Unembed: return {V, D};
    case WeightSlot::PosEmbed: return {c.n_ctx, D};
    case WeightSlot::Q: return matrix(c, HE, D);
    case WeightSlot::K:
    case WeightSlot::V: return matrix(c, GE, D);
    case WeightSlot::QKV: return matrix(c, HE + 2 * GE, D);
    case WeightSlot::O: return matrix(c, D, HE);
    case WeightSlot::QBias: return {HE};
    case WeightSlot::KBias:
    case WeightSlot::VBias: return {GE};
    case WeightSlot::QKVBias: return {HE + 2 * GE};
    case WeightSlot::MlpIn:
    case WeightSlot::MlpUp: return matrix(c, F, D);
    case WeightSlot::MlpOut: return matrix(c, D, F);
    case WeightSlot::MlpInBias:
    case WeightSlot::MlpUpBias: return {F};
    default: return {D};  // norms and the output projections' biases
  }
}

namespace {

TensorSpec::Init init_of(const ModelConfig& c, WeightSlot s) {
  switch (s) {
    case WeightSlot::TokenEmbed:
    case WeightSlot::PosEmbed: return TensorSpec::Embedding;
    case WeightSlot::FinalNorm:
    case WeightSlot::AttnNorm:
    case WeightSlot::AttnPostNorm:
    case WeightSlot::MlpNorm:
    case WeightSlot::MlpPostNorm: return c.norm == Norm::RMSNormPlusOne ? TensorSpec::NormOffset : TensorSpec::NormWeight;
    case WeightSlot::Unembed:
    case WeightSlot::Q:
    case WeightSlot::K:
    case WeightSlot::V:
    case WeightSlot::QKV:
    case WeightSlot::O:
    case WeightSlot::MlpIn:
    case WeightSlot::MlpUp:
    case WeightSlot::MlpOut: return TensorSpec::Linear;
    default: return TensorSpec::Bias;
  }
}

std::string name_of(const WeightName& n, const std::string& prefix, int layer) {
  std::string name = n.name;
  if (per_layer(n.slot)) {
    const size_t at = name.find("%d");
    PP_CHECK(at != std::string::npos, std::string("the tensor name ") + n.name + " has no %d for its layer");
    name.replace(at, 2, std::to_string(layer));
  }
  return n.slot == WeightSlot::Unembed ? name : prefix + name;
}

// Calls f(name, slot, layer) for every tensor the config reads, in the table's order; the per-layer
// names, all layers of them, where the table's first one stands.
template <class F>
void each_tensor(const ModelConfig& c, const std::string& prefix, F&& f) {
  bool layers_done = false;
  for (const WeightName& n : c.family->names) {
    if (!per_layer(n.slot)) {
      if (slot_used(c, n.slot)) f(name_of(n, prefix, -1), n.slot, -1);
      continue;
    }
    if (layers_done) continue;
    layers_done = true;
    for (int L = 0; L < c.n_layers; ++L)
      for (const WeightName& m : c.family->names)
        if (per_layer(m.slot) && slot_used(c, m.slot)) f(name_of(m, prefix, L), m.slot, L);
  }
}

int64_t fan_in(const ModelConfig& c, WeightSlot s) {
  const Shape shape = slot_shape(c, s);
  return shape.size() == 2 ? (c.family->matrices == MatrixLayout::OutIn ? shape[1] : shape[0]) : 1;
}

// The base-model prefix the checkpoint uses: the first under which the token embedding is stored.
std::string prefix_in(const ModelConfig& c, const Checkpoint& ck) {
  for (const WeightName& n : c.family->names)
    if (n.slot == WeightSlot::TokenEmbed)
      for (const std::string& p : c.family->prefixes)
        if (ck.has(p + n.name)) return p;
  return c.family->prefixes.at(0);
}

Linear linear(const ModelConfig& c, const Tensor& w, int64_t in, int64_t out, int64_t col_offset = 0) {
  Linear l;
  l.w = w;
  l.out_in = c.family->matrices == MatrixLayout::OutIn;
  l.in = in;
  l.out = out;
  l.col_offset = col_offset;
  return l;
}

// GPT-NeoX's query_key_value, [H][q, k, v][E] along its output: rows (or elements of its bias) of
// one role, gathered into a tensor of their own.
Tensor gather_role(const Tensor& fused, int heads, int64_t e, int role) {
  const int64_t row = fused.dim() == 2 ? fused.size(1) : 1;
  Shape shape = fused.shape();
  shape[0] = heads * e;
  Tensor out = Tensor::uninitialized(shape);
  for (int h = 0; h < heads; ++h)
    std::memcpy(out.data_mut() + h * e * row, fused.data() + (int64_t(h) * 3 + role) * e * row,
                static_cast<size_t>(e * row) * sizeof(float));
  return out;
}

// A norm's scale as applied: Gemma stores w and scales by (1 + w).
Tensor norm_scale(const ModelConfig& c, const Tensor& w) {
  if (c.norm != Norm::RMSNormPlusOne) return w;
  Tensor one_plus = Tensor::uninitialized(w.shape());
  for (int64_t i = 0; i < w.numel(); ++i) one_plus.data_mut()[i] = 1.0f + w.data()[i];
  return one_plus;
}

}  // namespace

std::vector<TensorSpec> checkpoint_layout(const ModelConfig& c) {
  std::vector<TensorSpec> out;
  each_tensor(c, c.family->prefixes.at(0), [&](std::string name, WeightSlot s, int) {
    out.push_back(TensorSpec{std::move(name), slot_shape(c, s), init_of(c, s), fan_in(c, s)});
  });
  return out;
}

ModelWeights load_weights(const ModelConfig& c, const Checkpoint& ck) {
  const int64_t D = c.d_model, F = c.d_mlp, E = c.d_head, HE = int64_t(c.n_heads) * E, GE = int64_t(c.n_kv_heads) * E;
  ModelWeights w;  // layers are added as their tensors are read: a config may claim more than are stored
  Tensor qkv, qkv_bias;  // a fused projection, split once the layer's tensors are read
  int qkv_layer = -1;
  auto split_qkv = [&]() {
    if (qkv_layer < 0) return;
    LayerWeights& lw = w.layers[qkv_layer];
    if (c.family->fused == FusedQKV::Blocks) {  // views of one matrix: q | k | v along the output
      lw.q = linear(c, qkv, D, HE, 0);
      lw.k = linear(c, qkv, D, GE, HE);
      lw.v = linear(c, qkv, D, GE, HE + GE);
      lw.q.b = lw.k.b = lw.v.b = qkv_bias;
    } else {
      PP_CHECK(c.family->matrices == MatrixLayout::OutIn && c.n_heads == c.n_kv_heads,
               "per-head fused q, k, v are nn.Linear matrices without grouped heads");
      Linear* parts[3] = {&lw.q, &lw.k, &lw.v};
      for (int r = 0; r < 3; ++r) {
        *parts[r] = linear(c, gather_role(qkv, c.n_heads, E, r), D, HE);
        if (qkv_bias.defined()) parts[r]->b = gather_role(qkv_bias, c.n_heads, E, r);
      }
    }
    qkv = qkv_bias = Tensor();
    qkv_layer = -1;
  };
  each_tensor(c, prefix_in(c, ck), [&](const std::string& name, WeightSlot s, int L) {
    if (L != qkv_layer) split_qkv();
    Tensor t = ck.load(name, slot_shape(c, s));
    if (L >= 0 && L == static_cast<int>(w.layers.size())) w.layers.emplace_back();
    LayerWeights* lw = L >= 0 ? &w.layers[L] : nullptr;
    switch (s) {
      case WeightSlot::TokenEmbed: w.tok_embed = t; break;
      case WeightSlot::PosEmbed: w.pos_embed = t; break;
      case WeightSlot::FinalNorm: w.final_norm.w = norm_scale(c, t); break;
      case WeightSlot::FinalNormBias: w.final_norm.b = t; break;
      case WeightSlot::Unembed: w.unembed = t; break;
      case WeightSlot::AttnNorm: lw->attn_norm.w = norm_scale(c, t); break;
      case WeightSlot::AttnNormBias: lw->attn_norm.b = t; break;
      case WeightSlot::AttnPostNorm: lw->attn_post_norm.w = norm_scale(c, t); break;
      case WeightSlot::Q: lw->q = linear(c, t, D, HE); break;
      case WeightSlot::K: lw->k = linear(c, t, D, GE); break;
      case WeightSlot::V: lw->v = linear(c, t, D, GE); break;
      case WeightSlot::QBias: lw->q.b = t; break;
      case WeightSlot::KBias: lw->k.b = t; break;
      case WeightSlot::VBias: lw->v.b = t; break;
      case WeightSlot::QKV: qkv = t, qkv_layer = L; break;
      case WeightSlot::QKVBias: qkv_bias = t, qkv_layer = L; break;
      case WeightSlot::O: lw->o = linear(c, t, HE, D); break;
      case WeightSlot::OBias: lw->o.b = t; break;
      case WeightSlot::MlpNorm: lw->mlp_norm.w = norm_scale(c, t); break;
      case WeightSlot::MlpNormBias: lw->mlp_norm.b = t; break;
      case WeightSlot::MlpPostNorm: lw->mlp_post_norm.w = norm_scale(c, t); break;
      case WeightSlot::MlpIn: lw->mlp_in = linear(c, t, D, F); break;
      case WeightSlot::MlpInBias: lw->mlp_in.b = t; break;
      case WeightSlot::MlpUp: lw->mlp_up = linear(c, t, D, F); break;
      case WeightSlot::MlpUpBias: lw->mlp_up.b = t; break;
      case WeightSlot::MlpOut: lw->mlp_out = linear(c, t, F, D); break;
      case WeightSlot::MlpOutBias: lw->mlp_out.b = t; break;
    }
  });
  split_qkv();
  if (c.tie_embeddings) w.unembed = w.tok_embed;
  return w;
}

}  // namespace pathpatch
