#include "pathpatch/detail/backprop.hpp"

#include "graph/kernels.hpp"

namespace pathpatch::detail {

namespace {

Tensor sum(const Tensor& a, const Tensor& b) {
  Tensor out = Tensor::uninitialized(a.shape());
  kernels::add(a.data(), b.data(), a.numel(), out.data_mut());
  return out;
}

void add_to(Tensor& y, const Tensor& x) { kernels::add_inplace(y.data_mut(), x.data(), y.numel()); }

}  // namespace

int64_t Pass::bytes() const {
  int64_t n = final_in.bytes() + hidden.bytes();
  for (const auto* v : {&resid_pre, &resid_mid, &z})
    for (const Tensor& t : *v) n += t.defined() ? t.bytes() : 0;
  return n;
}

Pass forward_pass(const Model& m, const Batch& batch, const Tensor& resid0, Tape& tape, int first_kept) {
  const ModelConfig& c = m.config();
  const ModelActs& acts = m.acts();
  const int64_t T = batch.seq;
  Pass p;
  Tensor x = resid0.defined() ? resid0 : m.embed(batch, Window{0, T}, tape);
  for (int L = 0; L < c.n_layers; ++L) {
    const LayerActs& la = acts.layers[L];
    const bool kept = L >= first_kept;
    tape.emit(la.resid_pre, x);
    p.resid_pre.push_back(kept ? x : Tensor());
    AttnCall call;
    call.in.x = {x};
    call.in.q = call.in.k = call.in.v = std::vector<int>(c.n_heads, 0);
    call.hi = T;
    call.layout = &batch;
    Tensor z = m.attention_z(L, call, tape).z;
    tape.emit(la.z, z);
    p.z.push_back(kept ? z : Tensor());
    Tensor attn = m.attention_out(L, z, tape);
    tape.emit(la.attn_out, attn);
    Tensor mid = sum(x, attn);  // aL: what the evaluator's Add computes
    p.resid_mid.push_back(kept && !c.parallel_residual ? mid : Tensor());
    if (!c.parallel_residual) tape.emit(la.resid_mid, mid);
    if (c.attn_only) {
      x = mid;
    } else {
      Tensor mlp = m.mlp(L, c.parallel_residual ? x : mid, tape);
      tape.emit(la.mlp_out, mlp);
      x = sum(mid, mlp);
    }
    tape.emit(la.resid_post, x);
  }
  p.final_in = x;
  p.hidden = m.final_norm(x, tape);
  tape.emit(acts.ln_final, p.hidden);
  return p;
}

void backward_pass(const Model& m, const Batch& batch, const Pass& p, const Tape& tape, const Tensor& dhidden,
                   GradientSink& sink, int lowest, const BackwardHooks* hooks) {
  const ModelConfig& c = m.config();
  const ModelActs& acts = m.acts();
  sink.put(acts.ln_final, dhidden);
  Tensor g = m.final_norm_backward(p.final_in, dhidden);  // d resid_post of the last layer
  if (hooks && hooks->logits_input) hooks->logits_input(g);
  HeadInputGrads per_head;
  const bool want_heads = hooks && hooks->head_inputs;
  for (int L = c.n_layers - 1; L >= lowest; --L) {
    const LayerActs& la = acts.layers[L];
    sink.put(la.resid_post, g);
    const bool mlp_cut = hooks && hooks->cut_mlp == L, attention_cut = hooks && hooks->cut_attention == L;
    Tensor d_mlp_in;  // through the MLP alone
    if (!c.attn_only && !mlp_cut)
      d_mlp_in = m.mlp_backward(L, c.parallel_residual ? p.resid_pre[L] : p.resid_mid[L], tape, g, sink);
    if (d_mlp_in.defined() && hooks && hooks->mlp_input) hooks->mlp_input(L, d_mlp_in);
    Tensor g_mid = g;  // d aL (resid_mid): the MLP's output goes straight into resid_post
    if (d_mlp_in.defined() && !c.parallel_residual) g_mid = sum(g, d_mlp_in);
    sink.put(la.resid_mid, g_mid);
    Tensor g_pre = g_mid;
    if (!attention_cut) {
      const Tensor dz = m.attention_out_backward(L, p.z[L], g_mid, sink);
      g_pre = sum(g_mid, m.attention_z_backward(L, p.resid_pre[L], batch, tape, dz, sink, want_heads ? &per_head : nullptr));
      if (want_heads) hooks->head_inputs(L, p.resid_pre[L], per_head);
    }
    if (d_mlp_in.defined() && c.parallel_residual) {
      if (attention_cut) g_pre = g_pre.clone();  // g_mid is g itself, still the sink's
      add_to(g_pre, d_mlp_in);
    }
    sink.put(la.resid_pre, g_pre);
    g = g_pre;
  }
  if (lowest == 0) {
    sink.put(acts.embed, g);
    sink.put(acts.pos_embed, g);
  }
}

}  // namespace pathpatch::detail
