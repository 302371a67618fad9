#include "models/model.hpp"

#include <atomic>
#include <cmath>
#include <cstring>

#include "graph/error.hpp"
#include "graph/files.hpp"
#include "graph/kernels.hpp"
#include "models/attention.hpp"
#include "models/checkpoint.hpp"
#include "models/tokenizer.hpp"

namespace pathpatch {

namespace fs = std::filesystem;

namespace {

std::atomic<uint64_t> next_model_id{1};

}  // namespace

Model Model::load(const fs::path& dir, WeightAccess access) {
  if (!files::exists(dir)) throw IoError(dir.string() + ": no such model folder");
  ModelConfig cfg = ModelConfig::load(dir / "config.json");
  Checkpoint ck = Checkpoint::open(dir, access);
  Model m(cfg, ck);
  m.dir_ = dir;
  m.tokenizer_ = load_tokenizer(dir);
  return m;
}

Model load_model(const fs::path& dir, WeightAccess access) { return Model::load(dir, access); }

Model::Model(ModelConfig cfg, const Checkpoint& ck)
    : cfg_(std::move(cfg)), dir_(ck.dir()), id_(next_model_id++), w_(load_weights(cfg_, ck)),
      rope_freq_(rope_frequencies(cfg_)) {
  // Only now that the weights agree with the config: its sizes are trusted to build the graph.
  graph_ = build_graph(cfg_, &acts_);
}

Model::Model(const Model& base, ModelWeights weights)
    : cfg_(base.cfg_), dir_(base.dir_), id_(next_model_id++), w_(std::move(weights)), graph_(base.graph_),
      acts_(base.acts_), rope_freq_(base.rope_freq_), tokenizer_(base.tokenizer_) {}

Batch Model::encode(const std::vector<std::string>& texts) const {
  if (!tokenizer_)
    throw TokenizerError(dir_.string() + ": this model folder has no tokenizer (vocab.json + merges.txt, "
                         "tokenizer.model or tokenizer.json); pass token ids instead");
  std::vector<std::vector<int32_t>> rows;
  for (const std::string& t : texts) rows.push_back(tokenizer_->encode_prompt(t));
  Batch b = Batch::from_rows(rows, pad_id());
  validate(b, "encoded text");
  return b;
}

void Model::validate(const Batch& batch, const std::string& what) const {
  batch.validate(cfg_.vocab_size, cfg_.n_ctx, what);
}

// ---- Forward, one function per step ---------------------------------------------------------

Tensor Model::norm(const Tensor& x, const NormWeights& w, ComputeContext& ctx) const {
  const int64_t D = cfg_.d_model, rows = x.numel() / D;
  Tensor y = Tensor::uninitialized(x.shape());
  if (w.b.defined()) {
    kernels::layer_norm(x.data(), rows, D, w.w.data(), w.b.data(), cfg_.norm_eps, y.data_mut());
  } else {
    kernels::rms_norm(x.data(), rows, D, w.w.data(), cfg_.norm_eps, y.data_mut());
  }
  ctx.add_flops(8.0 * rows * D);
  return y;
}

void Model::activate(Tensor& x) const {
  switch (cfg_.mlp_act) {
    case Nonlinearity::GeluTanh: kernels::gelu_tanh(x.data_mut(), x.numel()); break;
    case Nonlinearity::GeluErf: kernels::gelu_erf(x.data_mut(), x.numel()); break;
    case Nonlinearity::Silu: kernels::silu(x.data_mut(), x.numel()); break;
  }
}

// Token embeddings [B, w, D] (times the family's scale), plus learned positions where it has them.
Tensor Model::embed(const Batch& batch, Window rows, ComputeContext& ctx) const {
  const int64_t B = batch.size, T = batch.seq, W = rows.size(), D = cfg_.d_model;
  Tensor tok = Tensor::uninitialized({B, W, D});
  float* t = tok.data_mut();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = 0; i < W; ++i)
      std::memcpy(t + (b * W + i) * D, w_.tok_embed.data() + int64_t(batch.id(b, rows.lo + i)) * D, D * sizeof(float));
  if (cfg_.embed_scale != 1) kernels::scale(t, tok.numel(), cfg_.embed_scale);
  ctx.emit(acts_.embed, tok);
  if (!cfg_.learned_positions) return tok;
  Tensor pos = Tensor::uninitialized({B, W, D});
  std::vector<int32_t> pid = batch.position_ids();
  float* p = pos.data_mut();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = 0; i < W; ++i)
      std::memcpy(p + (b * W + i) * D, w_.pos_embed.data() + int64_t(pid[b * T + rows.lo + i]) * D, D * sizeof(float));
  ctx.emit(acts_.pos_embed, pos);
  Tensor out = Tensor::uninitialized({B, W, D});
  kernels::add(tok.data(), pos.data(), out.numel(), out.data_mut());
  ctx.add_flops(static_cast<double>(out.numel()));
  return out;
}

