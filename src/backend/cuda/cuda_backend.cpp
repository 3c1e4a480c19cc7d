// The CUDA backend: owns the uploaded weights (device layout of cuda_kernels.h), the F16 KV cache and the
// activation buffers, and runs a batch either through the fused mat-vec kernels (at most kSmallBatch tokens,
// replayed as one CUDA graph per batch shape) or through cuBLAS GEMMs on weights dequantized to f16 in a
// reused scratch buffer (larger batches: prompts).
// This file: construction and destruction, validation, weight upload and buffer allocation, the forward entry
// points (forward / forward_top / run), the attention arguments shared by both paths, the logits and top-id
// downloads, the profile, and the public functions of cuda_backend.h. The small-batch path is in
// cuda_backend_small.cpp, the large-batch path in cuda_backend_large.cpp.
#include "backend/cuda/cuda_backend.h"

#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <array>
#include <map>
#include <chrono>
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
  if (const char* e = std::getenv("MINNOW_CUDA_PREFETCH")) prefetch_ = std::atoi(e);
  if (const char* e = std::getenv("MINNOW_CUDA_V11")) v11_ = std::string(e) == "1";
  if (const char* e = std::getenv("MINNOW_CUDA_PERSISTENT")) persistent_ = std::string(e) == "1";
  if (const char* e = std::getenv("MINNOW_CUDA_TRACE")) ktrace_ = std::string(e) == "1" && !persistent_;
  n_seq_ = opt.n_seq_max;
  check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
  cublas_check(cublasCreate(&blas_), "cublasCreate");
  cublas_check(cublasSetStream(blas_, stream_), "cublasSetStream");
  upload(model);
  allocate();
  report();
}

