#include "models/model.hpp"

#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>

#include "graph/error.hpp"
#include "graph/kernels.hpp"
#include "models/checkpoint.hpp"
#include "models/tokenizer.hpp"

namespace pathpatch {

namespace fs = std::filesystem;

// ---- Linear --------------------------------------------------------------------------------

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

// ---- Loading -------------------------------------------------------------------------------

std::vector<TensorSpec> checkpoint_layout(const ModelConfig& c) {
  const int64_t D = c.d_model, H = c.n_heads, G = c.n_kv_heads, E = c.d_head, F = c.d_mlp, V = c.vocab_size;
  std::vector<TensorSpec> out;
  auto add = [&](std::string name, Shape shape, TensorSpec::Init init, int64_t fan_in = 1) {
    out.push_back(TensorSpec{std::move(name), std::move(shape), init, fan_in});
  };
  using T = TensorSpec;
  if (c.family == Family::Gpt2) {
    add("wte.weight", {V, D}, T::Embedding);
    add("wpe.weight", {c.n_ctx, D}, T::Embedding);
    for (int L = 0; L < c.n_layers; ++L) {
      std::string h = "h." + std::to_string(L) + ".";
      add(h + "ln_1.weight", {D}, T::NormWeight);
      add(h + "ln_1.bias", {D}, T::Bias);
      add(h + "attn.c_attn.weight", {D, 3 * D}, T::Linear, D);
      add(h + "attn.c_attn.bias", {3 * D}, T::Bias);
      add(h + "attn.c_proj.weight", {D, D}, T::Linear, D);
      add(h + "attn.c_proj.bias", {D}, T::Bias);
      if (c.attn_only) continue;
      add(h + "ln_2.weight", {D}, T::NormWeight);
      add(h + "ln_2.bias", {D}, T::Bias);
      add(h + "mlp.c_fc.weight", {D, F}, T::Linear, D);
      add(h + "mlp.c_fc.bias", {F}, T::Bias);
      add(h + "mlp.c_proj.weight", {F, D}, T::Linear, F);
      add(h + "mlp.c_proj.bias", {D}, T::Bias);
    }
    add("ln_f.weight", {D}, T::NormWeight);
    add("ln_f.bias", {D}, T::Bias);
  } else {
    add("model.embed_tokens.weight", {V, D}, T::Embedding);
    for (int L = 0; L < c.n_layers; ++L) {
      std::string p = "model.layers." + std::to_string(L) + ".";
      add(p + "input_layernorm.weight", {D}, T::NormWeight);
      add(p + "self_attn.q_proj.weight", {H * E, D}, T::Linear, D);
      add(p + "self_attn.k_proj.weight", {G * E, D}, T::Linear, D);
      add(p + "self_attn.v_proj.weight", {G * E, D}, T::Linear, D);
      add(p + "self_attn.o_proj.weight", {D, H * E}, T::Linear, H * E);
      add(p + "post_attention_layernorm.weight", {D}, T::NormWeight);
      add(p + "mlp.gate_proj.weight", {F, D}, T::Linear, D);
      add(p + "mlp.up_proj.weight", {F, D}, T::Linear, D);
      add(p + "mlp.down_proj.weight", {D, F}, T::Linear, F);
    }
    add("model.norm.weight", {D}, T::NormWeight);
    if (!c.tie_embeddings) add("lm_head.weight", {V, D}, T::Linear, D);
  }
  return out;
}

namespace {

std::atomic<uint64_t> next_model_id{1};

Linear linear(const Checkpoint& ck, const std::string& w, const std::string& b, bool out_in, int64_t in, int64_t out) {
  Linear l;
  l.out_in = out_in;
  l.in = in;
  l.out = out;
  l.w = ck.load(w, out_in ? Shape{out, in} : Shape{in, out});
  if (!b.empty()) l.b = ck.load(b, {out});
  return l;
}

}  // namespace

Model Model::load(const fs::path& dir) {
  ModelConfig cfg = ModelConfig::load(dir / "config.json");
  Checkpoint ck = Checkpoint::open(dir);
  Model m(cfg, ck);
  m.dir_ = dir;
  m.tokenizer_ = load_tokenizer(dir);
  return m;
}

Model load_model(const fs::path& dir) { return Model::load(dir); }

Model::Model(ModelConfig cfg, const Checkpoint& ck) : cfg_(std::move(cfg)), dir_(ck.dir()), id_(next_model_id++) {
  const int64_t D = cfg_.d_model, H = cfg_.n_heads, G = cfg_.n_kv_heads, E = cfg_.d_head, F = cfg_.d_mlp,
                V = cfg_.vocab_size;
  if (cfg_.family == Family::Gpt2) {
    // Hub GPT-2 files name tensors without a prefix; GPT2LMHeadModel saves them under "transformer.".
    const std::string pre = ck.has("wte.weight") || !ck.has("transformer.wte.weight") ? "" : "transformer.";
    auto n = [&](const std::string& s) { return pre + s; };
    wte_ = ck.load(n("wte.weight"), {V, D});
    wpe_ = ck.load(n("wpe.weight"), {cfg_.n_ctx, D});
    for (int L = 0; L < cfg_.n_layers; ++L) {
      std::string h = n("h." + std::to_string(L) + ".");
      LayerWeights lw;
      lw.ln1_w = ck.load(h + "ln_1.weight", {D});
      lw.ln1_b = ck.load(h + "ln_1.bias", {D});
      Linear qkv = linear(ck, h + "attn.c_attn.weight", h + "attn.c_attn.bias", false, D, 3 * D);
      lw.q = lw.k = lw.v = qkv;
      lw.q.out = lw.k.out = lw.v.out = D;
      lw.k.col_offset = D;
      lw.v.col_offset = 2 * D;
      lw.o = linear(ck, h + "attn.c_proj.weight", h + "attn.c_proj.bias", false, D, D);
      if (!cfg_.attn_only) {
        lw.ln2_w = ck.load(h + "ln_2.weight", {D});
        lw.ln2_b = ck.load(h + "ln_2.bias", {D});
        lw.mlp_in = linear(ck, h + "mlp.c_fc.weight", h + "mlp.c_fc.bias", false, D, F);
        lw.mlp_out = linear(ck, h + "mlp.c_proj.weight", h + "mlp.c_proj.bias", false, F, D);
      }
      layers_.push_back(std::move(lw));
    }
    lnf_w_ = ck.load(n("ln_f.weight"), {D});
    lnf_b_ = ck.load(n("ln_f.bias"), {D});
    unembed_ = wte_;  // GPT-2 always ties its output to the token embedding
  } else {
    wte_ = ck.load("model.embed_tokens.weight", {V, D});
    for (int L = 0; L < cfg_.n_layers; ++L) {
      std::string p = "model.layers." + std::to_string(L) + ".";
      LayerWeights lw;
      lw.ln1_w = ck.load(p + "input_layernorm.weight", {D});
      lw.q = linear(ck, p + "self_attn.q_proj.weight", "", true, D, H * E);
      lw.k = linear(ck, p + "self_attn.k_proj.weight", "", true, D, G * E);
      lw.v = linear(ck, p + "self_attn.v_proj.weight", "", true, D, G * E);
      lw.o = linear(ck, p + "self_attn.o_proj.weight", "", true, H * E, D);
      lw.ln2_w = ck.load(p + "post_attention_layernorm.weight", {D});
      lw.mlp_in = linear(ck, p + "mlp.gate_proj.weight", "", true, D, F);
      lw.mlp_up = linear(ck, p + "mlp.up_proj.weight", "", true, D, F);
      lw.mlp_out = linear(ck, p + "mlp.down_proj.weight", "", true, F, D);
      layers_.push_back(std::move(lw));
    }
    lnf_w_ = ck.load("model.norm.weight", {D});
    unembed_ = cfg_.tie_embeddings ? wte_ : ck.load("lm_head.weight", {V, D});
    for (int64_t i = 0; i < E / 2; ++i)
      inv_freq_.push_back(1.0 / std::pow(static_cast<double>(cfg_.rope_theta), 2.0 * i / E));
  }
  // Only now that the weights agree with the config: its sizes are trusted to build the graph.
  graph_ = build_graph(cfg_, &acts_);
}

Batch Model::encode(const std::vector<std::string>& texts) const {
  if (!tokenizer_)
    throw TokenizerError(dir_.string() + ": this model folder has no tokenizer (vocab.json + merges.txt, "
                         "tokenizer.model or tokenizer.json); pass token ids instead");
  std::vector<std::vector<int32_t>> rows;
  for (const std::string& t : texts) rows.push_back(tokenizer_->encode_prompt(t));
  const int pad = cfg_.eos_token_id >= 0 ? cfg_.eos_token_id : 0;  // masked out: any valid id will do
  Batch b = Batch::from_rows(rows, pad);
  validate(b, "encoded text");
  return b;
}

void Model::validate(const Batch& batch, const std::string& what) const {
  batch.validate(cfg_.vocab_size, cfg_.n_ctx, what);
}

// ---- Forward, one function per step ---------------------------------------------------------

Tensor Model::norm(const Tensor& x, const Tensor& w, const Tensor& b, ComputeContext& ctx) const {
  const int64_t D = cfg_.d_model, rows = x.numel() / D;
  Tensor y = Tensor::uninitialized(x.shape());
  if (b.defined()) {
    kernels::layer_norm(x.data(), rows, D, w.data(), b.data(), cfg_.norm_eps, y.data_mut());
  } else {
    kernels::rms_norm(x.data(), rows, D, w.data(), cfg_.norm_eps, y.data_mut());
  }
  ctx.add_flops(8.0 * rows * D);
  return y;
}

Tensor Model::embed(const Batch& batch, Window rows, ComputeContext& ctx) const {
  const int64_t B = batch.size, T = batch.seq, W = rows.size(), D = cfg_.d_model;
  Tensor tok = Tensor::uninitialized({B, W, D});
  float* t = tok.data_mut();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = 0; i < W; ++i)
      std::memcpy(t + (b * W + i) * D, wte_.data() + int64_t(batch.id(b, rows.lo + i)) * D, D * sizeof(float));
  ctx.emit(acts_.embed, tok);
  if (cfg_.family == Family::Llama) return tok;
  Tensor pos = Tensor::uninitialized({B, W, D});
  std::vector<int32_t> pid = batch.position_ids();
  float* p = pos.data_mut();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = 0; i < W; ++i)
      std::memcpy(p + (b * W + i) * D, wpe_.data() + int64_t(pid[b * T + rows.lo + i]) * D, D * sizeof(float));
  ctx.emit(acts_.pos_embed, pos);
  Tensor out = Tensor::uninitialized({B, W, D});
  kernels::add(tok.data(), pos.data(), out.numel(), out.data_mut());
  ctx.add_flops(static_cast<double>(out.numel()));
  return out;
}