// ln1 .. z: queries at [q_lo, hi), keys and values at [kv_lo, hi) computed here and [0, kv_lo)
// given (graph/backend.hpp).
AttnResult Model::attention_z(int L, const AttnCall& c, ComputeContext& ctx) const {
  const LayerWeights& lw = w_.layers[L];
  const LayerActs& la = acts_.layers[L];
  const Batch& layout = *c.layout;
  const int64_t H = cfg_.n_heads, G = cfg_.n_kv_heads, E = cfg_.d_head, groups = H / G;
  const bool all = c.kv_lo == 0 && c.q_lo == 0 && c.hi == layout.seq;
  double flops = 0;

  // Normalised inputs [B, hi - kv_lo, D], one per distinct source.
  std::vector<Tensor> xn;
  for (const Tensor& x : c.in.x) {
    xn.push_back(norm(x, lw.attn_norm, ctx));
    ctx.emit(la.ln1, xn.back());
  }

  // Queries [B,W,H,E]; keys and values [B,W,G,E], or [B,W,H,E] when the query heads of a group read
  // different sources: then each query head gets its own, computed with its group's weights.
  bool shared = true;
  for (int64_t h = 0; h < H; ++h)
    shared = shared && c.in.k[h] == c.in.k[h / groups * groups] && c.in.v[h] == c.in.v[h / groups * groups];
  const int64_t HK = shared ? G : H;
  auto own = [](int64_t j) { return j; };
  auto group_weights = [&](int64_t j) { return shared ? j : j / groups; };
  auto source = [&](const std::vector<int>& src) { return [&src, &shared, groups](int64_t j) { return src[shared ? j * groups : j]; }; };
  Tensor q = project_heads(lw.q, xn, H, E, [&](int64_t h) { return c.in.q[h]; }, own, &flops);
  Tensor k = project_heads(lw.k, xn, HK, E, source(c.in.k), group_weights, &flops);
  Tensor v = project_heads(lw.v, xn, HK, E, source(c.in.v), group_weights, &flops);
  ctx.emit(la.q, q);
  if (shared) {
    ctx.emit(la.k, k);
    ctx.emit(la.v, v);
  } else {
    PP_CHECK(!ctx.wants(la.k) && !ctx.wants(la.v) && !ctx.wants(la.rot_k),
             "key/value activations of a group whose heads read different inputs (the tracer refuses them)");
  }
  if (cfg_.rotary_dims > 0) {
    q = rope(q, rope_freq_, cfg_.rotary_dims, layout, c.kv_lo);
    ctx.emit(la.rot_q, q);
    k = rope(k, rope_freq_, cfg_.rotary_dims, layout, c.kv_lo);
    if (shared) ctx.emit(la.rot_k, k);
  }

  AttnResult out;
  if (c.keep_kv) {
    PP_CHECK(shared, "keys and values are kept only when shared per group");
    out.k = k;
    out.v = v;
  }
  // Keys and values of every position [0, hi): the prefix, then the computed positions.
  Tensor keys = k, vals = v;
  if (c.kv_lo > 0) {
    keys = concat1(HK == G ? c.k_prefix : expand_kv_heads(c.k_prefix, HK), k);
    vals = concat1(HK == G ? c.v_prefix : expand_kv_heads(c.v_prefix, HK), v);
  }
  std::vector<int64_t> kv_of(H);
  for (int64_t h = 0; h < H; ++h) kv_of[h] = shared ? h / groups : h;

  // Only a whole-sequence call can hand scores and pattern to probes (the planner sees to it).
  PP_CHECK(all || (!ctx.wants(la.scores) && !ctx.wants(la.pattern)), "a windowed attention cannot emit its pattern");
  Tensor scores = masked_scores(q, c.q_lo, keys, kv_of, layout, cfg_.attn_scale, cfg_.attn_softcap, cfg_.window.of(L),
                                &flops);
  ctx.emit(la.scores, scores);
  Tensor pattern = ctx.wants(la.scores) ? scores.clone() : std::move(scores);
  const int64_t S = pattern.size(3);
  for (int64_t r = 0; r < pattern.numel() / S; ++r) kernels::softmax_row(pattern.data_mut() + r * S, S);
  ctx.emit(la.pattern, pattern);
  out.z = weighted_values(pattern, vals, kv_of, &flops);
  ctx.add_flops(flops);
  return out;
}

