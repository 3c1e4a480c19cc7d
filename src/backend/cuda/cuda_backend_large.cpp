// CudaBackend's large-batch path (more than kSmallBatch tokens): its buffers and weight groups
// (allocate_large, allocate_weights_f16), the dequant + cuBLAS GEMMs (gemm, group_gemm, gemm_f16 with split-K),
// the opt-in int8 GEMM (q8_ok, gemm8q, gemm8), RoPE + KV store and attention launches, and the passes
// run_large (v2, the default, and v1).
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

namespace minnow::cuda_impl {

int CudaBackend::f16w_env() {  // MINNOW_CUDA_F16W: 0/unset never, 1 always, auto (or -1) when it fits
  const char* e = std::getenv("MINNOW_CUDA_F16W");
  if (!e || !*e) return 0;
  const std::string v(e);
  return v == "auto" ? -1 : std::atoi(e);
}

void CudaBackend::allocate_large() {
  auto keep = [&](void* p) { allocs_.push_back(p); return p; };
  auto env_int = [](const char* name, int def) {
    const char* e = std::getenv(name);
    return e && *e ? std::atoi(e) : def;
  };
  const size_t U = kUbatch, E = size_t(p_.n_embd), F = size_t(p_.n_ff);
  const size_t QKV = size_t(p_.q_dim() + p_.k_dim() + p_.v_dim());
  if (const char* e = std::getenv("MINNOW_CUDA_LARGE")) v1_ = std::string(e) == "v1";
  if (use_q8_) v1_ = true;  // the int8 GEMM lives in the v1 path
  prof_ = env_int("MINNOW_CUDA_PROFILE", 0) > 0;
  prof_every_ = std::max(1, env_int("MINNOW_CUDA_PROFILE_EVERY", 100));
  prof_skip_ = std::max(0, env_int("MINNOW_CUDA_PROFILE_SKIP", 2));
  int attn_group = kAttnGroup;
  if (v1_) {
    size_t max_mat = 0;
    for (const auto& L : layers_)
      for (const DevMat* m : {&L.q, &L.k, &L.v, &L.o, &L.gate, &L.up, &L.down})
        max_mat = std::max(max_mat, size_t(m->n_in) * size_t(m->n_out));
    wdeq_elems_ = std::max(max_mat, std::min(size_t(out_.n_in) * size_t(out_.n_out), size_t(32) << 20));
    d_wdeq_ = keep(dalloc<__half>(wdeq_elems_, scratch_bytes_));
  } else {
    for (const DevLayer& L : layers_) {
      LargeLayer g;
      g.qkv = make_group({&L.q, &L.k, &L.v});
      g.o = make_group({&L.o});
      g.gu = make_group({&L.gate, &L.up});
      g.down = make_group({&L.down});
      large_.push_back(g);
    }
    out_group_ = make_group({&out_});
    d_qkv_ = static_cast<float*>(keep(dalloc<float>(U * QKV, scratch_bytes_)));
    d_gu_ = static_cast<float*>(keep(dalloc<float>(U * 2 * F, scratch_bytes_)));
    attn_group = kUbatch;
    const size_t attn_cap = size_t(512) << 20;
    while (attn_group > kAttnGroup &&
           cuda::attn_scratch_floats(attn_group, int(p_.n_head), int(p_.head_dim_k), n_ctx_) * sizeof(float) > attn_cap)
      attn_group /= 2;
    attn_group = std::max(1, std::min(kUbatch, env_int("MINNOW_CUDA_ATTN_GROUP", attn_group)));
    // Off by default: the backend keeps only the quantized weights resident (issue 4's memory layout).
    allocate_weights_f16(f16w_env());
    if (!f16w_) {
      const int chunk_kb = std::max(0, env_int("MINNOW_CUDA_DQ_CHUNK_KB", 0));
      size_t max_group = 0, max_in = 0;
      for (const LargeLayer& g : large_)
        for (const GemmGroup* x : {&g.qkv, &g.o, &g.gu, &g.down}) {
          max_group = std::max(max_group, size_t(x->rows) * size_t(x->n_in));
          max_in = std::max(max_in, size_t(x->n_in));
        }
      max_in = std::max(max_in, size_t(out_group_.n_in));
      chunk_elems_ = chunk_kb > 0 ? (size_t(chunk_kb) << 10) / sizeof(__half) : max_group;
      chunk_elems_ = std::max(chunk_elems_, size_t(64) * max_in);  // at least 64 rows of any matrix
      const int n_streams = std::max(1, std::min(8, env_int("MINNOW_CUDA_DQ_STREAMS", 1)));
      for (int i = 0; i < n_streams; ++i) wbuf_.push_back(static_cast<__half*>(keep(dalloc<__half>(chunk_elems_, scratch_bytes_))));
      if (n_streams > 1) {
        check(cudaEventCreateWithFlags(&fork_ev_, cudaEventDisableTiming), "cudaEventCreate");
        for (int i = 0; i < n_streams; ++i) {
          cudaStream_t st = nullptr;
          check(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking), "cudaStreamCreate");
          side_.push_back(st);
          cublasHandle_t h = nullptr;
          cublas_check(cublasCreate(&h), "cublasCreate");
          side_blas_.push_back(h);
          cublas_check(cublasSetStream(h, st), "cublasSetStream");
          cudaEvent_t ev = nullptr;
          check(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming), "cudaEventCreate");
          side_ev_.push_back(ev);
        }
      }
    }
  }
  if (!v1_) {
    int dev = 0;
    check(cudaGetDevice(&dev), "cudaGetDevice");
    check(cudaDeviceGetAttribute(&n_sm_, cudaDevAttrMultiProcessorCount, dev), "cudaDeviceGetAttribute");
    splitk_max_ = std::max(1, std::min(16, env_int("MINNOW_CUDA_SPLITK", 1)));  // 1: off
    if (splitk_max_ > 1) {
      splitk_cap_ = size_t(16) << 20;
      d_splitk_ = static_cast<float*>(keep(dalloc<float>(splitk_cap_, scratch_bytes_)));
    }
  }
  attn_group_ = attn_group;
  const int ag = std::max(kAttnGroup, attn_group_);  // the small-batch path uses the same scratch
  d_attn_scratch_ = static_cast<float*>(keep(dalloc<float>(
      cuda::attn_scratch_floats(ag, int(p_.n_head), int(p_.head_dim_k), n_ctx_), scratch_bytes_)));
  const size_t n_counters = cuda::attn_counter_ints(ag, int(p_.n_head), int(p_.n_head_kv));
  d_attn_counters_ = static_cast<int*>(keep(dalloc<int>(n_counters, scratch_bytes_)));
  check(cudaMemset(d_attn_counters_, 0, n_counters * sizeof(int)), "cudaMemset");
  (void)E;
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
    g.f16 = dalloc<__half>(size_t(g.rows) * size_t(g.n_in), f16w_bytes_);
    allocs_.push_back(g.f16);
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

