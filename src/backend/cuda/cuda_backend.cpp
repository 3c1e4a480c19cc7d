// The CUDA backend's entry points (see cuda_backend_impl.h for its parts): construction, the checks of what
// it supports, its activation buffers, forward / forward_top / run (each chunk of at most kUbatch tokens goes
// to the decode path's graphs or to the prefill path), the attention arguments and output rows shared by both
// paths, the logits and top-id downloads, and the public functions of cuda_backend.h.
#include "backend/cuda/cuda_backend.h"

#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <map>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "backend/cuda/cuda_backend_impl.h"
#include "backend/cuda/cuda_kernels.h"
#include "common/error.h"
#include "common/npy.h"
#include "model/layer_spec.h"
#include "model/model.h"

namespace minnow {

bool cuda_available() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();
    return false;
  }
  return n > 0;
}

}  // namespace minnow

namespace minnow::cuda_impl {

CudaBackend::CudaBackend(const Model& model, const BackendOptions& opt) : p_(model.params()), opt_(opt) {
  if (!cuda_available()) throw Error("--device cuda: no usable CUDA GPU found");
  check(cudaSetDevice(0), "cudaSetDevice");
  validate();
  n_ctx_ = opt.n_ctx;
  n_seq_ = opt.n_seq_max;
  check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
  cublas_check(cublasCreate(&blas_), "cublasCreate");
  cublas_check(cublasSetStream(blas_, stream_), "cublasSetStream");
  w_ = std::make_unique<DeviceWeights>(model);
  weight_read_bytes_ = model.weight_bytes();
  allocate();
  setup_features(model);
  prof_ = std::make_unique<Profiler>(stream_, int(5 * p_.n_layer + 2));  // one trace slot per launch of a pass
  report();
}

CudaBackend::~CudaBackend() {
  prof_.reset();
  for (cudaEvent_t e : dl_ev_) cudaEventDestroy(e);
  for (auto& [k, g] : graphs_) cudaGraphExecDestroy(g);
  for (void* p : allocs_) cudaFree(p);
  if (h_in_) cudaFreeHost(h_in_);
  if (h_top_) cudaFreeHost(h_top_);
  if (h_logits_) cudaFreeHost(h_logits_);
  if (blas_) cublasDestroy(blas_);
  if (stream_) cudaStreamDestroy(stream_);
}

void CudaBackend::forward_top(const Batch& batch, const std::vector<uint8_t>& top_only,
                              std::vector<float>& logits, std::vector<int32_t>& top) {
  check_top_flags(batch, top_only);
  run(batch, &top_only, logits, &top);
}

void CudaBackend::run(const Batch& batch, const std::vector<uint8_t>* top_only, std::vector<float>& logits,
                      std::vector<int32_t>* top) {
  size_t w0 = 0;  // wanted rows of earlier chunks
  const size_t n = batch.size();
  if (batch.pos.size() != n || batch.seq.size() != n || batch.want_logits.size() != n)
    throw Error("forward: inconsistent batch");
  for (size_t i = 0; i < n; ++i) {
    if (batch.tokens[i] < 0 || batch.tokens[i] >= p_.n_vocab)
      throw Error("token id " + std::to_string(batch.tokens[i]) + " out of range");
    if (batch.seq[i] < 0 || batch.seq[i] >= n_seq_)
      throw Error("sequence " + std::to_string(batch.seq[i]) + " out of range");
    if (batch.pos[i] < 0 || batch.pos[i] >= n_ctx_)
      throw Error("position " + std::to_string(batch.pos[i]) + " exceeds the context size " + std::to_string(n_ctx_));
  }
  for (size_t b0 = 0; b0 < n; b0 += kUbatch) {
    const int nt = int(std::min<size_t>(kUbatch, n - b0));
    int n_out = 0;
    for (int i = 0; i < nt; ++i) {
      h_in_[i] = batch.tokens[b0 + i];
      h_in_[kUbatch + i] = batch.pos[b0 + i];
      h_in_[2 * kUbatch + i] = batch.seq[b0 + i];
      if (batch.want_logits[b0 + i]) h_in_[3 * kUbatch + n_out++] = i;
    }
    const bool prof_small = prof_->on() && nt <= kSmallBatch;
    const double t_small = prof_small ? Profiler::host_ms() : 0.0;
    if (prof_small) prof_->small_event(0);
    check(cudaMemcpyAsync(d_in_, h_in_, sizeof(int32_t) * 4 * kUbatch, cudaMemcpyHostToDevice, stream_), "upload batch");
    if (nt <= kSmallBatch) {
      launch_graph(nt, n_out);
      if (prof_small) prof_->small_event(1);
    } else {
      run_large(nt, n_out);
    }
    const bool prof_pass = prof_->on() && nt > kSmallBatch;
    const double t_dl = prof_pass ? Profiler::host_ms() : 0.0;
    if (n_out > 0 && top_only) {
      download_top(n_out, top_only->data() + w0, logits, *top);
    } else if (n_out > 0) {
      download_logits(n_out, logits);
      dump_logits(n_out);
    } else {
      check(cudaStreamSynchronize(stream_), "forward");
    }
    if (prof_pass) prof_->add_host_ms(Profiler::host_ms() - t_dl);
    if (prof_small) prof_->small_done(Profiler::host_ms() - t_small);
    prof_->after_pass();
    ++dump_calls_;
    w0 += size_t(n_out);
  }
}

void CudaBackend::dump_logits(int n_out) {
  if (opt_.dump_dir.empty()) return;
  std::string file = opt_.dump_dir + "/logits";
  if (dump_calls_ > 0) file += ".call" + std::to_string(dump_calls_);
  write_npy_f32(file + ".npy", h_logits_, {n_out, p_.n_vocab});
}

void CudaBackend::validate() const {
  if (p_.head_dim_k != p_.head_dim_v) throw Error("cuda: different key and value head sizes are not supported");
  if (!cuda::attn_head_dim_supported(int(p_.head_dim_k)))
    throw Error("cuda: head dimension " + std::to_string(p_.head_dim_k) + " is not supported");
  if (p_.n_rot > p_.head_dim_k || p_.n_rot % 2 != 0) throw Error("cuda: unsupported rope dimension");
  if (opt_.n_ctx <= 0 || opt_.n_seq_max <= 0) throw Error("cuda: context size and sequence count must be positive");
  if (p_.n_embd % 8 != 0 || p_.n_ff % 8 != 0) throw Error("cuda: model widths must be multiples of 8");
}

void CudaBackend::allocate() {
  const size_t U = kUbatch;
  const size_t E = size_t(p_.n_embd), Q = size_t(p_.q_dim()), K = size_t(p_.k_dim()), V = size_t(p_.v_dim());
  const size_t F = size_t(p_.n_ff), NV = size_t(p_.n_vocab);
  d_in_ = scratch<int32_t>(4 * U);
  d_x_ = scratch<float>(U * E);
  d_q_ = scratch<float>(U * Q);
  d_k_ = scratch<float>(U * K);
  d_v_ = scratch<float>(U * V);
  d_att_ = scratch<float>(U * Q);
  d_g_ = scratch<float>(U * F);
  d_sel_ = scratch<float>(U * E);
  d_logits_ = scratch<float>(U * NV);
  d_h16_ = scratch<__half>(U * std::max({E, Q, F}));
  kv_ = std::make_unique<KvCache>(int(p_.n_layer), n_seq_, n_ctx_, int(K));
  // RoPE angles for every position, computed once in double precision (the QKV epilogue reads them).
  const size_t rope_floats = size_t(n_ctx_) * size_t(p_.n_rot / 2) * 2;
  if (rope_floats * sizeof(float) <= (size_t(64) << 20)) {
    std::vector<float> table(rope_floats);
    cuda::rope_table(n_ctx_, int(p_.n_rot), p_.rope_freq_base, p_.rope_freq_scale, table.data());
    d_rope_ = scratch<float>(rope_floats);
    check(cudaMemcpy(d_rope_, table.data(), rope_floats * sizeof(float), cudaMemcpyHostToDevice), "upload rope");
  }
  check(cudaMallocHost(reinterpret_cast<void**>(&h_in_), sizeof(int32_t) * 4 * U), "cudaMallocHost");
  std::memset(h_in_, 0, sizeof(int32_t) * 4 * U);
  check(cudaMallocHost(reinterpret_cast<void**>(&h_logits_), sizeof(float) * U * NV), "cudaMallocHost");
  d_top_ = scratch<int32_t>(U * Backend::kTopIds);
  check(cudaMallocHost(reinterpret_cast<void**>(&h_top_), sizeof(int32_t) * U * Backend::kTopIds), "cudaMallocHost");
  allocate_large();
}

void CudaBackend::report() const {
  cudaDeviceProp prop{};
  check(cudaGetDeviceProperties(&prop, 0), "cudaGetDeviceProperties");
  size_t free_b = 0, total_b = 0;
  check(cudaMemGetInfo(&free_b, &total_b), "cudaMemGetInfo");
  const double MiB = 1024.0 * 1024.0;
  std::fprintf(stderr,
               "cuda: %s, weights %.1f MiB, KV cache %.1f MiB (f16, %d slot(s) x %d positions), scratch %.1f MiB, "
               "VRAM in use %.0f of %.0f MiB\n",
               prop.name, w_->alloc_bytes / MiB, kv_->bytes() / MiB, n_seq_, n_ctx_, scratch_bytes_ / MiB,
               (total_b - free_b) / MiB, total_b / MiB);
  const std::vector<std::string> used = features_in_use(p_.features, p_.layer);
  if (!used.empty()) {
    std::string list;
    for (const std::string& u : used) list += (list.empty() ? "" : ", ") + u;
    std::fprintf(stderr, "cuda: layer features: %s (%s QKV epilogue)\n", list.c_str(), fused_qkv_ ? "fused" : "unfused");
  }
  if (f16w_)
    std::fprintf(stderr, "cuda: large batches: resident f16 weights (%.1f MiB), attention groups of %d\n",
                 f16w_bytes_ / MiB, attn_group_);
  else
    std::fprintf(stderr, "cuda: large batches: f16 dequant scratch of %.1f MiB, attention groups of %d\n",
                 double(wbuf_elems_ * sizeof(__half)) / MiB, attn_group_);
}

cuda::AttnArgs CudaBackend::attn_args(int layer, int t0, int nt) const {
  cuda::AttnArgs a;
  a.d_q = d_q_ + size_t(t0) * p_.q_dim();
  a.ldq = int(p_.q_dim());
  a.d_kcache = kv_->k(layer);
  a.d_vcache = kv_->v(layer);
  a.d_pos = d_pos() + t0;
  a.d_seq = d_seq() + t0;
  a.n = nt;
  a.n_head = int(p_.n_head);
  a.n_head_kv = int(p_.n_head_kv);
  a.head_dim = int(p_.head_dim_k);
  a.n_ctx = n_ctx_;
  a.scale = attn_scale_;
  a.window = window_[size_t(layer)];
  a.d_scratch = d_attn_scratch_;
  a.d_counters = d_attn_counters_;
  a.d_out = d_att_ + size_t(t0) * p_.q_dim();
  a.ldo = int(p_.q_dim());
  return a;
}

const float* CudaBackend::output_rows(int nt, int n_out) {
  if (n_out == nt) return d_x_;
  cuda::gather_rows(d_x_, int(p_.n_embd), d_outidx(), n_out, d_sel_, stream_);
  return d_sel_;
}

void CudaBackend::output_matvec(const float* xs, int n_out) {
  const int E = int(p_.n_embd);
  cuda::MatvecArgs a;
  a.m[0] = mv(w_->out, d_logits_, int(p_.n_vocab));
  a.n_in = E;
  a.d_x = xs;
  a.ldx = E;
  a.nb = n_out;
  a.d_norm = w_->out_norm;
  a.eps = float(p_.rms_eps);
  a.d_trace = prof_->slot("output");
  cuda::matvec(a, stream_);
  cap_logits(n_out);
}

void CudaBackend::download_top(int n_out, const uint8_t* top_only, std::vector<float>& logits,
                               std::vector<int32_t>& top) {
  constexpr int K = Backend::kTopIds;
  const size_t V = size_t(p_.n_vocab);
  cuda::top_ids_rows(d_logits_, n_out, int(V), K, d_top_, stream_);
  check(cudaMemcpyAsync(h_top_, d_top_, sizeof(int32_t) * K * size_t(n_out), cudaMemcpyDeviceToHost, stream_),
        "download top ids");
  for (int r0 = 0; r0 < n_out;) {
    if (top_only[r0]) {
      ++r0;
      continue;
    }
    int r1 = r0 + 1;
    while (r1 < n_out && !top_only[r1]) ++r1;
    check(cudaMemcpyAsync(h_logits_ + size_t(r0) * V, d_logits_ + size_t(r0) * V, size_t(r1 - r0) * V * sizeof(float),
                          cudaMemcpyDeviceToHost, stream_),
          "download logits");
    r0 = r1;
  }
  check(cudaStreamSynchronize(stream_), "forward");
  top.insert(top.end(), h_top_, h_top_ + size_t(K) * size_t(n_out));
  for (int r = 0; r < n_out; ++r)
    if (!top_only[r]) logits.insert(logits.end(), h_logits_ + size_t(r) * V, h_logits_ + size_t(r + 1) * V);
}

void CudaBackend::download_logits(int n_out, std::vector<float>& logits) {
  const size_t V = size_t(p_.n_vocab);
  const int piece = 16;
  const int n_pieces = (n_out + piece - 1) / piece;
  while (dl_ev_.size() < size_t(n_pieces)) {
    cudaEvent_t e = nullptr;
    check(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "cudaEventCreate");
    dl_ev_.push_back(e);
  }
  for (int k = 0; k < n_pieces; ++k) {
    const size_t r0 = size_t(k) * piece, rows = std::min<size_t>(piece, size_t(n_out) - r0);
    check(cudaMemcpyAsync(h_logits_ + r0 * V, d_logits_ + r0 * V, rows * V * sizeof(float), cudaMemcpyDeviceToHost,
                          stream_),
          "download logits");
    check(cudaEventRecord(dl_ev_[size_t(k)], stream_), "cudaEventRecord");
  }
  const size_t need = logits.size() + size_t(n_out) * V;
  if (logits.capacity() < need) logits.reserve(std::max(need, 2 * logits.capacity()));
  for (int k = 0; k < n_pieces; ++k) {
    const size_t r0 = size_t(k) * piece, rows = std::min<size_t>(piece, size_t(n_out) - r0);
    check(cudaEventSynchronize(dl_ev_[size_t(k)]), "forward");
    logits.insert(logits.end(), h_logits_ + r0 * V, h_logits_ + (r0 + rows) * V);
  }
}

}  // namespace minnow::cuda_impl

namespace minnow {

std::unique_ptr<Backend> make_cuda_backend(const Model& model, const BackendOptions& opt) {
  return std::make_unique<cuda_impl::CudaBackend>(model, opt);
}

}  // namespace minnow
