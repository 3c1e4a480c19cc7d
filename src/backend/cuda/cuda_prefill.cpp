// CudaBackend's prefill path (more than kSmallBatch tokens): per layer RMSNorm to f16, one stacked Q,K,V GEMM,
// RoPE + KV store, attention in groups, attn_output GEMM added to the residual, RMSNorm, one stacked gate,up GEMM,
// SwiGLU, down GEMM added to the residual; the GEMMs run in cuBLAS on f16 weights (dequantized per GEMM into a
// scratch buffer, or resident with MINNOW_CUDA_F16W).
#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <initializer_list>
#include <string>

#include "backend/cuda/cuda_backend_impl.h"
#include "backend/cuda/cuda_kernels.h"
#include "common/error.h"
#include "model/layer_spec.h"

namespace minnow::cuda_impl {

namespace {
int f16w_env() {  // MINNOW_CUDA_F16W: 0/unset never, 1 always, auto (or -1) when it fits
  const char* e = std::getenv("MINNOW_CUDA_F16W");
  if (!e || !*e) return 0;
  const std::string v(e);
  return v == "auto" ? -1 : std::atoi(e);
}
}  // namespace

void CudaBackend::allocate_large() {
  const size_t U = kUbatch, F = size_t(p_.n_ff);
  const size_t QKV = size_t(p_.q_dim() + p_.k_dim() + p_.v_dim());
  for (const DevLayer& L : w_->layers) {
    LargeLayer g;
    g.qkv = make_group({&L.q, &L.k, &L.v});
    g.o = make_group({&L.o});
    g.gu = make_group({&L.gate, &L.up});
    g.down = make_group({&L.down});
    large_.push_back(g);
  }
  out_group_ = make_group({&w_->out});
  d_qkv_ = scratch<float>(U * QKV);
  d_gu_ = scratch<float>(U * 2 * F);
  int attn_group = kUbatch;
  const size_t attn_cap = size_t(512) << 20;
  while (attn_group > kAttnGroup &&
         cuda::attn_scratch_floats(attn_group, int(p_.n_head), int(p_.head_dim_k), n_ctx_) * sizeof(float) > attn_cap)
    attn_group /= 2;
  // Off by default: the backend keeps only the quantized weights resident (issue 4's memory layout).
  allocate_weights_f16(f16w_env());
  if (!f16w_) {
    size_t max_group = 0, max_in = 0;
    for (const LargeLayer& g : large_)
      for (const GemmGroup* x : {&g.qkv, &g.o, &g.gu, &g.down}) {
        max_group = std::max(max_group, size_t(x->rows) * size_t(x->n_in));
        max_in = std::max(max_in, size_t(x->n_in));
      }
    max_in = std::max(max_in, size_t(out_group_.n_in));
    wbuf_elems_ = std::max(max_group, size_t(64) * max_in);  // at least 64 rows of any matrix
    d_wbuf_ = scratch<__half>(wbuf_elems_);
  }
  attn_group_ = attn_group;
  const int ag = std::max(kAttnGroup, attn_group_);  // the decode path uses the same scratch
  d_attn_scratch_ = scratch<float>(cuda::attn_scratch_floats(ag, int(p_.n_head), int(p_.head_dim_k), n_ctx_));
  const size_t n_counters = cuda::attn_counter_ints(ag, int(p_.n_head), int(p_.n_head_kv));
  d_attn_counters_ = scratch<int>(n_counters);
  check(cudaMemset(d_attn_counters_, 0, n_counters * sizeof(int)), "cudaMemset");
}

GemmGroup CudaBackend::make_group(std::initializer_list<const DevMat*> ms) {
  GemmGroup g;
  for (const DevMat* m : ms) {
    if (g.n > 0 && m->n_in != g.n_in) throw Error("cuda: matrices of one GEMM group differ in width");
    g.m[g.n++] = *m;
    g.n_in = m->n_in;
    g.rows += m->n_out;
  }
  return g;
}

void CudaBackend::allocate_weights_f16(int mode) {
  if (mode == 0) return;
  size_t bytes = 0;
  for (const LargeLayer& g : large_)
    for (const GemmGroup* x : {&g.qkv, &g.o, &g.gu, &g.down}) bytes += size_t(x->rows) * size_t(x->n_in) * sizeof(__half);
  bytes += size_t(out_group_.rows) * size_t(out_group_.n_in) * sizeof(__half);
  size_t free_b = 0, total_b = 0;
  check(cudaMemGetInfo(&free_b, &total_b), "cudaMemGetInfo");
  if (mode < 0 && bytes > free_b / 2) return;
  if (bytes + (size_t(256) << 20) > free_b) {
    std::fprintf(stderr, "cuda: MINNOW_CUDA_F16W: %.0f MiB of f16 weights do not fit (%.0f MiB free); dequantizing per pass\n",
                 double(bytes) / (1 << 20), double(free_b) / (1 << 20));
    return;
  }
  auto fill = [&](GemmGroup& g) {
    const size_t before = scratch_bytes_;
    g.f16 = scratch<__half>(size_t(g.rows) * size_t(g.n_in));
    f16w_bytes_ += scratch_bytes_ - before;
    scratch_bytes_ = before;
    size_t off = 0;
    for (int k = 0; k < g.n; ++k) {
      const DevMat& m = g.m[k];
      cuda::dequant_f16(m.type, m.d, m.n_in, m.n_out, g.f16 + off * size_t(g.n_in), stream_);
      off += size_t(m.n_out);
    }
  };
  for (LargeLayer& g : large_)
    for (GemmGroup* x : {&g.qkv, &g.o, &g.gu, &g.down}) fill(*x);
  fill(out_group_);
  check(cudaStreamSynchronize(stream_), "f16 weights");
  f16w_ = true;
}

void CudaBackend::rope_and_store(int layer, int nt, float* q, const float* k, const float* v, int ldq, int ldk,
                                 int ldv) {
  cuda::RopeKvArgs r;
  r.d_q = q;
  r.d_k = k;
  r.d_v = v;
  r.ldq = ldq;
  r.ldk = ldk;
  r.ldv = ldv;
  r.d_pos = d_pos();
  r.d_seq = d_seq();
  r.n = nt;
  r.n_head = int(p_.n_head);
  r.n_head_kv = int(p_.n_head_kv);
  r.head_dim = int(p_.head_dim_k);
  r.n_rot = int(p_.n_rot);
  r.freq_base = float(p_.rope_freq_base);
  r.freq_scale = float(p_.rope_freq_scale);
  r.d_kcache = kv_->k(layer);
  r.d_vcache = kv_->v(layer);
  r.n_ctx = n_ctx_;
  r.d_rope = d_rope_;
  cuda::rope_kv(r, stream_);
}

void CudaBackend::group_gemm(const GemmGroup& g, const void* x16, int nt, float* y, int ldy, bool accumulate,
                             int phase) {
  if (g.f16) {
    gemm_f16(g.f16, g.rows, g.n_in, x16, nt, y, ldy, accumulate);
    prof_->mark(phase);
    return;
  }
  // Per matrix, in chunks of rows that fit the scratch buffer (every layer matrix fits whole; output.weight may
  // not): dequantize, then one GEMM.
  const int64_t chunk_rows = std::max<int64_t>(64, int64_t(wbuf_elems_ / size_t(g.n_in)) / 64 * 64);
  int row_off = 0;
  for (int k = 0; k < g.n; ++k) {
    const DevMat& m = g.m[k];
    const size_t row_b = cuda::dev_row_bytes(m.type, m.n_in);
    for (int64_t r0 = 0; r0 < m.n_out; r0 += chunk_rows) {
      const int rows = int(std::min<int64_t>(chunk_rows, m.n_out - r0));
      cuda::dequant_f16(m.type, static_cast<const uint8_t*>(m.d) + size_t(r0) * row_b, m.n_in, rows, d_wbuf_, stream_);
      prof_->mark(Profiler::kDequant);
      gemm_f16(d_wbuf_, rows, m.n_in, x16, nt, y + row_off + r0, ldy, accumulate);
      prof_->mark(phase);
    }
    row_off += m.n_out;
  }
}

void CudaBackend::gemm_f16(const __half* w, int m, int k, const void* x16, int nt, float* y, int ldy,
                           bool accumulate) {
  const float alpha = 1.f, beta = accumulate ? 1.f : 0.f;
  cublas_check(cublasGemmEx(blas_, CUBLAS_OP_T, CUBLAS_OP_N, m, nt, k, &alpha, w, CUDA_R_16F, k, x16, CUDA_R_16F, k,
                            &beta, y, CUDA_R_32F, ldy, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
               "gemm");
}

void CudaBackend::run_large(int nt, int n_out) {
  prof_->mark(Profiler::kOther);
  const int E = int(p_.n_embd), Q = int(p_.q_dim()), K = int(p_.k_dim()), V = int(p_.v_dim()), F = int(p_.n_ff);
  const int QKV = Q + K + V;
  const float eps = float(p_.rms_eps);
  const ModelFeatures& f = p_.features;
  embed(nt);
  prof_->mark(Profiler::kOther);
  for (size_t l = 0; l < w_->layers.size(); ++l) {
    const DevLayer& L = w_->layers[l];
    const LargeLayer& G = large_[l];
    cuda::rmsnorm_f16(d_x_, E, L.attn_norm, E, nt, eps, d_h16_, stream_);
    prof_->mark(Profiler::kOther);
    group_gemm(G.qkv, d_h16_, nt, d_qkv_, QKV, false, Profiler::kQkv);  // d_qkv_[t] = q | k | v
    if (fused_qkv_) rope_and_store(int(l), nt, d_qkv_, d_qkv_ + Q, d_qkv_ + Q + K, QKV, QKV, QKV);
    else qkv_post(int(l), nt, d_qkv_, d_qkv_ + Q, d_qkv_ + Q + K, QKV, QKV, QKV);
    prof_->mark(Profiler::kRope);
    for (int t0 = 0; t0 < nt; t0 += attn_group_) {
      cuda::AttnArgs a = attn_args(int(l), t0, std::min(attn_group_, nt - t0));
      a.n_pass = nt;
      a.d_q = d_qkv_ + size_t(t0) * QKV;
      a.ldq = QKV;
      cuda::attention(a, stream_);
    }
    prof_->mark(Profiler::kAttn);
    cuda::f32_to_f16(d_att_, int64_t(nt) * Q, d_h16_, stream_);
    prof_->mark(Profiler::kOther);
    if (post_attn_) {  // output bias / post-attention norm
      group_gemm(G.o, d_h16_, nt, d_tmp_, E, false, Profiler::kO);
      residual_post(d_tmp_, E, f.o_bias ? L.bo : nullptr, f.post_attn_norm ? L.post_attn_norm : nullptr, nt);
    } else {
      group_gemm(G.o, d_h16_, nt, d_x_, E, true, Profiler::kO);
    }
    cuda::rmsnorm_f16(d_x_, E, L.ffn_norm, E, nt, eps, d_h16_, stream_);
    prof_->mark(Profiler::kOther);
    group_gemm(G.gu, d_h16_, nt, d_gu_, 2 * F, false, Profiler::kGu);  // d_gu_[t] = gate | up
    if (act_ == cuda::Act::SiLU) cuda::swiglu_f16_ld(d_gu_, 2 * F, F, nt, d_h16_, stream_);
    else cuda::glu_f16_ld(d_gu_, 2 * F, F, nt, d_h16_, act_, stream_);
    prof_->mark(Profiler::kOther);
    if (post_ffn_) {  // post-FFN norm
      group_gemm(G.down, d_h16_, nt, d_tmp_, E, false, Profiler::kDown);
      residual_post(d_tmp_, E, nullptr, L.post_ffn_norm, nt);
    } else {
      group_gemm(G.down, d_h16_, nt, d_x_, E, true, Profiler::kDown);
    }
  }
  if (n_out > 0) {
    const float* xs = output_rows(nt, n_out);
    if (n_out <= kSmallBatch) {
      output_matvec(xs, n_out);
      prof_->mark(Profiler::kOutOther);
    } else {
      cuda::rmsnorm_f16(xs, E, w_->out_norm, E, n_out, eps, d_h16_, stream_);
      prof_->mark(Profiler::kOutOther);
      group_gemm(out_group_, d_h16_, n_out, d_logits_, int(p_.n_vocab), false, Profiler::kOut);
      cap_logits(n_out);
    }
  }
  prof_->finish(nt, n_out);
}

}  // namespace minnow::cuda_impl