Tensor Model::rope(const Tensor& x, const Batch& layout, int64_t first_pos) const {
  // Hugging Face's rotate_half convention: dimension i pairs with i + E/2.
  const int64_t B = x.size(0), W = x.size(1), NH = x.size(2), E = x.size(3), half = E / 2, T = layout.seq;
  std::vector<int32_t> pid = layout.position_ids();
  Tensor y = Tensor::uninitialized(x.shape());
  const float* src = x.data();
  float* dst = y.data_mut();
  std::vector<float> cs(half), sn(half);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = 0; i < W; ++i) {
      const int64_t row = b * W + i;
      for (int64_t j = 0; j < half; ++j) {
        double angle = pid[b * T + first_pos + i] * inv_freq_[j];  // in double: float32 angles cost ~1e-6
        cs[j] = static_cast<float>(std::cos(angle));
        sn[j] = static_cast<float>(std::sin(angle));
      }
      for (int64_t h = 0; h < NH; ++h) {
        const float* a = src + (row * NH + h) * E;
        float* o = dst + (row * NH + h) * E;
        for (int64_t j = 0; j < half; ++j) {
          o[j] = a[j] * cs[j] - a[j + half] * sn[j];
          o[j + half] = a[j + half] * cs[j] + a[j] * sn[j];
        }
      }
    }
  return y;
}