CudaBackend::~CudaBackend() {
  print_profile();
  for (cudaEvent_t e : prof_ev_) cudaEventDestroy(e);
  for (cudaEvent_t e : small_ev_)
    if (e) cudaEventDestroy(e);
  for (cudaEvent_t e : side_ev_) cudaEventDestroy(e);
  for (cudaEvent_t e : dl_ev_) cudaEventDestroy(e);
  if (fork_ev_) cudaEventDestroy(fork_ev_);
  for (cublasHandle_t h : side_blas_) cublasDestroy(h);
  for (cudaStream_t st : side_) cudaStreamDestroy(st);
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
    const bool prof_small = prof_ && nt <= kSmallBatch;
    const double t_small = prof_small ? host_ms() : 0.0;
    if (prof_small) small_event(0);
    check(cudaMemcpyAsync(d_in_, h_in_, sizeof(int32_t) * 4 * kUbatch, cudaMemcpyHostToDevice, stream_), "upload batch");
    if (nt <= kSmallBatch) {
      if (!launch_persistent(nt, n_out)) launch_graph(nt, n_out);
      if (prof_small) small_event(1);
    } else {
      run_large(nt, n_out);
    }
    const bool prof_pass = prof_ && nt > kSmallBatch;
    const double t_dl = prof_pass ? host_ms() : 0.0;
    if (n_out > 0 && top_only) {
      download_top(n_out, top_only->data() + w0, logits, *top);
    } else if (n_out > 0) {
      download_logits(n_out, logits);
      dump_logits(n_out);
    } else {
      check(cudaStreamSynchronize(stream_), "forward");
    }
    if (prof_pass) prof_host_ms_ += host_ms() - t_dl;
    if (prof_small) small_done(host_ms() - t_small);
    if (kt_pending_) {
      kt_pending_ = false;
      ktrace_collect();
    }
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

void CudaBackend::validate() {
  if (p_.head_dim_k != p_.head_dim_v) throw Error("cuda: different key and value head sizes are not supported");
  if (!cuda::attn_head_dim_supported(int(p_.head_dim_k)))
    throw Error("cuda: head dimension " + std::to_string(p_.head_dim_k) + " is not supported");
  if (p_.n_rot > p_.head_dim_k || p_.n_rot % 2 != 0) throw Error("cuda: unsupported rope dimension");
  if (opt_.n_ctx <= 0 || opt_.n_seq_max <= 0) throw Error("cuda: context size and sequence count must be positive");
  if (p_.n_embd % 8 != 0 || p_.n_ff % 8 != 0) throw Error("cuda: model widths must be multiples of 8");
}

DevMat CudaBackend::put_matrix(const WeightView& w, std::vector<uint8_t>& staging) {
  if (!cuda::dev_type_supported(w.type) || w.ne[0] % cuda::dev_block_elems(w.type) != 0)
    throw Error("cuda: tensor " + w.name + " has unsupported type " + std::string(type_name(w.type)));
  auto it = uploaded_.find(w.data);
  DevMat m{nullptr, w.type, int(w.ne[0]), int(w.ne[1])};
  if (it != uploaded_.end()) {
    m.d = it->second;
    return m;
  }
  const size_t bytes = cuda::dev_row_bytes(w.type, w.ne[0]) * size_t(w.ne[1]);
  void* d = dalloc<uint8_t>(bytes, weight_alloc_bytes_);
  allocs_.push_back(d);
  const void* src = w.data;
  if (bytes != w.nbytes) {
    staging.resize(bytes);
    cuda::repack_rows(w.type, w.data, w.ne[0], w.ne[1], staging.data());
    src = staging.data();
  }
  check(cudaMemcpy(d, src, bytes, cudaMemcpyHostToDevice), "upload weights");
  uploaded_[w.data] = d;
  m.d = d;
  return m;
}

const float* CudaBackend::put_norm(const WeightView& w) {
  if (w.type != GgmlType::F32) throw Error("cuda: norm tensor " + w.name + " must be f32");
  float* d = dalloc<float>(size_t(w.ne[0]), weight_alloc_bytes_);
  allocs_.push_back(d);
  check(cudaMemcpy(d, w.data, size_t(w.ne[0]) * sizeof(float), cudaMemcpyHostToDevice), "upload norm");
  return d;
}

void CudaBackend::upload(const Model& model) {
  std::vector<uint8_t> staging;
  embd_ = put_matrix(model.token_embd, staging);
  for (const auto& L : model.layers) {
    DevLayer d;
    d.attn_norm = put_norm(L.attn_norm);
    d.q = put_matrix(L.attn_q, staging);
    d.k = put_matrix(L.attn_k, staging);
    d.v = put_matrix(L.attn_v, staging);
    d.o = put_matrix(L.attn_output, staging);
    d.ffn_norm = put_norm(L.ffn_norm);
    d.gate = put_matrix(L.ffn_gate, staging);
    d.up = put_matrix(L.ffn_up, staging);
    d.down = put_matrix(L.ffn_down, staging);
    layers_.push_back(d);
  }
  out_norm_ = put_norm(model.output_norm);
  out_ = put_matrix(model.output, staging);
  weight_read_bytes_ = model.weight_bytes();
}

void CudaBackend::allocate() {
  const size_t U = kUbatch;
  const size_t E = size_t(p_.n_embd), Q = size_t(p_.q_dim()), K = size_t(p_.k_dim()), V = size_t(p_.v_dim());
  const size_t F = size_t(p_.n_ff), NV = size_t(p_.n_vocab);
  auto keep = [&](void* p) { allocs_.push_back(p); return p; };
  d_in_ = static_cast<int32_t*>(keep(dalloc<int32_t>(4 * U, scratch_bytes_)));
  if (ktrace_)  // one slot per layer kernel and the output mat-vec
    d_ktrace_ = static_cast<unsigned long long*>(
        keep(dalloc<unsigned long long>(3 * size_t(5 * p_.n_layer + 2), scratch_bytes_)));
  d_x_ = static_cast<float*>(keep(dalloc<float>(U * E, scratch_bytes_)));
  d_q_ = static_cast<float*>(keep(dalloc<float>(U * Q, scratch_bytes_)));
  d_k_ = static_cast<float*>(keep(dalloc<float>(U * K, scratch_bytes_)));
  d_v_ = static_cast<float*>(keep(dalloc<float>(U * V, scratch_bytes_)));
  d_att_ = static_cast<float*>(keep(dalloc<float>(U * Q, scratch_bytes_)));
  d_g_ = static_cast<float*>(keep(dalloc<float>(U * F, scratch_bytes_)));
  d_u_ = static_cast<float*>(keep(dalloc<float>(U * F, scratch_bytes_)));
  d_sel_ = static_cast<float*>(keep(dalloc<float>(U * E, scratch_bytes_)));
  // int8 hand-off from gate+up (SwiGLU) to down in the small-batch pass (opt-in, MINNOW_CUDA_Q8HANDOFF=1: it
  // measured ~2% slower on the H100, docs/cuda_notes.md v14; the values are bitwise the same either way), when
  // every gate, up and down matrix takes the int8 path.
  // (The gate+up launch then holds 32 rows of each matrix per block: at most ~150 KiB of weights.)
  bool handoff = p_.n_ff % 128 == 0;
  for (const auto& L : layers_) {
    for (const DevMat* m : {&L.gate, &L.up, &L.down})
      handoff = handoff && (m->type == GgmlType::Q4_K || m->type == GgmlType::Q6_K);
    handoff = handoff && 32 * (cuda::dev_row_bytes(L.gate.type, L.gate.n_in) +
                               cuda::dev_row_bytes(L.up.type, L.up.n_in)) <= (size_t(150) << 10);
  }
  const char* q8h = std::getenv("MINNOW_CUDA_Q8HANDOFF");
  handoff = handoff && q8h && std::string(q8h) == "1";
  if (handoff) d_q8_ = keep(dalloc<uint8_t>(cuda::q8_bytes(kSmallBatch, int(p_.n_ff)), scratch_bytes_));
  d_logits_ = static_cast<float*>(keep(dalloc<float>(U * NV, scratch_bytes_)));
  d_h16_ = keep(dalloc<__half>(U * std::max({E, Q, F}), scratch_bytes_));
  // int8 tensor-core GEMM in run_large (activations quantised per token and per 32 elements): off by default
  // (measured slower than dequant + cuBLAS on the H100 and above the golden KL bound on one prompt; see
  // docs/cuda_notes.md, "Large batches: int8 GEMM"); MINNOW_CUDA_GEMM=q8 turns it on for chunks of at most
  // MINNOW_CUDA_GEMM_MAX tokens (default all).
  if (const char* e = std::getenv("MINNOW_CUDA_GEMM")) use_q8_ = std::string(e) == "q8";
  if (const char* e = std::getenv("MINNOW_CUDA_GEMM_MAX")) q8_max_nt_ = std::atoi(e);
  if (use_q8_) {
    const size_t max_in = std::max({E, Q, F});
    d_xq_ = static_cast<int8_t*>(keep(dalloc<int8_t>(U * max_in, scratch_bytes_)));
    d_xs_ = static_cast<float*>(keep(dalloc<float>(U * (max_in / 32) * 2, scratch_bytes_)));
    d_xq2_ = static_cast<int8_t*>(keep(dalloc<int8_t>(U * F, scratch_bytes_)));
    d_xs2_ = static_cast<float*>(keep(dalloc<float>(U * (F / 32) * 2, scratch_bytes_)));
  }
  const size_t kv_elems = size_t(p_.n_layer) * size_t(n_seq_) * size_t(n_ctx_) * K;
  d_kcache_ = keep(dalloc<__half>(kv_elems, kv_bytes_));
  d_vcache_ = keep(dalloc<__half>(kv_elems, kv_bytes_));
  // RoPE angles for every position, computed once in double precision (the QKV epilogue reads them).
  const size_t rope_floats = size_t(n_ctx_) * size_t(p_.n_rot / 2) * 2;
  if (rope_floats * sizeof(float) <= (size_t(64) << 20)) {
    std::vector<float> table(rope_floats);
    cuda::rope_table(n_ctx_, int(p_.n_rot), p_.rope_freq_base, p_.rope_freq_scale, table.data());
    d_rope_ = static_cast<float*>(keep(dalloc<float>(rope_floats, scratch_bytes_)));
    check(cudaMemcpy(d_rope_, table.data(), rope_floats * sizeof(float), cudaMemcpyHostToDevice), "upload rope");
  }
  check(cudaMallocHost(reinterpret_cast<void**>(&h_in_), sizeof(int32_t) * 4 * U), "cudaMallocHost");
  std::memset(h_in_, 0, sizeof(int32_t) * 4 * U);
  check(cudaMallocHost(reinterpret_cast<void**>(&h_logits_), sizeof(float) * U * NV), "cudaMallocHost");
  d_top_ = static_cast<int32_t*>(keep(dalloc<int32_t>(U * Backend::kTopIds, scratch_bytes_)));
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
               prop.name, weight_alloc_bytes_ / MiB, kv_bytes_ / MiB, n_seq_, n_ctx_, scratch_bytes_ / MiB,
               (total_b - free_b) / MiB, total_b / MiB);
  if (v1_) {
    std::fprintf(stderr, "cuda: large batches: v1 (whole-matrix dequant + one GEMM per matrix)\n");
  } else if (f16w_) {
    std::fprintf(stderr, "cuda: large batches: resident f16 weights (%.1f MiB), split-K up to %d, attention groups of %d\n",
                 f16w_bytes_ / MiB, splitk_max_, attn_group_);
  } else {
    std::fprintf(stderr, "cuda: large batches: dequant chunks of %.1f MiB f16 on %zu stream(s), split-K up to %d, "
                 "attention groups of %d\n", double(chunk_elems_ * sizeof(__half)) / MiB,
                 std::max<size_t>(1, side_.size()), side_.empty() ? splitk_max_ : 1, attn_group_);
  }
}

