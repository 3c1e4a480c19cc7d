// CudaBackend's decode path (at most kSmallBatch tokens): one fused mat-vec kernel per op, each launched with
// programmatic dependent launch, captured once per batch shape as a CUDA graph (cuda_graphs.cpp). Every row's
// arithmetic depends only on the matrix shapes, never on the batch, so results are batch invariant.
#include <cuda_runtime.h>

#include <string>
#include <vector>

#include "backend/cuda/cuda_backend_impl.h"
#include "backend/cuda/cuda_kernels.h"

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
  cuda::get_rows(w_->embd.type, w_->embd.d, E, d_tokens(), nt, d_x_, stream_);
  auto label = [](size_t l, const char* kind) {
    std::string s = "L";  // (built step by step: g++ 12 warns falsely on a chain of + here)
    s += std::to_string(l);
    s += ' ';
    s += kind;
    return s;
  };
  for (size_t l = 0; l < w_->layers.size(); ++l) {
    const DevLayer& L = w_->layers[l];
    // Q, K, V with the attention RMSNorm, RoPE and the KV-cache write fused.
    cuda::MatvecArgs a;
    a.m[0] = mv(L.q, d_q_, int(p_.q_dim()));
    a.m[1] = mv(L.k, d_k_, int(p_.k_dim()));
    a.m[2] = mv(L.v, d_v_, int(p_.v_dim()));
    a.n_mats = 3;
    a.n_in = E;
    a.d_x = d_x_;
    a.ldx = E;
    a.nb = nt;
    a.d_norm = L.attn_norm;
    a.eps = eps;
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
    a.d_trace = prof_->slot(label(l, "qkv"));
    cuda::matvec(a, stream_);
    // Attention over the cache.
    cuda::AttnArgs at = attn_args(int(l), 0, nt);
    at.d_trace = prof_->slot(label(l, "attention"));
    cuda::attention(at, stream_);
    // attn_output, added to the residual.
    cuda::MatvecArgs o;
    o.m[0] = mv(L.o, d_x_, E);
    o.n_in = L.o.n_in;
    o.d_x = d_att_;
    o.ldx = int(p_.q_dim());
    o.nb = nt;
    o.mode = cuda::MvMode::Add;
    o.d_trace = prof_->slot(label(l, "attn_output"));
    cuda::matvec(o, stream_);
    // gate and up with the FFN RMSNorm and SwiGLU fused.
    cuda::MatvecArgs f;
    f.m[0] = mv(L.gate, d_g_, int(p_.n_ff));
    f.m[1] = mv(L.up, nullptr, int(p_.n_ff));
    f.n_mats = 2;
    f.n_in = E;
    f.d_x = d_x_;
    f.ldx = E;
    f.nb = nt;
    f.d_norm = L.ffn_norm;
    f.eps = eps;
    f.mode = cuda::MvMode::SwiGLU;
    f.d_trace = prof_->slot(label(l, "gate+up"));
    cuda::matvec(f, stream_);
    // down, added to the residual.
    cuda::MatvecArgs d;
    d.m[0] = mv(L.down, d_x_, E);
    d.n_in = L.down.n_in;
    d.d_x = d_g_;
    d.ldx = int(p_.n_ff);
    d.nb = nt;
    d.mode = cuda::MvMode::Add;
    d.d_trace = prof_->slot(label(l, "down"));
    cuda::matvec(d, stream_);
  }
  // With all rows wanted the output mat-vec reads d_x_ directly (one kernel less, and its weight copy overlaps
  // the last down kernel).
  if (n_out > 0) output_matvec(output_rows(nt, n_out), n_out);
}

}  // namespace minnow::cuda_impl
