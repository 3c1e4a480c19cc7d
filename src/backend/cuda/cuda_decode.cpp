// CudaBackend's decode path (at most kSmallBatch tokens): one fused mat-vec kernel per op, each launched with
// programmatic dependent launch, captured once per batch shape as a CUDA graph (cuda_graphs.cpp). Every row's
// arithmetic depends only on the matrix shapes, never on the batch, so results are batch invariant.
#include <cuda_runtime.h>

#include <string>
#include <vector>

#include "backend/cuda/cuda_backend_impl.h"
#include "backend/cuda/cuda_kernels.h"
#include "model/layer_spec.h"

namespace minnow::cuda_impl {

cuda::MvMat CudaBackend::mv(const DevMat& m, float* y, int ldy) {
  cuda::MvMat r;
  r.d_w = m.d;
  r.type = m.type;
  r.n_out = m.n_out;
  r.d_y = y;
  r.ldy = ldy;
  return r;
}

void CudaBackend::enqueue_small(int nt, int n_out) {
  const int E = int(p_.n_embd);
  const float eps = float(p_.rms_eps);
  const int Q = int(p_.q_dim()), K = int(p_.k_dim()), V = int(p_.v_dim()), F = int(p_.n_ff);
  const ModelFeatures& f = p_.features;
  embed(nt);
  auto label = [](size_t l, const char* kind) {
    std::string s = "L";  // (built step by step: g++ 12 warns falsely on a chain of + here)
    s += std::to_string(l);
    s += ' ';
    s += kind;
    return s;
  };
  for (size_t l = 0; l < w_->layers.size(); ++l) {
    const DevLayer& L = w_->layers[l];
    // Q, K, V with the attention RMSNorm fused, and (llama's features) RoPE and the KV-cache write fused too;
    // otherwise the unfused epilogue follows (biases, Q/K norms, NeoX / factored / per-layer RoPE, KV store).
    cuda::MatvecArgs a;
    a.m[0] = mv(L.q, d_q_, Q);
    a.m[1] = mv(L.k, d_k_, K);
    a.m[2] = mv(L.v, d_v_, V);
    a.n_mats = 3;
    a.n_in = E;
    a.d_x = d_x_;
    a.ldx = E;
    a.nb = nt;
    a.d_norm = L.attn_norm;
    a.eps = eps;
    if (fused_qkv_) {
      a.mode = cuda::MvMode::QkvRope;
      a.d_pos = d_pos();
      a.d_seq = d_seq();
      a.head_dim = int(p_.head_dim_k);
      a.n_rot = int(p_.n_rot);
      a.freq_base = float(p_.rope_freq_base);
      a.freq_scale = float(p_.rope_freq_scale);
      a.d_kcache = kv_->k(int(l));
      a.d_vcache = kv_->v(int(l));
      a.n_ctx = n_ctx_;
      a.d_rope = d_rope_;
    }
    a.d_trace = prof_->slot(label(l, "qkv"));
    cuda::matvec(a, stream_);
    if (!fused_qkv_) qkv_post(int(l), nt, d_q_, d_k_, d_v_, Q, K, V);
    // Attention over the cache.
    cuda::AttnArgs at = attn_args(int(l), 0, nt);
    at.d_trace = prof_->slot(label(l, "attention"));
    cuda::attention(at, stream_);
    // attn_output, added to the residual.
    // (With an output bias or a post-attention norm: into d_tmp_, then residual_post.)
    cuda::MatvecArgs o;
    o.m[0] = mv(L.o, post_attn_ ? d_tmp_ : d_x_, E);
    o.n_in = L.o.n_in;
    o.d_x = d_att_;
    o.ldx = Q;
    o.nb = nt;
    o.mode = post_attn_ ? cuda::MvMode::Store : cuda::MvMode::Add;
    o.d_trace = prof_->slot(label(l, "attn_output"));
    cuda::matvec(o, stream_);
    if (post_attn_) residual_post(d_tmp_, E, f.o_bias ? L.bo : nullptr, f.post_attn_norm ? L.post_attn_norm : nullptr, nt);
    // gate and up with the FFN RMSNorm and the gated activation (SiLU or GELU-tanh) fused.
    cuda::MatvecArgs gu;
    gu.m[0] = mv(L.gate, d_g_, F);
    gu.m[1] = mv(L.up, nullptr, F);
    gu.n_mats = 2;
    gu.n_in = E;
    gu.d_x = d_x_;
    gu.ldx = E;
    gu.nb = nt;
    gu.d_norm = L.ffn_norm;
    gu.eps = eps;
    gu.mode = cuda::MvMode::SwiGLU;
    gu.act = act_;
    gu.d_trace = prof_->slot(label(l, "gate+up"));
    cuda::matvec(gu, stream_);
    // down, added to the residual.
    // (With a post-FFN norm: into d_tmp_, then residual_post.)
    cuda::MatvecArgs d;
    d.m[0] = mv(L.down, post_ffn_ ? d_tmp_ : d_x_, E);
    d.n_in = L.down.n_in;
    d.d_x = d_g_;
    d.ldx = F;
    d.nb = nt;
    d.mode = post_ffn_ ? cuda::MvMode::Store : cuda::MvMode::Add;
    d.d_trace = prof_->slot(label(l, "down"));
    cuda::matvec(d, stream_);
    if (post_ffn_) residual_post(d_tmp_, E, nullptr, L.post_ffn_norm, nt);
  }
  // With all rows wanted the output mat-vec reads d_x_ directly (one kernel less, and its weight copy overlaps
  // the last down kernel). (output_matvec applies the soft-cap when the model has one.)
  if (n_out > 0) output_matvec(output_rows(nt, n_out), n_out);
}

}  // namespace minnow::cuda_impl