AttnResult Model::attention_z(int L, const AttnCall& c, ComputeContext& ctx) const {
  const LayerWeights& lw = layers_[L];
  const LayerActs& la = acts_.layers[L];
  const Batch& layout = *c.layout;
  const int64_t B = layout.size, T = layout.seq, D = cfg_.d_model, H = cfg_.n_heads, G = cfg_.n_kv_heads,
                E = cfg_.d_head, groups = H / G;
  const int64_t W = c.hi - c.kv_lo, N = B * W;  // inputs hold positions [kv_lo, hi)
  const bool all = c.kv_lo == 0 && c.q_lo == 0 && c.hi == T;

  // Normalised inputs, one per distinct source.
  std::vector<Tensor> xn;
  for (const Tensor& x : c.in.x) {
    xn.push_back(norm(x, lw.ln1_w, lw.ln1_b, ctx));
    ctx.emit(la.ln1, xn.back());
  }

  // Queries [B,W,H,E]: runs of consecutive heads reading the same source share one GEMM.
  Tensor q = Tensor::uninitialized({B, W, H, E});
  for (int64_t h0 = 0; h0 < H;) {
    int64_t h1 = h0 + 1;
    while (h1 < H && c.in.q[h1] == c.in.q[h0]) ++h1;
    lw.q.apply(xn[c.in.q[h0]].data(), D, N, q.data_mut() + h0 * E, H * E, h0 * E, (h1 - h0) * E);
    h0 = h1;
  }
  ctx.add_flops(kernels::gemm_flops(N, H * E, D));

  // Keys and values [B,W,G,E]; when query heads of one group read different sources, each query
  // head gets its own key/value computed with its group's weights: [B,W,H,E].
  bool shared = true;
  for (int64_t h = 0; h < H; ++h)
    shared = shared && c.in.k[h] == c.in.k[h / groups * groups] && c.in.v[h] == c.in.v[h / groups * groups];
  const int64_t HK = shared ? G : H;
  auto project_kv = [&](const Linear& lin, const std::vector<int>& src) {
    Tensor t = Tensor::uninitialized({B, W, HK, E});
    auto source = [&](int64_t j) { return src[shared ? j * groups : j]; };
    auto weights = [&](int64_t j) { return shared ? j : j / groups; };
    for (int64_t j0 = 0; j0 < HK;) {  // j: a kv head (shared) or a query head
      int64_t j1 = j0 + 1;
      while (j1 < HK && source(j1) == source(j0) && weights(j1) == weights(j1 - 1) + 1) ++j1;
      lin.apply(xn[source(j0)].data(), D, N, t.data_mut() + j0 * E, HK * E, weights(j0) * E, (j1 - j0) * E);
      j0 = j1;
    }
    ctx.add_flops(kernels::gemm_flops(N, HK * E, D));
    return t;
  };
  Tensor k = project_kv(lw.k, c.in.k);
  Tensor v = project_kv(lw.v, c.in.v);
  ctx.emit(la.q, q);
  if (shared) {
    ctx.emit(la.k, k);
    ctx.emit(la.v, v);
  } else if (ctx.wants(la.k) || ctx.wants(la.v) || (la.rot_k >= 0 && ctx.wants(la.rot_k))) {
    throw PredicateError("blocks." + std::to_string(L) +
                         ".attn.hook_k/hook_v are per key/value head, but the query heads of one group read different "
                         "inputs under this split; read or patch hook_q, hook_z or hook_result instead");
  }
  if (cfg_.family == Family::Llama) {
    q = rope(q, layout, c.kv_lo);
    ctx.emit(la.rot_q, q);
    k = rope(k, layout, c.kv_lo);
    if (shared) ctx.emit(la.rot_k, k);
  }

  AttnResult out;
  if (c.keep_kv) {
    PP_CHECK(shared, "keys and values are kept only when shared per group");
    out.k = k;
    out.v = v;
  }
  // Keys and values of every position [0, hi): the prefix, then the computed positions (a prefix
  // of kv heads is expanded per query head when the heads of a group differ).
  Tensor keys = k, vals = v;
  if (c.kv_lo > 0) {
    auto expand = [&](const Tensor& pre) {
      if (HK == pre.size(2)) return pre;
      Tensor x = Tensor::uninitialized({B, c.kv_lo, HK, E});
      for (int64_t r = 0; r < B * c.kv_lo; ++r)
        for (int64_t h = 0; h < HK; ++h)
          std::memcpy(x.data_mut() + (r * HK + h) * E, pre.data() + (r * G + h / groups) * E, E * sizeof(float));
      return x;
    };
    keys = concat1(expand(c.k_prefix), k);
    vals = concat1(expand(c.v_prefix), v);
  }

  // Scores [B,H,Tq,S] for the queries asked, masked entries -inf: a key after the query, or a
  // padding key. Only a whole-sequence call can hand scores and pattern to probes.
  const int64_t TQ = c.hi - c.q_lo, S = c.hi, q_skip = c.q_lo - c.kv_lo;
  PP_CHECK(all || (!ctx.wants(la.scores) && !ctx.wants(la.pattern)), "a windowed attention cannot emit its pattern");
  // Per-head products are small: one BLAS thread each beats waking two for every one of them.
  kernels::SingleThreadedBlas one_thread(TQ * S * E < (1 << 22));
  Tensor scores = Tensor::uninitialized({B, H, TQ, S});
  float* s = scores.data_mut();
  const float scale = 1.0f / std::sqrt(static_cast<float>(E));
  const float ninf = -std::numeric_limits<float>::infinity();
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t h = 0; h < H; ++h) {
      const int64_t hk = shared ? h / groups : h;
      float* sbh = s + (b * H + h) * TQ * S;
      kernels::gemm(false, true, TQ, S, E, q.data() + ((b * W + q_skip) * H + h) * E, H * E,
                    keys.data() + (b * S * HK + hk) * E, HK * E, 0.0f, sbh, S);
      for (int64_t i = 0; i < TQ; ++i)
        for (int64_t j = 0; j < S; ++j)
          sbh[i * S + j] = (j > c.q_lo + i || !layout.real(b, j)) ? ninf : sbh[i * S + j] * scale;
    }
  }
  ctx.add_flops(2.0 * kernels::gemm_flops(B * H * TQ, S, E));
  ctx.emit(la.scores, scores);

  Tensor pattern = ctx.wants(la.scores) ? scores.clone() : std::move(scores);
  float* p = pattern.data_mut();
  for (int64_t r = 0; r < B * H * TQ; ++r) kernels::softmax_row(p + r * S, S);
  ctx.emit(la.pattern, pattern);

  out.z = Tensor::uninitialized({B, TQ, H, E});
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t h = 0; h < H; ++h) {
      const int64_t hk = shared ? h / groups : h;
      kernels::gemm(false, false, TQ, E, S, pattern.data() + (b * H + h) * TQ * S, S,
                    vals.data() + (b * S * HK + hk) * E, HK * E, 0.0f, out.z.data_mut() + (b * TQ * H + h) * E, H * E);
    }
  }
  return out;
}