void CudaBackend::rope_and_store(int layer, int nt, float* q, const float* k, const float* v, int ldq,
                                 int ldk, int ldv, const float* table) {
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
  r.d_kcache = kcache(layer);
  r.d_vcache = vcache(layer);
  r.n_ctx = n_ctx_;
  r.d_rope = table;
  cuda::rope_kv(r, stream_);
}

void CudaBackend::attend(int layer, int t0, int nt, int n_pass) {
  cuda::AttnArgs a = attn_args(layer, t0, nt);
  a.n_pass = n_pass;
  cuda::attention(a, stream_);
}

void CudaBackend::gemm(const DevMat& m, const void* x16, int nt, float* y, int ldy, bool accumulate) {
  const int64_t chunk_rows = std::max<int64_t>(1, int64_t(wdeq_elems_ / size_t(m.n_in)));
  const size_t row_b = cuda::dev_row_bytes(m.type, m.n_in);
  for (int64_t r0 = 0; r0 < m.n_out; r0 += chunk_rows) {
    const int rows = int(std::min<int64_t>(chunk_rows, m.n_out - r0));
    cuda::dequant_f16(m.type, static_cast<const uint8_t*>(m.d) + size_t(r0) * row_b, m.n_in, rows, d_wdeq_, stream_);
    mark(kDequant);
    const float alpha = 1.f, beta = accumulate ? 1.f : 0.f;
    cublas_check(cublasGemmEx(blas_, CUBLAS_OP_T, CUBLAS_OP_N, rows, nt, m.n_in, &alpha, d_wdeq_, CUDA_R_16F,
                              m.n_in, x16, CUDA_R_16F, m.n_in, &beta, y + r0, CUDA_R_32F, ldy,
                              CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                 "gemm");
    mark(kGemm);
  }
}

void CudaBackend::group_gemm(const GemmGroup& g, const void* x16, int nt, float* y, int ldy, bool accumulate,
                             int phase) {
  if (g.f16) {
    gemm_f16(blas_, stream_, g.f16, g.rows, g.n_in, x16, nt, y, ldy, accumulate, true);
    mark(phase);
    return;
  }
  const int S = int(side_.size());
  if (S > 0) {
    check(cudaEventRecord(fork_ev_, stream_), "cudaEventRecord");
    for (cudaStream_t st : side_) check(cudaStreamWaitEvent(st, fork_ev_, 0), "cudaStreamWaitEvent");
  }
  const int64_t chunk_rows = std::max<int64_t>(64, int64_t(chunk_elems_ / size_t(g.n_in)) / 64 * 64);
  int i = 0, row_off = 0;
  for (int k = 0; k < g.n; ++k) {
    const DevMat& m = g.m[k];
    const size_t row_b = cuda::dev_row_bytes(m.type, m.n_in);
    for (int64_t r0 = 0; r0 < m.n_out; r0 += chunk_rows, ++i) {
      const int rows = int(std::min<int64_t>(chunk_rows, m.n_out - r0));
      cudaStream_t st = S > 0 ? side_[size_t(i % S)] : stream_;
      cublasHandle_t h = S > 0 ? side_blas_[size_t(i % S)] : blas_;
      __half* buf = wbuf_[S > 0 ? size_t(i % S) : 0];
      cuda::dequant_f16(m.type, static_cast<const uint8_t*>(m.d) + size_t(r0) * row_b, m.n_in, rows, buf, st);
      if (S == 0) mark(kDequant);
      // split-K only on stream_ (its partial-sum buffer is shared)
      gemm_f16(h, st, buf, rows, m.n_in, x16, nt, y + row_off + r0, ldy, accumulate, S == 0);
      if (S == 0) mark(phase);
    }
    row_off += m.n_out;
  }
  if (S > 0) {
    for (int s = 0; s < std::min(S, i); ++s) {
      check(cudaEventRecord(side_ev_[size_t(s)], side_[size_t(s)]), "cudaEventRecord");
      check(cudaStreamWaitEvent(stream_, side_ev_[size_t(s)], 0), "cudaStreamWaitEvent");
    }
    mark(phase);
  }
}

int CudaBackend::splitk_for(int m, int nt, int k) const {
  const int64_t tiles = int64_t((m + 127) / 128) * ((nt + 127) / 128);
  int s = 1;
  while (2 * s <= splitk_max_ && tiles * s < 2 * int64_t(n_sm_) && k % (2 * s * 64) == 0 && k / (2 * s) >= 128 &&
         size_t(2 * s) * size_t(m) * size_t(nt) <= splitk_cap_)
    s *= 2;
  return s;
}

void CudaBackend::gemm_f16(cublasHandle_t h, cudaStream_t st, const __half* w, int m, int k, const void* x16,
                           int nt, float* y, int ldy, bool accumulate, bool splitk) {
  const float alpha = 1.f, beta = accumulate ? 1.f : 0.f, zero = 0.f;
  const int sk = splitk ? splitk_for(m, nt, k) : 1;
  if (sk <= 1) {
    cublas_check(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, m, nt, k, &alpha, w, CUDA_R_16F, k, x16, CUDA_R_16F, k,
                              &beta, y, CUDA_R_32F, ldy, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                 "gemm");
    return;
  }
  const int ks = k / sk;
  const long long stride_c = (long long)m * nt;
  cublas_check(cublasGemmStridedBatchedEx(h, CUBLAS_OP_T, CUBLAS_OP_N, m, nt, ks, &alpha, w, CUDA_R_16F, k, ks, x16,
                                          CUDA_R_16F, k, ks, &zero, d_splitk_, CUDA_R_32F, m, stride_c, sk,
                                          CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
               "gemm (split-K)");
  cuda::splitk_reduce(d_splitk_, sk, size_t(stride_c), m, nt, y, ldy, accumulate, st);
}

bool CudaBackend::q8_ok(int nt, std::initializer_list<const DevMat*> ms) const {
  if (!use_q8_ || nt > q8_max_nt_) return false;
  for (const DevMat* m : ms)
    if (!cuda::gemm_q8_supported(m->type) || m->n_in % 256 != 0) return false;
  return true;
}

cuda::GemmMat CudaBackend::gmat(const DevMat& m, float* y, int ldy) {
  cuda::GemmMat g;
  g.d_w = m.d;
  g.type = m.type;
  g.n_out = m.n_out;
  g.d_y = y;
  g.ldy = ldy;
  return g;
}

void CudaBackend::gemm8q(const int8_t* xq, const float* xs, int nt, std::initializer_list<cuda::GemmMat> ms,
                         cuda::GemmMode mode, int n_in, int8_t* q_out, float* s_out) {
  cuda::GemmQ8Args g;
  int i = 0;
  for (const cuda::GemmMat& m : ms) g.m[i++] = m;
  g.n_mats = i;
  g.n_in = n_in;
  g.d_xq = xq;
  g.d_xs = xs;
  g.nt = nt;
  g.mode = mode;
  g.d_q_out = q_out;
  g.d_s_out = s_out;
  cuda::gemm_q8(g, stream_);
}

void CudaBackend::gemm8(const float* x, int ldx, const float* norm, int nt,
                        std::initializer_list<cuda::GemmMat> ms, cuda::GemmMode mode, int n_in) {
  cuda::quantize_q8(x, ldx, nt, n_in, norm, float(p_.rms_eps), d_xq_, d_xs_, stream_);
  gemm8q(d_xq_, d_xs_, nt, ms, mode, n_in);
}

void CudaBackend::run_large(int nt, int n_out) {
  mark(kOther);
  if (v1_) run_large_v1(nt, n_out);
  else run_large_v2(nt, n_out);
  finish_profile(nt, n_out);
}

void CudaBackend::run_large_v2(int nt, int n_out) {
  const int E = int(p_.n_embd), Q = int(p_.q_dim()), K = int(p_.k_dim()), V = int(p_.v_dim()), F = int(p_.n_ff);
  const int QKV = Q + K + V;
  const float eps = float(p_.rms_eps);
  cuda::get_rows(embd_.type, embd_.d, E, d_tokens(), nt, d_x_, stream_);
  mark(kOther);
  for (size_t l = 0; l < layers_.size(); ++l) {
    const DevLayer& L = layers_[l];
    const LargeLayer& G = large_[l];
    cuda::rmsnorm_f16(d_x_, E, L.attn_norm, E, nt, eps, d_h16_, stream_);
    mark(kOther);
    group_gemm(G.qkv, d_h16_, nt, d_qkv_, QKV, false, kQkv);  // d_qkv_[t] = q | k | v
    rope_and_store(int(l), nt, d_qkv_, d_qkv_ + Q, d_qkv_ + Q + K, QKV, QKV, QKV, d_rope_);
    mark(kRope);
    for (int t0 = 0; t0 < nt; t0 += attn_group_) {
      cuda::AttnArgs a = attn_args(int(l), t0, std::min(attn_group_, nt - t0));
      a.n_pass = nt;
      a.d_q = d_qkv_ + size_t(t0) * QKV;
      a.ldq = QKV;
      cuda::attention(a, stream_);
    }
    mark(kAttn);
    cuda::f32_to_f16(d_att_, int64_t(nt) * Q, d_h16_, stream_);
    mark(kOther);
    group_gemm(G.o, d_h16_, nt, d_x_, E, true, kO);
    cuda::rmsnorm_f16(d_x_, E, L.ffn_norm, E, nt, eps, d_h16_, stream_);
    mark(kOther);
    group_gemm(G.gu, d_h16_, nt, d_gu_, 2 * F, false, kGu);  // d_gu_[t] = gate | up
    cuda::swiglu_f16_ld(d_gu_, 2 * F, F, nt, d_h16_, stream_);
    mark(kOther);
    group_gemm(G.down, d_h16_, nt, d_x_, E, true, kDown);
  }
  if (n_out > 0) {
    const float* xs = output_rows(nt, n_out);
    if (n_out <= kSmallBatch) {
      output_matvec(xs, n_out);
      mark(kOutOther);
    } else {
      cuda::rmsnorm_f16(xs, E, out_norm_, E, n_out, eps, d_h16_, stream_);
      mark(kOutOther);
      group_gemm(out_group_, d_h16_, n_out, d_logits_, int(p_.n_vocab), false, kOut);
    }
  }
}

void CudaBackend::run_large_v1(int nt, int n_out) {
  const int E = int(p_.n_embd), Q = int(p_.q_dim()), K = int(p_.k_dim()), V = int(p_.v_dim()), F = int(p_.n_ff);
  const float eps = float(p_.rms_eps);
  cuda::get_rows(embd_.type, embd_.d, E, d_tokens(), nt, d_x_, stream_);
  mark(kOther);
  for (size_t l = 0; l < layers_.size(); ++l) {
    const DevLayer& L = layers_[l];
    if (q8_ok(nt, {&L.q, &L.k, &L.v})) {
      gemm8(d_x_, E, L.attn_norm, nt, {gmat(L.q, d_q_, Q), gmat(L.k, d_k_, K), gmat(L.v, d_v_, V)},
            cuda::GemmMode::Store, E);
    } else {
      cuda::rmsnorm_f16(d_x_, E, L.attn_norm, E, nt, eps, d_h16_, stream_);
      mark(kOther);
      gemm(L.q, d_h16_, nt, d_q_, Q, false);
      gemm(L.k, d_h16_, nt, d_k_, K, false);
      gemm(L.v, d_h16_, nt, d_v_, V, false);
    }
    rope_and_store(int(l), nt, d_q_, d_k_, d_v_, int(p_.q_dim()), int(p_.k_dim()), int(p_.v_dim()), nullptr);
    mark(kRope);
    for (int t0 = 0; t0 < nt; t0 += kAttnGroup) attend(int(l), t0, std::min(kAttnGroup, nt - t0), nt);
    mark(kAttn);
    if (q8_ok(nt, {&L.o})) {
      gemm8(d_att_, Q, nullptr, nt, {gmat(L.o, d_x_, E)}, cuda::GemmMode::Add, L.o.n_in);
    } else {
      cuda::f32_to_f16(d_att_, int64_t(nt) * Q, d_h16_, stream_);
      mark(kOther);
      gemm(L.o, d_h16_, nt, d_x_, E, true);
    }
    const bool ffn8 = q8_ok(nt, {&L.gate, &L.up});
    const bool down8 = ffn8 && q8_ok(nt, {&L.down}) && F % 64 == 0;
    if (down8) {  // silu(gate) * up written as int8 (d_xq2_, d_xs2_) by the gate+up epilogue, read by down
      cuda::quantize_q8(d_x_, E, nt, E, L.ffn_norm, eps, d_xq_, d_xs_, stream_);
      gemm8q(d_xq_, d_xs_, nt, {gmat(L.gate, nullptr, F), gmat(L.up, nullptr, F)}, cuda::GemmMode::SwiGLUQ8, E,
             d_xq2_, d_xs2_);
      gemm8q(d_xq2_, d_xs2_, nt, {gmat(L.down, d_x_, E)}, cuda::GemmMode::Add, L.down.n_in);
      continue;
    }
    if (ffn8) {  // d_g_ = silu(gate) * up, f32
      gemm8(d_x_, E, L.ffn_norm, nt, {gmat(L.gate, d_g_, F), gmat(L.up, nullptr, F)}, cuda::GemmMode::SwiGLU, E);
    } else {  // d_h16_ = silu(gate) * up, f16
      cuda::rmsnorm_f16(d_x_, E, L.ffn_norm, E, nt, eps, d_h16_, stream_);
      mark(kOther);
      gemm(L.gate, d_h16_, nt, d_g_, F, false);
      gemm(L.up, d_h16_, nt, d_u_, F, false);
      cuda::swiglu_f16(d_g_, d_u_, int64_t(nt) * F, d_h16_, stream_);
      mark(kOther);
    }
    if (ffn8) cuda::f32_to_f16(d_g_, int64_t(nt) * F, d_h16_, stream_);
    gemm(L.down, d_h16_, nt, d_x_, E, true);
  }
  if (n_out > 0) {
    const float* xs = output_rows(nt, n_out);
    if (n_out <= kSmallBatch) {
      output_matvec(xs, n_out);
    } else if (q8_ok(n_out, {&out_})) {
      gemm8(xs, E, out_norm_, n_out, {gmat(out_, d_logits_, int(p_.n_vocab))}, cuda::GemmMode::Store, E);
    } else {
      cuda::rmsnorm_f16(xs, E, out_norm_, E, n_out, eps, d_h16_, stream_);
      gemm(out_, d_h16_, n_out, d_logits_, int(p_.n_vocab), false);
    }
  }
}

}  // namespace minnow::cuda_impl
