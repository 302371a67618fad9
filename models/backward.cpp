// The backward of each step of the forward (models/model.cpp), in the same order: reverse mode by
// hand, F32, on the buffers the forward kept (models/tape.hpp). What each reads, by shape:
//   attention: its input x [B,T,D], q and k as the scores saw them (after RoPE) [B,T,H|G,E],
//              v [B,T,G,E], pattern [B,H,T,T] (and the soft-capped scores [B,H,T,T] where capped);
//   MLP:       its input x [B,T,D], pre (and pre_linear where gated) [B,T,F].
// Norm statistics are recomputed from their input; Gemma-2's post-norms recompute the sub-layer's
// output before the norm (one GEMM) rather than keep it.
#include <cstring>

#include "graph/kernels.hpp"
#include "models/attention.hpp"
#include "models/model.hpp"

namespace pathpatch {

Tensor Model::norm_backward(const Tensor& x, const NormWeights& w, const Tensor& dy) const {
  const int64_t D = cfg_.d_model, rows = x.numel() / D;
  const bool centred = w.b.defined();  // LayerNorm; RMSNorm is not centred
  Tensor xhat = Tensor::uninitialized(x.shape());
  std::vector<float> inv(rows);
  kernels::norm_statistics(x.data(), rows, D, centred, cfg_.norm_eps, xhat.data_mut(), inv.data());
  Tensor dx = dy.clone();
  kernels::norm_backward_in_place(xhat.data(), inv.data(), rows, D, w.w.data(), centred, dx.data_mut());
  return dx;
}

void Model::activate_backward(const Tensor& pre, Tensor& d) const {
  switch (cfg_.mlp_act) {
    case Nonlinearity::GeluTanh: kernels::gelu_tanh_backward(pre.data(), pre.numel(), d.data_mut()); break;
    case Nonlinearity::GeluErf: kernels::gelu_erf_backward(pre.data(), pre.numel(), d.data_mut()); break;
    case Nonlinearity::Silu: kernels::silu_backward(pre.data(), pre.numel(), d.data_mut()); break;
  }
}

void Model::keep_for_backward(int L, Tape& tape) const {
  const LayerActs& la = acts_.layers.at(L);
  const bool rotary = cfg_.rotary_dims > 0;
  tape.keep(rotary ? la.rot_q : la.q);
  tape.keep(rotary ? la.rot_k : la.k);
  tape.keep(la.v);
  tape.keep(la.pattern);
  if (cfg_.attn_softcap > 0) tape.keep(la.scores);
  tape.keep(la.pre);
  tape.keep(la.pre_linear);
}

// Scores s = q.k * scale (soft-capped), p = softmax(s masked), z = p v. Per (row, head), with
// dP = dz v^T, ds = softmax'(dP) * cap' * scale: dq = ds k, dk += ds^T q, dv += p^T dz (a key/value
// head sums over the query heads of its group). Masked entries have p = 0, hence ds = 0.
Tensor Model::attention_z_backward(int L, const Tensor& x, const Batch& layout, const Tape& tape, const Tensor& dz,
                                   GradientSink& grads, HeadInputGrads* per_head) const {
  const LayerWeights& lw = w_.layers[L];
  const LayerActs& la = acts_.layers[L];
  const bool rotary = cfg_.rotary_dims > 0;
  const int64_t B = x.size(0), T = x.size(1), N = B * T, D = cfg_.d_model, H = cfg_.n_heads, G = cfg_.n_kv_heads,
                E = cfg_.d_head, groups = H / G;
  const Tensor& q = tape[rotary ? la.rot_q : la.q];  // [B,T,H,E]
  const Tensor& k = tape[rotary ? la.rot_k : la.k];  // [B,T,G,E]
  const Tensor& v = tape[la.v];                      // [B,T,G,E]
  const Tensor& pattern = tape[la.pattern];          // [B,H,T,T]
  const bool capped = cfg_.attn_softcap > 0;

  Tensor dq = Tensor::uninitialized({B, T, H, E});
  Tensor dk = Tensor::full({B, T, G, E}, 0.0f), dv = Tensor::full({B, T, G, E}, 0.0f);
  const bool keep_dpattern = grads.wants(la.pattern), keep_dscores = grads.wants(la.scores);
  Tensor dpattern_all = keep_dpattern ? Tensor::uninitialized(pattern.shape()) : Tensor();
  Tensor dscores_all = keep_dscores ? Tensor::uninitialized(pattern.shape()) : Tensor();
  // Per query head k and v gradients (GQA: before the group's sum), when asked for.
  const bool ungroup = per_head && groups > 1;
  Tensor dk_h = ungroup ? Tensor::uninitialized({B, T, H, E}) : Tensor();
  Tensor dv_h = ungroup ? Tensor::uninitialized({B, T, H, E}) : Tensor();
  std::vector<float> ds(T * T);
  {
    // Per-head products are small: one BLAS thread each (as the forward's), for this loop only.
    kernels::SingleThreadedBlas one_thread(T * T * E < (1 << 22));
    for (int64_t b = 0; b < B; ++b)
      for (int64_t h = 0; h < H; ++h) {
        const int64_t kv = h / groups;
        const float* p = pattern.data() + (b * H + h) * T * T;
        const float* dz_h = dz.data() + b * T * H * E + h * E;  // rows of stride H*E
        const float* q_h = q.data() + b * T * H * E + h * E;
        const float* k_g = k.data() + b * T * G * E + kv * E;   // rows of stride G*E
        const float* v_g = v.data() + b * T * G * E + kv * E;
        kernels::gemm(false, true, T, T, E, dz_h, H * E, v_g, G * E, 0.0f, ds.data(), T);  // dP
        if (keep_dpattern) std::memcpy(dpattern_all.data_mut() + (b * H + h) * T * T, ds.data(), T * T * sizeof(float));
        kernels::gemm(true, false, T, E, T, p, T, dz_h, H * E, 1.0f, dv.data_mut() + b * T * G * E + kv * E, G * E);
        if (ungroup)
          kernels::gemm(true, false, T, E, T, p, T, dz_h, H * E, 0.0f, dv_h.data_mut() + b * T * H * E + h * E, H * E);
        for (int64_t i = 0; i < T; ++i) kernels::softmax_row_backward(p + i * T, T, ds.data() + i * T);
        if (keep_dscores) std::memcpy(dscores_all.data_mut() + (b * H + h) * T * T, ds.data(), T * T * sizeof(float));
        if (capped) kernels::softcap_backward(tape[la.scores].data() + (b * H + h) * T * T, T * T, cfg_.attn_softcap, ds.data());
        kernels::scale(ds.data(), T * T, cfg_.attn_scale);
        kernels::gemm(false, false, T, E, T, ds.data(), T, k_g, G * E, 0.0f, dq.data_mut() + b * T * H * E + h * E, H * E);
        kernels::gemm(true, false, T, E, T, ds.data(), T, q_h, H * E, 1.0f, dk.data_mut() + b * T * G * E + kv * E, G * E);
        if (ungroup)
          kernels::gemm(true, false, T, E, T, ds.data(), T, q_h, H * E, 0.0f, dk_h.data_mut() + b * T * H * E + h * E, H * E);
      }
  }
  grads.put(la.pattern, dpattern_all);
  grads.put(la.scores, dscores_all);
  grads.put(la.v, dv);
  if (rotary) {
    grads.put(la.rot_q, dq);
    grads.put(la.rot_k, dk);
    dq = rope(dq, rope_freq_, cfg_.rotary_dims, layout, 0, /*inverse=*/true);
    dk = rope(dk, rope_freq_, cfg_.rotary_dims, layout, 0, /*inverse=*/true);
  }
  grads.put(la.q, dq);
  grads.put(la.k, dk);
  if (per_head) {
    if (ungroup && rotary) dk_h = rope(dk_h, rope_freq_, cfg_.rotary_dims, layout, 0, /*inverse=*/true);
    *per_head = HeadInputGrads{dq, ungroup ? dk_h : dk, ungroup ? dv_h : dv};
  }

  Tensor dxn = Tensor::uninitialized({B, T, D});
  lw.q.apply_transposed(dq.data(), H * E, N, dxn.data_mut(), D, 0, H * E);
  lw.k.apply_transposed(dk.data(), G * E, N, dxn.data_mut(), D, 0, G * E, 1.0f);
  lw.v.apply_transposed(dv.data(), G * E, N, dxn.data_mut(), D, 0, G * E, 1.0f);
  grads.put(la.ln1, dxn);
  return norm_backward(x, lw.attn_norm, dxn);
}

void Model::head_inputs_backward(int L, const Tensor& x, const HeadInputGrads& d, float* sum) const {
  const LayerWeights& lw = w_.layers[L];
  const int64_t B = x.size(0), T = x.size(1), N = B * T, D = cfg_.d_model, H = cfg_.n_heads, E = cfg_.d_head,
                groups = H / cfg_.n_kv_heads;
  const bool centred = lw.attn_norm.b.defined();
  // The norm's statistics once for all 3H inputs: its backward is linear in the gradient.
  Tensor xhat = Tensor::uninitialized({N, D});
  std::vector<float> inv(N);
  kernels::norm_statistics(x.data(), N, D, centred, cfg_.norm_eps, xhat.data_mut(), inv.data());
  Tensor dx = Tensor::uninitialized({B, T, D});  // one input's at a time: it stays in cache
  const Linear* weights[3] = {&lw.q, &lw.k, &lw.v};
  const Tensor* grads[3] = {&d.q, &d.k, &d.v};
  for (int r = 0; r < 3; ++r)
    for (int64_t h = 0; h < H; ++h) {
      const int64_t block = r == 0 ? h : h / groups;  // the weights the head reads
      weights[r]->apply_transposed(grads[r]->data() + h * E, H * E, N, dx.data_mut(), D, block * E, E);
      kernels::norm_backward_in_place(xhat.data(), inv.data(), N, D, lw.attn_norm.w.data(), centred, dx.data_mut());
      kernels::add_inplace(sum + (r * H + h) * N * D, dx.data(), N * D);
    }
}

Tensor Model::attention_out_backward(int L, const Tensor& z, const Tensor& dout, GradientSink& grads) const {
  const LayerWeights& lw = w_.layers[L];
  const LayerActs& la = acts_.layers[L];
  const int64_t B = z.size(0), T = z.size(1), N = B * T, D = cfg_.d_model, H = cfg_.n_heads, E = cfg_.d_head;
  grads.put(la.attn_out, dout);
  Tensor dsum = dout;  // the gradient of the heads' sum (plus bias)
  if (cfg_.post_norms) {
    grads.put(la.ln1_post, dout);
    Tensor raw = Tensor::uninitialized({B, T, D});
    lw.o.apply(z.data(), H * E, N, raw.data_mut(), D, 0, D);
    dsum = norm_backward(raw, lw.attn_post_norm, dout);
  }
  if (grads.wants(la.result)) {  // every head's result enters the sum alike
    Tensor dresult = Tensor::uninitialized({B, T, H, D});
    for (int64_t n = 0; n < N; ++n)
      for (int64_t h = 0; h < H; ++h)
        std::memcpy(dresult.data_mut() + (n * H + h) * D, dsum.data() + n * D, D * sizeof(float));
    grads.put(la.result, dresult);
  }
  Tensor dz = Tensor::uninitialized({B, T, H, E});
  lw.o.apply_transposed(dsum.data(), D, N, dz.data_mut(), H * E, 0, D);
  grads.put(la.z, dz);
  return dz;
}

Tensor Model::mlp_backward(int L, const Tensor& x, const Tape& tape, const Tensor& dout, GradientSink& grads) const {
  const LayerWeights& lw = w_.layers[L];
  const LayerActs& la = acts_.layers[L];
  const int64_t B = x.size(0), T = x.size(1), N = B * T, D = cfg_.d_model, F = cfg_.d_mlp;
  const Tensor& pre = tape[la.pre];
  grads.put(la.mlp_out, dout);
  // act(pre) (times up(x) where gated): the value the down projection read.
  Tensor act = pre.clone();
  activate(act);
  Tensor draw = dout;
  if (cfg_.post_norms) {
    grads.put(la.ln2_post, dout);
    Tensor post = act;
    if (cfg_.gated_mlp) {
      post = Tensor::uninitialized({B, T, F});
      kernels::mul(act.data(), tape[la.pre_linear].data(), post.numel(), post.data_mut());
    }
    Tensor raw = Tensor::uninitialized({B, T, D});
    lw.mlp_out.apply(post.data(), F, N, raw.data_mut(), D, 0, D);
    draw = norm_backward(raw, lw.mlp_post_norm, dout);
  }
  Tensor dpost = Tensor::uninitialized({B, T, F});
  lw.mlp_out.apply_transposed(draw.data(), D, N, dpost.data_mut(), F, 0, D);
  grads.put(la.post, dpost);

  Tensor dxn = Tensor::uninitialized({B, T, D});
  Tensor dpre = Tensor::uninitialized({B, T, F});
  if (cfg_.gated_mlp) {
    const Tensor& lin = tape[la.pre_linear];
    Tensor dlin = Tensor::uninitialized({B, T, F});
    kernels::mul(dpost.data(), act.data(), dlin.numel(), dlin.data_mut());
    grads.put(la.pre_linear, dlin);
    kernels::mul(dpost.data(), lin.data(), dpre.numel(), dpre.data_mut());
    activate_backward(pre, dpre);
    lw.mlp_up.apply_transposed(dlin.data(), F, N, dxn.data_mut(), D, 0, F);
    lw.mlp_in.apply_transposed(dpre.data(), F, N, dxn.data_mut(), D, 0, F, 1.0f);
  } else {
    std::memcpy(dpre.data_mut(), dpost.data(), dpost.bytes());
    activate_backward(pre, dpre);
    lw.mlp_in.apply_transposed(dpre.data(), F, N, dxn.data_mut(), D, 0, F);
  }
  grads.put(la.pre, dpre);
  grads.put(la.ln2, dxn);
  return norm_backward(x, lw.mlp_norm, dxn);
}

Tensor Model::final_norm_backward(const Tensor& x, const Tensor& dy) const { return norm_backward(x, w_.final_norm, dy); }

Tensor Model::unembed_backward(const Tensor& logits, const Tensor& dlogits) const {
  const int64_t D = cfg_.d_model, V = cfg_.vocab_size, N = logits.numel() / V;
  Tensor d = dlogits;
  if (cfg_.logit_softcap > 0) {
    d = dlogits.clone();
    kernels::softcap_backward(logits.data(), d.numel(), cfg_.logit_softcap, d.data_mut());
  }
  Shape shape = logits.shape();
  shape.back() = D;
  Tensor dh = Tensor::uninitialized(shape);
  kernels::gemm(false, false, N, D, V, d.data(), V, w_.unembed.data(), D, 0.0f, dh.data_mut(), D);
  return dh;
}

}  // namespace pathpatch