Tensor Model::attention_out(int L, const Tensor& z, ComputeContext& ctx) const {
  const LayerWeights& lw = layers_[L];
  const LayerActs& la = acts_.layers[L];
  const int64_t B = z.size(0), T = z.size(1), N = B * T, D = cfg_.d_model, H = cfg_.n_heads, E = cfg_.d_head;
  Tensor out = Tensor::uninitialized({B, T, D});
  if (!ctx.wants(la.result)) {
    lw.o.apply(z.data(), H * E, N, out.data_mut(), D, 0, D);
    ctx.add_flops(kernels::gemm_flops(N, D, H * E));
    return out;
  }
  // Per-head results [B,T,H,D] (z_h W_O[h], no bias), then attn_out as their sum plus the bias.
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
  return out;
}

Tensor Model::mlp(int L, const Tensor& x, ComputeContext& ctx) const {
  const LayerWeights& lw = layers_[L];
  const LayerActs& la = acts_.layers[L];
  const int64_t B = x.size(0), T = x.size(1), N = B * T, D = cfg_.d_model, F = cfg_.d_mlp;
  Tensor xn = norm(x, lw.ln2_w, lw.ln2_b, ctx);
  ctx.emit(la.ln2, xn);
  Tensor pre = Tensor::uninitialized({B, T, F});
  lw.mlp_in.apply(xn.data(), D, N, pre.data_mut(), F, 0, F);
  ctx.add_flops(kernels::gemm_flops(N, F, D));
  ctx.emit(la.pre, pre);
  Tensor post = ctx.wants(la.pre) ? pre.clone() : std::move(pre);
  if (cfg_.family == Family::Gpt2) {
    kernels::gelu_tanh(post.data_mut(), post.numel());
  } else {
    Tensor lin = Tensor::uninitialized({B, T, F});
    lw.mlp_up.apply(xn.data(), D, N, lin.data_mut(), F, 0, F);
    ctx.add_flops(kernels::gemm_flops(N, F, D));
    ctx.emit(la.pre_linear, lin);
    kernels::silu(post.data_mut(), post.numel());
    kernels::mul(post.data(), lin.data(), post.numel(), post.data_mut());
  }
  ctx.add_flops(10.0 * N * F);
  ctx.emit(la.post, post);
  Tensor out = Tensor::uninitialized({B, T, D});
  lw.mlp_out.apply(post.data(), F, N, out.data_mut(), D, 0, D);
  ctx.add_flops(kernels::gemm_flops(N, D, F));
  return out;
}

Tensor Model::final_norm(const Tensor& x, ComputeContext& ctx) const { return norm(x, lnf_w_, lnf_b_, ctx); }

Tensor Model::unembed(const Tensor& h) const {
  const int64_t D = cfg_.d_model, V = cfg_.vocab_size, N = h.numel() / D;
  Shape shape = h.shape();
  shape.back() = V;
  Tensor logits = Tensor::uninitialized(shape);
  kernels::gemm(false, true, N, V, D, h.data(), D, unembed_.data(), D, 0.0f, logits.data_mut(), V);
  return logits;
}

}  // namespace pathpatch