cuda::AttnArgs CudaBackend::attn_args(int layer, int t0, int nt) const {
  cuda::AttnArgs a;
  a.d_q = d_q_ + size_t(t0) * p_.q_dim();
  a.ldq = int(p_.q_dim());
  a.d_kcache = kcache(layer);
  a.d_vcache = vcache(layer);
  a.d_pos = d_pos() + t0;
  a.d_seq = d_seq() + t0;
  a.n = nt;
  a.n_head = int(p_.n_head);
  a.n_head_kv = int(p_.n_head_kv);
  a.head_dim = int(p_.head_dim_k);
  a.n_ctx = n_ctx_;
  a.scale = 1.0f / std::sqrt(float(p_.head_dim_k));
  a.d_scratch = d_attn_scratch_;
  a.d_counters = d_attn_counters_;
  a.d_out = d_att_ + size_t(t0) * p_.q_dim();
  a.ldo = int(p_.q_dim());
  return a;
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

void CudaBackend::mark(int phase) {
  if (!prof_) return;
  if (prof_used_ == prof_ev_.size()) {
    cudaEvent_t e = nullptr;
    check(cudaEventCreate(&e), "cudaEventCreate");
    prof_ev_.push_back(e);
    prof_phase_.push_back(0);
  }
  check(cudaEventRecord(prof_ev_[prof_used_], stream_), "cudaEventRecord");
  prof_phase_[prof_used_++] = phase;
}

void CudaBackend::finish_profile(int nt, int n_out) {
  if (!prof_ || prof_used_ < 2) return;
  check(cudaEventSynchronize(prof_ev_[prof_used_ - 1]), "cudaEventSynchronize");
  if (prof_skip_ > 0) {  // warm-up passes (cuBLAS kernel loading) are left out
    --prof_skip_;
    prof_used_ = 0;
    return;
  }
  for (size_t i = 1; i < prof_used_; ++i) {
    float ms = 0.f;
    check(cudaEventElapsedTime(&ms, prof_ev_[i - 1], prof_ev_[i]), "cudaEventElapsedTime");
    prof_ms_[prof_phase_[i]] += ms;
  }
  prof_used_ = 0;
  ++prof_passes_;
  prof_tokens_ += nt;
  prof_outs_ += n_out;
  if (prof_passes_ % prof_every_ == 0) print_profile();
}

void CudaBackend::small_event(int i) {
  if (!small_ev_[i]) check(cudaEventCreate(&small_ev_[i]), "cudaEventCreate");
  check(cudaEventRecord(small_ev_[i], stream_), "cudaEventRecord");
}

void CudaBackend::small_done(double wall_ms) {
  if (small_skip_ > 0) {
    --small_skip_;
    return;
  }
  float ms = 0.f;
  check(cudaEventElapsedTime(&ms, small_ev_[0], small_ev_[1]), "cudaEventElapsedTime");
  small_gpu_ms_ += ms;
  small_wall_ms_ += wall_ms;
  ++small_passes_;
}

void CudaBackend::print_profile() const {
  if (kt_n_ > 0) {
    // Per kind (mean over layers and passes): the hand-over (first block past the wait - the previous kernel's
    // last block end) and the work (last block end - first block past the wait).
    const double n = double(kt_n_);
    std::map<std::string, std::array<double, 3>> kinds;  // kind -> gap, work, count
    for (size_t i = 0; i < ktrace_label_.size() && i < kt_gap_.size(); ++i) {
      const std::string& l = ktrace_label_[i];
      const std::string kind = l.find(' ') == std::string::npos ? l : l.substr(l.find(' ') + 1);
      auto& k = kinds[kind];
      k[0] += kt_gap_[i] / n;
      k[1] += kt_work_[i] / n;
      k[2] += 1;
    }
    std::fprintf(stderr, "cuda trace: %ld single-token passes, first kernel start -> last kernel end %.1f us\n", kt_n_,
                 kt_total_ / n);
    double sum_gap = 0, sum_work = 0;
    for (const auto& [kind, k] : kinds) {
      std::fprintf(stderr, "cuda trace: %-12s x%-3.0f hand-over %6.2f us, work %6.2f us (per launch)\n", kind.c_str(),
                   k[2], k[0] / k[2], k[1] / k[2]);
      sum_gap += k[0];
      sum_work += k[1];
    }
    std::fprintf(stderr, "cuda trace: sums per pass: hand-overs %.1f us, work %.1f us\n", sum_gap, sum_work);
  }
  if (prof_ && small_passes_ > 0)
    std::fprintf(stderr, "cuda profile: %ld small passes: GPU (upload + graph) %.1f us, host wall per pass %.1f us\n",
                 small_passes_, 1e3 * small_gpu_ms_ / double(small_passes_),
                 1e3 * small_wall_ms_ / double(small_passes_));
  if (!prof_ || prof_passes_ == 0) return;
  static const char* names[kPhases] = {"other", "dequant", "gemm(v1)", "qkv", "o", "gate+up", "down", "rope",
                                       "attention", "output", "out.other"};
  const double n = double(prof_passes_);
  double total = 0;
  for (double v : prof_ms_) total += v;
  const char* path = std::getenv("MINNOW_CUDA_PROFILE_FILE");  // append there instead of stderr
  FILE* f = path && *path ? std::fopen(path, "a") : nullptr;
  FILE* out = f ? f : stderr;
  std::fprintf(out, "cuda profile: %ld large passes, %.1f tokens and %.1f logits rows per pass; GPU %.3f ms per pass:",
               prof_passes_, double(prof_tokens_) / n, double(prof_outs_) / n, total / n);
  for (int i = 0; i < kPhases; ++i)
    if (prof_ms_[i] > 0) std::fprintf(out, " %s %.3f", names[i], prof_ms_[i] / n);
  std::fprintf(out, "; host logits download+copy %.3f ms per pass\n", prof_host_ms_ / n);
  if (f) std::fclose(f);
}

}  // namespace minnow::cuda_impl

namespace minnow {

std::unique_ptr<Backend> make_cuda_backend(const Model& model, const BackendOptions& opt) {
  return std::make_unique<cuda_impl::CudaBackend>(model, opt);
}

}  // namespace minnow