// The output projection: per-head results (when asked for) summed, plus the bias; Gemma-2 then
// normalises the sum.
Tensor Model::attention_out(int L, const Tensor& z, ComputeContext& ctx) const {
  const LayerWeights& lw = w_.layers[L];
  const LayerActs& la = acts_.layers[L];
  const int64_t B = z.size(0), T = z.size(1), N = B * T, D = cfg_.d_model, H = cfg_.n_heads, E = cfg_.d_head;
  Tensor out = Tensor::uninitialized({B, T, D});
  if (!ctx.wants(la.result)) {
    lw.o.apply(z.data(), H * E, N, out.data_mut(), D, 0, D);
    ctx.add_flops(kernels::gemm_flops(N, D, H * E));
  } else {
    // Per-head results [B,T,H,D] (z_h W_O[h], no bias), then their sum plus the bias.
    Tensor result = Tensor::uninitialized({B, T, H, D});
    for (int64_t h = 0; h < H; ++h)
      lw.o.apply(z.data() + h * E, H * E, N, result.data_mut() + h * D, H * D, 0, D, false, h * E, E);
    ctx.add_flops(kernels::gemm_flops(N, D, H * E));
    ctx.emit(la.result, result);
    float* o = out.data_mut();
    std::memset(o, 0, out.bytes());
    for (int64_t n = 0; n < N; ++n)
      for (int64_t h = 0; h < H; ++h) kernels::add_inplace(o + n * D, result.data() + (n * H + h) * D, D);
    if (lw.o.b.defined()) kernels::add_row_bias(o, N, D, D, lw.o.b.data());
  }
  if (!cfg_.post_norms) return out;
  out = norm(out, lw.attn_post_norm, ctx);
  ctx.emit(la.ln1_post, out);
  return out;
}

// ln2 .. mlp_out: down(act(in(x))), or down(act(gate(x)) * up(x)); Gemma-2 normalises the output.
Tensor Model::mlp(int L, const Tensor& x, ComputeContext& ctx) const {
  const LayerWeights& lw = w_.layers[L];
  const LayerActs& la = acts_.layers[L];
  const int64_t B = x.size(0), T = x.size(1), N = B * T, D = cfg_.d_model, F = cfg_.d_mlp;
  Tensor xn = norm(x, lw.mlp_norm, ctx);
  ctx.emit(la.ln2, xn);
  Tensor pre = Tensor::uninitialized({B, T, F});
  lw.mlp_in.apply(xn.data(), D, N, pre.data_mut(), F, 0, F);
  ctx.add_flops(kernels::gemm_flops(N, F, D));
  ctx.emit(la.pre, pre);
  Tensor post = ctx.wants(la.pre) ? pre.clone() : std::move(pre);
  if (cfg_.gated_mlp) {
    Tensor lin = Tensor::uninitialized({B, T, F});
    lw.mlp_up.apply(xn.data(), D, N, lin.data_mut(), F, 0, F);
    ctx.add_flops(kernels::gemm_flops(N, F, D));
    ctx.emit(la.pre_linear, lin);
    activate(post);
    kernels::mul(post.data(), lin.data(), post.numel(), post.data_mut());
  } else {
    activate(post);
  }
  ctx.add_flops(10.0 * N * F);
  ctx.emit(la.post, post);
  Tensor out = Tensor::uninitialized({B, T, D});
  lw.mlp_out.apply(post.data(), F, N, out.data_mut(), D, 0, D);
  ctx.add_flops(kernels::gemm_flops(N, D, F));
  if (!cfg_.post_norms) return out;
  out = norm(out, lw.mlp_post_norm, ctx);
  ctx.emit(la.ln2_post, out);
  return out;
}

Tensor Model::final_norm(const Tensor& x, ComputeContext& ctx) const { return norm(x, w_.final_norm, ctx); }

Tensor Model::unembed(const Tensor& h) const {
  const int64_t D = cfg_.d_model, V = cfg_.vocab_size, N = h.numel() / D;
  Shape shape = h.shape();
  shape.back() = V;
  Tensor logits = Tensor::uninitialized(shape);
  kernels::gemm(false, true, N, V, D, h.data(), D, w_.unembed.data(), D, 0.0f, logits.data_mut(), V);
  if (w_.unembed_bias.defined()) kernels::add_row_bias(logits.data_mut(), N, V, V, w_.unembed_bias.data());
  if (cfg_.logit_softcap > 0) kernels::softcap(logits.data_mut(), logits.numel(), cfg_.logit_softcap);
  return logits;
}

double Model::logit_difference(const float* h, int32_t answer, int32_t wrong) const {
  const int64_t D = cfg_.d_model;
  const float* wa = w_.unembed.data() + int64_t(answer) * D;
  const float* ww = w_.unembed.data() + int64_t(wrong) * D;
  if (cfg_.logit_softcap <= 0) {  // one dot product with the difference of the two columns
    double d = static_cast<double>(unembed_bias(answer)) - unembed_bias(wrong);
    for (int64_t i = 0; i < D; ++i) d += static_cast<double>(h[i]) * (wa[i] - ww[i]);
    return d;
  }
  double a = unembed_bias(answer), w = unembed_bias(wrong);
  for (int64_t i = 0; i < D; ++i) {
    a += static_cast<double>(h[i]) * wa[i];
    w += static_cast<double>(h[i]) * ww[i];
  }
  const double cap = cfg_.logit_softcap;
  return cap * (std::tanh(a / cap) - std::tanh(w / cap));
}

}  // namespace pathpatch
