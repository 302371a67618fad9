// TransformerLens's weight processing (models/model.hpp, WeightProcessing): folding the norms into
// the weights that read them, centring what writes to the residual stream and the unembedding, and
// folding value biases into the output bias. Each step keeps the model's function; each works on
// plain [in, out] matrices that the processed model owns.
#include <algorithm>

#include "graph/error.hpp"
#include "models/model.hpp"

namespace pathpatch {

namespace {

// A Linear as its own [in, out] matrix (fused blocks and [out, in] storage copied out) and its own
// bias (undefined where it had none).
Linear own(const Linear& l) {
  Linear o;
  o.in = l.in;
  o.out = l.out;
  std::vector<float> w(static_cast<size_t>(l.in * l.out));
  const int64_t ld = l.w.size(1);
  for (int64_t i = 0; i < l.in; ++i)
    for (int64_t j = 0; j < l.out; ++j)
      w[i * l.out + j] = l.out_in ? l.w.data()[(l.col_offset + j) * ld + i] : l.w.data()[i * ld + l.col_offset + j];
  o.w = Tensor::from_vector({l.in, l.out}, std::move(w));
  if (l.b.defined())
    o.b =
        Tensor::from_vector({l.out}, std::vector<float>(l.b.data() + l.col_offset, l.b.data() + l.col_offset + l.out));
  return o;
}

Tensor copy(const Tensor& t) { return t.defined() ? t.clone() : t; }

float* bias_of(Linear& l) {
  if (!l.b.defined()) l.b = Tensor::full({l.out}, 0.0f);
  return l.b.data_mut();
}

// y = (x_hat * w + b) W + c becomes x_hat (diag(w) W) + (b W + c): the norm keeps its normalisation.
// `centre` (LayerNorm): then each column of W loses its mean over the input, which x_hat (mean 0)
// never reads.
void fold_norm_into(Linear& l, const NormWeights& n, bool centre) {
  float* W = l.w.data_mut();
  if (n.b.defined()) {
    float* c = bias_of(l);
    for (int64_t j = 0; j < l.out; ++j) {
      double s = 0;
      for (int64_t i = 0; i < l.in; ++i) s += static_cast<double>(n.b.data()[i]) * W[i * l.out + j];
      c[j] += static_cast<float>(s);
    }
  }
  for (int64_t i = 0; i < l.in; ++i)
    for (int64_t j = 0; j < l.out; ++j) W[i * l.out + j] *= n.w.data()[i];
  if (!centre) return;
  for (int64_t j = 0; j < l.out; ++j) {
    double mean = 0;
    for (int64_t i = 0; i < l.in; ++i) mean += W[i * l.out + j];
    mean /= static_cast<double>(l.in);
    for (int64_t i = 0; i < l.in; ++i) W[i * l.out + j] -= static_cast<float>(mean);
  }
}

// The norm that is left: normalisation only (LayerNorm keeps a zero bias, so it still centres).
void leave_normalisation(NormWeights& n) {
  const int64_t D = n.w.numel();
  n.w = Tensor::full({D}, 1.0f);
  if (n.b.defined()) n.b = Tensor::full({D}, 0.0f);
}

// Rows of `rows` x `width` values lose their mean.
void centre_rows(float* x, int64_t rows, int64_t width) {
  for (int64_t r = 0; r < rows; ++r) {
    double mean = 0;
    for (int64_t i = 0; i < width; ++i) mean += x[r * width + i];
    mean /= static_cast<double>(width);
    for (int64_t i = 0; i < width; ++i) x[r * width + i] -= static_cast<float>(mean);
  }
}

// What writes to the residual stream ([in, D] and its bias) loses its mean over d_model.
void centre_writer(Linear& l) {
  centre_rows(l.w.data_mut(), l.in, l.out);
  if (l.b.defined()) centre_rows(l.b.data_mut(), 1, l.out);
}

// b_O += sum over heads of b_V(head's kv group) W_O[head]; b_V = 0.
void fold_value_bias(Linear& v, Linear& o, int heads, int kv_heads, int64_t head_dim) {
  if (!v.b.defined()) return;
  float* bo = bias_of(o);
  const float* W = o.w.data();
  for (int64_t j = 0; j < o.out; ++j) {
    double s = 0;
    for (int h = 0; h < heads; ++h) {
      const int64_t g = h / (heads / kv_heads);
      for (int64_t e = 0; e < head_dim; ++e)
        s += static_cast<double>(v.b.data()[g * head_dim + e]) * W[(h * head_dim + e) * o.out + j];
    }
    bo[j] += static_cast<float>(s);
  }
  v.b = Tensor();
}

}  // namespace

Model Model::processed(const WeightProcessing& how) const {
  const bool layer_norm = cfg_.norm == Norm::LayerNorm;
  ModelWeights w;
  w.tok_embed = copy(w_.tok_embed);
  w.pos_embed = copy(w_.pos_embed);
  w.unembed = w_.unembed.clone();  // its own, even when tied: it changes unlike the embeddings
  w.unembed_bias = copy(w_.unembed_bias);
  w.final_norm = {copy(w_.final_norm.w), copy(w_.final_norm.b)};
  for (const LayerWeights& src : w_.layers) {
    LayerWeights l;
    l.attn_norm = {copy(src.attn_norm.w), copy(src.attn_norm.b)};
    l.attn_post_norm = {copy(src.attn_post_norm.w), copy(src.attn_post_norm.b)};
    l.mlp_norm = {copy(src.mlp_norm.w), copy(src.mlp_norm.b)};
    l.mlp_post_norm = {copy(src.mlp_post_norm.w), copy(src.mlp_post_norm.b)};
    l.q = own(src.q), l.k = own(src.k), l.v = own(src.v), l.o = own(src.o);
    if (src.mlp_in.w.defined()) l.mlp_in = own(src.mlp_in);
    if (src.mlp_up.w.defined()) l.mlp_up = own(src.mlp_up);
    if (src.mlp_out.w.defined()) l.mlp_out = own(src.mlp_out);
    w.layers.push_back(std::move(l));
  }
  const int64_t D = cfg_.d_model, V = cfg_.vocab_size;

  if (how.fold_ln) {
    for (LayerWeights& l : w.layers) {
      for (Linear* reader : {&l.q, &l.k, &l.v}) fold_norm_into(*reader, l.attn_norm, layer_norm);
      leave_normalisation(l.attn_norm);
      if (!l.mlp_in.w.defined()) continue;
      fold_norm_into(l.mlp_in, l.mlp_norm, layer_norm);
      if (l.mlp_up.w.defined()) fold_norm_into(l.mlp_up, l.mlp_norm, layer_norm);
      leave_normalisation(l.mlp_norm);
    }
    // The unembedding [V, D] reads the final norm: row v is token v's direction.
    const NormWeights& n = w.final_norm;
    float* U = w.unembed.data_mut();
    if (n.b.defined()) {
      if (!w.unembed_bias.defined()) w.unembed_bias = Tensor::full({V}, 0.0f);
      for (int64_t v = 0; v < V; ++v) {
        double s = 0;
        for (int64_t i = 0; i < D; ++i) s += static_cast<double>(n.b.data()[i]) * U[v * D + i];
        w.unembed_bias.data_mut()[v] += static_cast<float>(s);
      }
    }
    for (int64_t v = 0; v < V; ++v)
      for (int64_t i = 0; i < D; ++i) U[v * D + i] *= n.w.data()[i];
    if (layer_norm) centre_rows(U, V, D);
    leave_normalisation(w.final_norm);
  }
  // TransformerLens centres writers only where a LayerNorm reads the stream (its mean is unread).
  if (how.center_writing_weights && layer_norm) {
    centre_rows(w.tok_embed.data_mut(), V, D);
    if (w.pos_embed.defined()) centre_rows(w.pos_embed.data_mut(), w.pos_embed.size(0), D);
    for (LayerWeights& l : w.layers) {
      centre_writer(l.o);
      if (l.mlp_out.w.defined()) centre_writer(l.mlp_out);
    }
  }
  if (how.center_unembed && cfg_.logit_softcap <= 0) {
    float* U = w.unembed.data_mut();
    for (int64_t i = 0; i < D; ++i) {
      double mean = 0;
      for (int64_t v = 0; v < V; ++v) mean += U[v * D + i];
      mean /= static_cast<double>(V);
      for (int64_t v = 0; v < V; ++v) U[v * D + i] -= static_cast<float>(mean);
    }
    if (w.unembed_bias.defined()) centre_rows(w.unembed_bias.data_mut(), 1, V);
  }
  if (how.fold_value_biases)
    for (LayerWeights& l : w.layers) fold_value_bias(l.v, l.o, cfg_.n_heads, cfg_.n_kv_heads, cfg_.d_head);
  return Model(*this, std::move(w));
}

}  // namespace pathpatch
