// The CUDA backend: owns the uploaded weights (device layout of cuda_kernels.h), the F16 KV cache and the
// activation buffers, and runs a batch either through the fused mat-vec kernels (at most kSmallBatch tokens,
// replayed as one CUDA graph per batch shape) or through cuBLAS GEMMs on weights dequantized to f16 in a
// reused scratch buffer (larger batches: prompts).
#include "backend/cuda/cuda_backend.h"

#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "backend/cuda/cuda_kernels.h"
#include "common/error.h"
#include "common/npy.h"
#include "model/llama_model.h"

namespace minnow {

bool cuda_available() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();
    return false;
  }
  return n > 0;
}

namespace {

using cuda::check;

constexpr int kSmallBatch = 32;  // up to this many tokens: mat-vec kernels (batch invariant), graph replay
constexpr int kUbatch = 512;     // tokens per forward chunk
constexpr int kAttnGroup = 32;   // tokens per attention launch (bounds the split-K scratch)

void cublas_check(cublasStatus_t st, const char* what) {
  if (st != CUBLAS_STATUS_SUCCESS) throw Error(std::string("cublas: ") + what + " failed (status " + std::to_string(int(st)) + ")");
}

struct DevMat {
  const void* d = nullptr;  // [n_out][dev_row_bytes(type, n_in)]
  GgmlType type = GgmlType::F32;
  int n_in = 0, n_out = 0;
};

struct DevLayer {
  const float* attn_norm = nullptr;  // [n_embd]
  DevMat q, k, v, o;
  const float* ffn_norm = nullptr;  // [n_embd]
  DevMat gate, up, down;
};

// Large batches: matrices sharing their input, stacked by rows for one GEMM (run_large).
struct GemmGroup {
  DevMat m[3];
  int n = 0;
  int n_in = 0, rows = 0;   // rows = sum of the matrices' n_out
  __half* f16 = nullptr;    // [rows][n_in] resident f16 copy (MINNOW_CUDA_F16W), or nullptr
};
struct LargeLayer {
  GemmGroup qkv, o, gu, down;  // Q,K,V; attn_output; gate,up; ffn_down
};

template <class T>
T* dalloc(size_t count, size_t& total) {
  void* p = nullptr;
  const size_t bytes = std::max<size_t>(count * sizeof(T), 256);
  check(cudaMalloc(&p, bytes), "cudaMalloc");
  total += bytes;
  return static_cast<T*>(p);
}

class CudaBackend final : public Backend {
 public:
  CudaBackend(const LlamaModel& model, const BackendOptions& opt) : p_(model.params()), opt_(opt) {
    if (!cuda_available()) throw Error("--device cuda: no usable CUDA GPU found");
    check(cudaSetDevice(0), "cudaSetDevice");
    validate();
    n_ctx_ = opt.n_ctx;
    if (const char* e = std::getenv("MINNOW_CUDA_PREFETCH")) prefetch_ = std::atoi(e);
    if (const char* e = std::getenv("MINNOW_CUDA_V11")) v11_ = std::string(e) == "1";
    if (const char* e = std::getenv("MINNOW_CUDA_PERSISTENT")) persistent_ = std::string(e) == "1";
    n_seq_ = opt.n_seq_max;
    check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
    cublas_check(cublasCreate(&blas_), "cublasCreate");
    cublas_check(cublasSetStream(blas_, stream_), "cublasSetStream");
    upload(model);
    allocate();
    report();
  }

  ~CudaBackend() override {
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

  std::string name() const override { return "cuda"; }
  size_t kv_cache_bytes() const override { return kv_bytes_; }
  size_t weight_bytes() const override { return weight_read_bytes_; }
  int invariant_batch() const override { return kSmallBatch; }
  bool prefers_top() const override { return true; }
  void seq_clear(int seq) override {
    if (seq < 0 || seq >= n_seq_) throw Error("seq_clear: sequence " + std::to_string(seq) + " out of range");
    // Nothing to free: positions restart at 0 and each position is written before it is read.
  }

  void forward(const Batch& batch, std::vector<float>& logits) override { run(batch, nullptr, logits, nullptr); }

  // The greedy shortcut: the top ids of every wanted row are listed on the GPU (cuda::top_ids_rows), so only
  // kTopIds ints per row, and the logits rows of the rows not flagged, cross to the host.
  void forward_top(const Batch& batch, const std::vector<uint8_t>& top_only, std::vector<float>& logits,
                   std::vector<int32_t>& top) override {
    size_t wanted = 0;
    for (uint8_t w : batch.want_logits) wanted += w ? 1 : 0;
    if (top_only.size() != wanted)
      throw Error("forward_top: " + std::to_string(top_only.size()) + " flags for " + std::to_string(wanted) +
                  " wanted rows");
    run(batch, &top_only, logits, &top);
  }

 private:
  void run(const Batch& batch, const std::vector<uint8_t>* top_only, std::vector<float>& logits,
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
      ++dump_calls_;
      w0 += size_t(n_out);
    }
  }

  // --dump: the GPU keeps no per-layer intermediates, but writes the logits (named as the CPU backend does).
  void dump_logits(int n_out) {
    if (opt_.dump_dir.empty()) return;
    std::string file = opt_.dump_dir + "/logits";
    if (dump_calls_ > 0) file += ".call" + std::to_string(dump_calls_);
    write_npy_f32(file + ".npy", h_logits_, {n_out, p_.n_vocab});
  }

  void validate() {
    if (p_.head_dim_k != p_.head_dim_v) throw Error("cuda: different key and value head sizes are not supported");
    if (!cuda::attn_head_dim_supported(int(p_.head_dim_k)))
      throw Error("cuda: head dimension " + std::to_string(p_.head_dim_k) + " is not supported");
    if (p_.n_rot > p_.head_dim_k || p_.n_rot % 2 != 0) throw Error("cuda: unsupported rope dimension");
    if (opt_.n_ctx <= 0 || opt_.n_seq_max <= 0) throw Error("cuda: context size and sequence count must be positive");
    if (p_.n_embd % 8 != 0 || p_.n_ff % 8 != 0) throw Error("cuda: model widths must be multiples of 8");
  }

  DevMat put_matrix(const WeightView& w, std::vector<uint8_t>& staging) {
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

  const float* put_norm(const WeightView& w) {
    if (w.type != GgmlType::F32) throw Error("cuda: norm tensor " + w.name + " must be f32");
    float* d = dalloc<float>(size_t(w.ne[0]), weight_alloc_bytes_);
    allocs_.push_back(d);
    check(cudaMemcpy(d, w.data, size_t(w.ne[0]) * sizeof(float), cudaMemcpyHostToDevice), "upload norm");
    return d;
  }

  void upload(const LlamaModel& model) {
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

  void allocate() {
    const size_t U = kUbatch;
    const size_t E = size_t(p_.n_embd), Q = size_t(p_.q_dim()), K = size_t(p_.k_dim()), V = size_t(p_.v_dim());
    const size_t F = size_t(p_.n_ff), NV = size_t(p_.n_vocab);
    auto keep = [&](void* p) { allocs_.push_back(p); return p; };
    d_in_ = static_cast<int32_t*>(keep(dalloc<int32_t>(4 * U, scratch_bytes_)));
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

  // ---- Large batches (more than kSmallBatch tokens): f16 GEMMs through cuBLAS ----------------------------
  // v2 (the default): the matrices that share an input are stacked by rows and computed as one GEMM (Q,K,V;
  // gate,up), into [nt][sum of n_out] outputs; attention runs in groups of MINNOW_CUDA_ATTN_GROUP tokens
  // (default all of the chunk, bounded by 512 MiB of scratch); RoPE reads the angle table. The weights are
  // dequantized per pass into a scratch buffer (only the quantized weights stay resident), or, opted in with
  // MINNOW_CUDA_F16W (=auto: when they take at most half of the free VRAM; =1: always; TinyLlama-1.1B: +1973 MiB),
  // resident f16 copies that trade VRAM for large-batch speed. Per-pass dequantization: a whole group at a time
  // (MINNOW_CUDA_DQ_CHUNK_KB=0, the default) or in chunks of that many KiB of f16 spread round-robin over
  // MINNOW_CUDA_DQ_STREAMS streams (each with its own scratch and cuBLAS handle). MINNOW_CUDA_SPLITK=N splits
  // GEMMs whose output tiles would not fill the GPU into up to N slices of K (splitk_for). Chunks, streams and
  // split-K measured slower on the H100 (docs/cuda_notes.md, "Large batches: dequant chunks in L2 ..."), so
  // they are off by default. MINNOW_CUDA_LARGE=v1: the earlier path (one dequant of
  // each whole matrix + one GEMM per matrix, attention in groups of 32), kept for A/B timing and the int8 GEMM.
  static int f16w_env() {  // MINNOW_CUDA_F16W: 0/unset never, 1 always, auto (or -1) when it fits
    const char* e = std::getenv("MINNOW_CUDA_F16W");
    if (!e || !*e) return 0;
    const std::string v(e);
    return v == "auto" ? -1 : std::atoi(e);
  }
  void allocate_large() {
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

  static GemmGroup make_group(std::initializer_list<const DevMat*> ms) {
    GemmGroup g;
    for (const DevMat* m : ms) {
      if (g.n > 0 && m->n_in != g.n_in) throw Error("cuda: matrices of one GEMM group differ in width");
      g.m[g.n++] = *m;
      g.n_in = m->n_in;
      g.rows += m->n_out;
    }
    return g;
  }

  // Resident f16 copies of every large-batch weight group: mode 1 on, 0 off, -1 (auto) on when they take at
  // most half of the free VRAM.
  void allocate_weights_f16(int mode) {
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

  void report() const {
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

  __half* kcache(int layer) const {
    return static_cast<__half*>(d_kcache_) + size_t(layer) * n_seq_ * size_t(n_ctx_) * size_t(p_.k_dim());
  }
  __half* vcache(int layer) const {
    return static_cast<__half*>(d_vcache_) + size_t(layer) * n_seq_ * size_t(n_ctx_) * size_t(p_.k_dim());
  }
  const int32_t* d_tokens() const { return d_in_; }
  const int32_t* d_pos() const { return d_in_ + kUbatch; }
  const int32_t* d_seq() const { return d_in_ + 2 * kUbatch; }
  const int32_t* d_outidx() const { return d_in_ + 3 * kUbatch; }

  // RoPE on q and k, then k and v into the layer's cache; table: the angle table or nullptr (computed).
  void rope_and_store(int layer, int nt, float* q, const float* k, const float* v, int ldq, int ldk, int ldv,
                      const float* table) {
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

  cuda::AttnArgs attn_args(int layer, int t0, int nt) const {
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
  // Attention of tokens [t0, t0 + nt) of a pass of n_pass tokens.
  void attend(int layer, int t0, int nt, int n_pass) {
    cuda::AttnArgs a = attn_args(layer, t0, nt);
    a.n_pass = n_pass;
    cuda::attention(a, stream_);
  }

  // L2 prefetch schedule of the small-batch pass: mat-vec kernel i prefetches the weights of mat-vec kernel i + 2
  // (Q,K,V(l) -> gate,up(l); O(l) -> down(l); gate,up(l) -> Q,K,V(l+1); down(l) -> O(l+1); the last layer's
  // gate,up and down each prefetch kPfOut bytes of output.weight), so the weight stream runs ahead of the chain
  // of dependent kernels. Off by default: measured a 1.5-3% loss (v12, docs/cuda_notes.md); MINNOW_CUDA_PREFETCH=1
  // turns it on, =2 prefetches only the output.weight bytes.
  static constexpr size_t kPfOut = size_t(12) << 20;
  static size_t mat_bytes(const DevMat& m) { return cuda::dev_row_bytes(m.type, m.n_in) * size_t(m.n_out); }
  void add_pf(cuda::MatvecArgs& a, const DevMat& m, size_t off = 0, size_t max = ~size_t(0)) const {
    if (!prefetch_ || !m.d || (prefetch_ == 2 && m.d != out_.d)) return;
    const size_t total = mat_bytes(m);
    if (off >= total) return;
    for (int i = 0; i < 3; ++i) {
      if (a.d_pf[i]) continue;
      a.d_pf[i] = static_cast<const uint8_t*>(m.d) + off;
      a.pf_bytes[i] = std::min(total - off, max);
      return;
    }
  }

  static cuda::MvMat mv(const DevMat& m, float* y, int ldy) {
    cuda::MvMat r;
    r.d_w = m.d;
    r.type = m.type;
    r.n_out = m.n_out;
    r.d_y = y;
    r.ldy = ldy;
    return r;
  }

  // The per-layer work of a small batch, in order: per layer QKV (RMSNorm, RoPE and the KV-cache write fused),
  // attention, attn_output (+= residual), gate+up (RMSNorm, SwiGLU fused), down (+= residual). Every argument
  // reads its inputs from d_in_ and fixed buffers, so the same list serves the captured graph and the
  // persistent kernel.
  std::vector<cuda::DecodeStage> layer_stages(int nt) const {
    const int E = int(p_.n_embd);
    const float eps = float(p_.rms_eps);
    std::vector<cuda::DecodeStage> st;
    for (size_t l = 0; l < layers_.size(); ++l) {
      const DevLayer& L = layers_[l];
      cuda::DecodeStage s;
      cuda::MatvecArgs& a = s.mv;
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
      a.d_kcache = kcache(int(l));
      a.d_vcache = vcache(int(l));
      a.n_ctx = n_ctx_;
      a.d_rope = d_rope_;
      st.push_back(s);
      cuda::DecodeStage at;
      at.attention = true;
      at.at = attn_args(int(l), 0, nt);
      st.push_back(at);
      cuda::DecodeStage o;
      o.mv.m[0] = mv(L.o, d_x_, E);
      o.mv.n_in = L.o.n_in;
      o.mv.d_x = d_att_;
      o.mv.ldx = int(p_.q_dim());
      o.mv.nb = nt;
      o.mv.mode = cuda::MvMode::Add;
      st.push_back(o);
      cuda::DecodeStage f;
      f.mv.m[0] = mv(L.gate, d_g_, int(p_.n_ff));
      f.mv.m[1] = mv(L.up, nullptr, int(p_.n_ff));
      f.mv.n_mats = 2;
      f.mv.n_in = E;
      f.mv.d_x = d_x_;
      f.mv.ldx = E;
      f.mv.nb = nt;
      f.mv.d_norm = L.ffn_norm;
      f.mv.eps = eps;
      f.mv.mode = cuda::MvMode::SwiGLU;
      f.mv.d_q8_out = d_q8_;
      f.mv.q8_tokens = d_q8_ ? kSmallBatch : 0;
      st.push_back(f);
      cuda::DecodeStage d;
      d.mv.m[0] = mv(L.down, d_x_, E);
      d.mv.n_in = L.down.n_in;
      d.mv.d_x = d_g_;
      d.mv.ldx = int(p_.n_ff);
      d.mv.nb = nt;
      d.mv.mode = cuda::MvMode::Add;
      d.mv.d_q8_in = d_q8_;
      d.mv.q8_tokens = d_q8_ ? kSmallBatch : 0;
      st.push_back(d);
    }
    return st;
  }

  // Logits of the wanted rows (after every layer): output RMSNorm + output mat-vec.
  void enqueue_output(int nt, int n_out) {
    if (n_out <= 0) return;
    const int E = int(p_.n_embd);
    // Rows wanted are listed in increasing order, so n_out == nt means all of them in place: the output
    // mat-vec then reads d_x_ directly (one kernel less, and its weight copy overlaps the last down kernel).
    const bool all_rows = n_out == nt && !v11_;
    if (!all_rows) cuda::gather_rows(d_x_, E, d_outidx(), n_out, d_sel_, stream_);
    output_matvec(all_rows ? d_x_ : d_sel_, n_out);
  }

  // Logits of n_out rows of xs ([n_out][n_embd], n_out <= kSmallBatch): output RMSNorm + output mat-vec.
  void output_matvec(const float* xs, int n_out) {
    const int E = int(p_.n_embd);
    cuda::MatvecArgs a;
    a.m[0] = mv(out_, d_logits_, int(p_.n_vocab));
    a.n_in = E;
    a.d_x = xs;
    a.ldx = E;
    a.nb = n_out;
    a.d_norm = out_norm_;
    a.eps = float(p_.rms_eps);
    cuda::matvec(a, stream_);
  }

  // The small-batch forward pass, one kernel per op (mat-vec kernels); captured as a graph by launch_graph.
  // With MINNOW_CUDA_PREFETCH, mat-vec i also prefetches the weights of mat-vec i + 2 into L2 (see add_pf).
  void enqueue_small(int nt, int n_out) {
    cuda::get_rows(embd_.type, embd_.d, int(p_.n_embd), d_tokens(), nt, d_x_, stream_);
    std::vector<cuda::DecodeStage> st = layer_stages(nt);
    std::vector<cuda::MatvecArgs*> mvs;
    for (auto& s : st)
      if (!s.attention) mvs.push_back(&s.mv);
    for (size_t i = 0; i < mvs.size(); ++i) {
      if (i + 2 < mvs.size()) {
        const cuda::MatvecArgs& t = *mvs[i + 2];
        for (int k = 0; k < t.n_mats; ++k) add_pf(*mvs[i], DevMat{t.m[k].d_w, t.m[k].type, t.n_in, t.m[k].n_out});
      } else if (n_out > 0) {
        add_pf(*mvs[i], out_, (i + 2 - mvs.size()) * kPfOut, kPfOut);
      }
    }
    for (const auto& s : st) {
      if (s.attention) cuda::attention(s.at, stream_);
      else cuda::matvec(s.mv, stream_);
    }
    enqueue_output(nt, n_out);
  }

  // The persistent path (cuda::DecodePlan, one launch for all layers) for batches of up to 8 tokens; false when
  // it is off (the default; MINNOW_CUDA_PERSISTENT=1 turns it on) or unsupported for this model (then the graph
  // path runs).
  bool launch_persistent(int nt, int n_out) {
    if (!persistent_ || nt > 8) return false;
    auto it = plans_.find(nt);
    if (it == plans_.end()) {
      std::unique_ptr<cuda::DecodePlan> plan;
      try {
        plan = std::make_unique<cuda::DecodePlan>(layer_stages(nt), nt);
      } catch (const Error& e) {
        if (!persistent_warned_) std::fprintf(stderr, "cuda: persistent decode not used: %s\n", e.what());
        persistent_warned_ = true;
      }
      it = plans_.emplace(nt, std::move(plan)).first;
    }
    if (!it->second) return false;
    cuda::get_rows(embd_.type, embd_.d, int(p_.n_embd), d_tokens(), nt, d_x_, stream_);
    it->second->launch(stream_);
    enqueue_output(nt, n_out);
    return true;
  }

  void launch_graph(int nt, int n_out) {
    const int key = nt * (kSmallBatch + 1) + n_out;
    auto it = graphs_.find(key);
    if (it == graphs_.end()) {
      cudaGraph_t g = nullptr;
      check(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal), "begin capture");
      try {
        enqueue_small(nt, n_out);
      } catch (...) {
        cudaStreamEndCapture(stream_, &g);
        if (g) cudaGraphDestroy(g);
        throw;
      }
      check(cudaStreamEndCapture(stream_, &g), "end capture");
      cudaGraphExec_t exec = nullptr;
      const cudaError_t e = cudaGraphInstantiate(&exec, g, 0);
      cudaGraphDestroy(g);
      check(e, "graph instantiate");
      it = graphs_.emplace(key, exec).first;
    }
    check(cudaGraphLaunch(it->second, stream_), "graph launch");
  }

  // y[nt][ldy] (columns [0, m.n_out)) = x16[nt][m.n_in] . W^T (+ y when accumulate), W dequantized in row chunks.
  void gemm(const DevMat& m, const void* x16, int nt, float* y, int ldy, bool accumulate) {
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

  // y[nt][ldy] (columns [0, g.rows)) = x16[nt][g.n_in] . G^T (+ y when accumulate), G = the group's matrices
  // stacked by rows: one GEMM on the resident f16 copy, or per chunk of rows a dequant into a scratch buffer and
  // a GEMM, chunks round-robin over the side streams (forked from and joined back into stream_). `phase`: the
  // profile phase of the group (in the single-stream dequant mode, the dequants are timed apart).
  void group_gemm(const GemmGroup& g, const void* x16, int nt, float* y, int ldy, bool accumulate, int phase) {
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

  // Split-K factor of an [m x nt x k] GEMM: doubled while the ~128x128 output tiles times the factor stay under
  // two waves over the SMs, each slice keeps >= 128 of K in multiples of 64, and the partial sums fit.
  int splitk_for(int m, int nt, int k) const {
    const int64_t tiles = int64_t((m + 127) / 128) * ((nt + 127) / 128);
    int s = 1;
    while (2 * s <= splitk_max_ && tiles * s < 2 * int64_t(n_sm_) && k % (2 * s * 64) == 0 && k / (2 * s) >= 128 &&
           size_t(2 * s) * size_t(m) * size_t(nt) <= splitk_cap_)
      s *= 2;
    return s;
  }

  // y[nt][ldy] (columns [0, m)) = x16[nt][k] . W^T (+ y), W f16 [m][k]; with `splitk` (stream_ only) and
  // a factor > 1, one strided-batched GEMM writes the partial products of K slices into d_splitk_ and
  // splitk_reduce adds them in a fixed order (deterministic).
  void gemm_f16(cublasHandle_t h, cudaStream_t st, const __half* w, int m, int k, const void* x16, int nt, float* y,
                int ldy, bool accumulate, bool splitk) {
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

  // Copies the n_out logits rows (d_logits_) to the end of `logits` through the pinned h_logits_, in pieces of
  // 16 rows, so that the host copy of one piece overlaps the download of the next.
  // forward_top's download: the top ids of all n_out rows, and the logits rows whose flag is not set (each run
  // of consecutive such rows in one copy).
  void download_top(int n_out, const uint8_t* top_only, std::vector<float>& logits, std::vector<int32_t>& top) {
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

  void download_logits(int n_out, std::vector<float>& logits) {
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

  // ---- Profile (MINNOW_CUDA_PROFILE=1): events on stream_ between the phases of each large pass; per-pass
  // means printed to stderr (or appended to MINNOW_CUDA_PROFILE_FILE) every MINNOW_CUDA_PROFILE_EVERY passes and
  // when the backend is destroyed; the first MINNOW_CUDA_PROFILE_SKIP (2) passes are left out. ----------------------------------------------------------------------
  enum Phase { kOther = 0, kDequant, kGemm, kQkv, kO, kGu, kDown, kRope, kAttn, kOut, kOutOther, kPhases };
  void mark(int phase) {
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
  void finish_profile(int nt, int n_out) {
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
  // Small passes (MINNOW_CUDA_PROFILE=1): GPU time from the input upload to the end of the graph (events), and
  // the host's wall time of the whole pass (upload, graph launch, logits download and copy); the difference is
  // what the host adds to a decode step.
  void small_event(int i) {
    if (!small_ev_[i]) check(cudaEventCreate(&small_ev_[i]), "cudaEventCreate");
    check(cudaEventRecord(small_ev_[i], stream_), "cudaEventRecord");
  }
  void small_done(double wall_ms) {
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
  void print_profile() const {
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
  static double host_ms() {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
  }

  // With MINNOW_CUDA_GEMM=q8, large batches use the int8 tensor-core GEMM (cuda::gemm_q8) for Q4_K / Q6_K
  // matrices: activations are quantised once per input (RMSNorm fused), QKV is one launch, gate+up one launch
  // with SwiGLU in its epilogue, attn_output and down add into the residual; the gate+up epilogue writes down's
  // int8 input directly. Otherwise (the default), other types, or chunks of more than MINNOW_CUDA_GEMM_MAX
  // tokens: dequant to f16 + cuBLAS.
  bool q8_ok(int nt, std::initializer_list<const DevMat*> ms) const {
    if (!use_q8_ || nt > q8_max_nt_) return false;
    for (const DevMat* m : ms)
      if (!cuda::gemm_q8_supported(m->type) || m->n_in % 256 != 0) return false;
    return true;
  }
  static cuda::GemmMat gmat(const DevMat& m, float* y, int ldy) {
    cuda::GemmMat g;
    g.d_w = m.d;
    g.type = m.type;
    g.n_out = m.n_out;
    g.d_y = y;
    g.ldy = ldy;
    return g;
  }
  // y = W x for up to 3 matrices (or SwiGLU) on int8 activations xq / xs (quantize_q8's layout).
  void gemm8q(const int8_t* xq, const float* xs, int nt, std::initializer_list<cuda::GemmMat> ms, cuda::GemmMode mode,
              int n_in, int8_t* q_out = nullptr, float* s_out = nullptr) {
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
  // x[nt][ldx] (RMSNorm with `norm` when given) -> d_xq_ / d_xs_, then gemm8q.
  void gemm8(const float* x, int ldx, const float* norm, int nt, std::initializer_list<cuda::GemmMat> ms,
             cuda::GemmMode mode, int n_in) {
    cuda::quantize_q8(x, ldx, nt, n_in, norm, float(p_.rms_eps), d_xq_, d_xs_, stream_);
    gemm8q(d_xq_, d_xs_, nt, ms, mode, n_in);
  }

  void run_large(int nt, int n_out) {
    mark(kOther);
    if (v1_) run_large_v1(nt, n_out);
    else run_large_v2(nt, n_out);
    finish_profile(nt, n_out);
  }

  void run_large_v2(int nt, int n_out) {
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
      // Rows wanted are listed in increasing order: n_out == nt means every row, in place.
      const bool all_rows = n_out == nt;
      if (!all_rows) cuda::gather_rows(d_x_, E, d_outidx(), n_out, d_sel_, stream_);
      const float* xs = all_rows ? d_x_ : d_sel_;
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

  // v1 (MINNOW_CUDA_LARGE=v1, or MINNOW_CUDA_GEMM=q8): one dequant + GEMM per matrix, attention in groups of 32.
  void run_large_v1(int nt, int n_out) {
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
      // Rows wanted are listed in increasing order: n_out == nt means every row, in place.
      const bool all_rows = n_out == nt;
      if (!all_rows) cuda::gather_rows(d_x_, E, d_outidx(), n_out, d_sel_, stream_);
      const float* xs = all_rows ? d_x_ : d_sel_;
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

  LlamaParams p_;
  BackendOptions opt_;
  int n_ctx_ = 0, n_seq_ = 0;
  int prefetch_ = 0;  // L2 prefetch of later kernels' weights: 0 off, 1 all, 2 output.weight only (MINNOW_CUDA_PREFETCH)
  bool v11_ = false;  // MINNOW_CUDA_V11=1: the v11 decode graph (gather before the output mat-vec), for A/B timing
  // MINNOW_CUDA_PERSISTENT=1: the persistent decode kernel for batches of up to 8 tokens (bitwise equal results;
  // measured slower than the kernel-per-op graphs on the H100, docs/cuda_notes.md v13, so off by default).
  bool persistent_ = false;
  void* d_q8_ = nullptr;  // int8 hand-off gate+up -> down, [kSmallBatch] tokens of n_ff (cuda::q8_bytes), or nullptr
  bool persistent_warned_ = false;
  std::map<int, std::unique_ptr<cuda::DecodePlan>> plans_;  // by token count; nullptr: unsupported
  int dump_calls_ = 0;  // forward chunks so far (file names of --dump, as the CPU backend numbers calls)
  cudaStream_t stream_ = nullptr;
  cublasHandle_t blas_ = nullptr;
  std::vector<void*> allocs_;
  std::map<const void*, const void*> uploaded_;
  std::map<int, cudaGraphExec_t> graphs_;
  DevMat embd_, out_;
  const float* out_norm_ = nullptr;
  std::vector<DevLayer> layers_;
  size_t weight_alloc_bytes_ = 0, scratch_bytes_ = 0, kv_bytes_ = 0, weight_read_bytes_ = 0;
  size_t wdeq_elems_ = 0;
  // Large batches (run_large): see allocate_large().
  bool v1_ = false;                 // MINNOW_CUDA_LARGE=v1
  std::vector<LargeLayer> large_;   // [n_layer] (v2 only)
  GemmGroup out_group_;             // output.weight
  bool f16w_ = false;               // resident f16 weight groups
  size_t f16w_bytes_ = 0;
  size_t chunk_elems_ = 0;          // f16 elements per dequant chunk (scratch per stream)
  std::vector<__half*> wbuf_;       // per stream: f16 [chunk_elems_]
  std::vector<cudaStream_t> side_;  // dequant+GEMM streams (empty: everything on stream_)
  std::vector<cublasHandle_t> side_blas_;
  std::vector<cudaEvent_t> side_ev_;
  cudaEvent_t fork_ev_ = nullptr;
  int attn_group_ = kAttnGroup;     // tokens per attention launch
  float* d_qkv_ = nullptr;          // [kUbatch][q_dim + k_dim + v_dim]
  float* d_gu_ = nullptr;           // [kUbatch][2 n_ff]: gate | up
  int n_sm_ = 132;                  // multiprocessors (split-K heuristic)
  int splitk_max_ = 1;              // MINNOW_CUDA_SPLITK: largest split-K factor (1: off)
  size_t splitk_cap_ = 0;           // floats in d_splitk_
  float* d_splitk_ = nullptr;       // [splitk_cap_] partial products of split-K GEMMs
  std::vector<cudaEvent_t> dl_ev_;  // one per 16-row piece of the logits download
  bool prof_ = false;               // MINNOW_CUDA_PROFILE=1
  long prof_every_ = 100, prof_passes_ = 0, prof_tokens_ = 0, prof_outs_ = 0;
  int prof_skip_ = 2;  // first large passes not counted (MINNOW_CUDA_PROFILE_SKIP)
  std::vector<cudaEvent_t> prof_ev_;
  std::vector<int> prof_phase_;
  size_t prof_used_ = 0;
  double prof_ms_[kPhases] = {};
  double prof_host_ms_ = 0;
  cudaEvent_t small_ev_[2] = {nullptr, nullptr};
  long small_passes_ = 0;
  int small_skip_ = 8;  // warm-up small passes not counted
  double small_gpu_ms_ = 0, small_wall_ms_ = 0;
  bool use_q8_ = false;        // int8 GEMM for Q4_K / Q6_K in run_large (MINNOW_CUDA_GEMM=q8: on)
  int q8_max_nt_ = kUbatch;    // ... for chunks of at most this many tokens (MINNOW_CUDA_GEMM_MAX)
  int8_t* d_xq_ = nullptr;     // [kUbatch][max(n_embd, q_dim, n_ff)] int8 activations of the GEMM
  int8_t* d_xq2_ = nullptr;    // [kUbatch][n_ff] int8 input of ffn_down (written by the gate+up epilogue)
  float* d_xs2_ = nullptr;     // [kUbatch][n_ff / 32][2]
  float* d_xs_ = nullptr;      // [kUbatch][max width / 32][2]: scale, scale * sum of the 32 int8 values
  int32_t* d_in_ = nullptr;  // [4][kUbatch]: tokens, positions, sequences, rows whose logits are wanted
  int32_t* h_in_ = nullptr;  // pinned mirror of d_in_
  float *d_x_ = nullptr, *d_q_ = nullptr, *d_k_ = nullptr, *d_v_ = nullptr, *d_att_ = nullptr;  // [kUbatch][width]
  float *d_g_ = nullptr, *d_u_ = nullptr, *d_sel_ = nullptr, *d_logits_ = nullptr;
  float* h_logits_ = nullptr;  // pinned [kUbatch][n_vocab]
  int32_t* d_top_ = nullptr;   // [kUbatch][Backend::kTopIds] forward_top's ids
  int32_t* h_top_ = nullptr;   // pinned mirror of d_top_
  void* d_h16_ = nullptr;      // f16 [kUbatch][max width]
  void* d_wdeq_ = nullptr;     // f16 [wdeq_elems_]
  float* d_attn_scratch_ = nullptr;
  int* d_attn_counters_ = nullptr;
  float* d_rope_ = nullptr;  // [n_ctx][n_rot/2][cos, sin] or nullptr (then computed in the kernel)  // [kAttnGroup][n_head_kv][groups], kept at zero by the kernel
  void *d_kcache_ = nullptr, *d_vcache_ = nullptr;  // f16 [n_layer][n_seq][n_ctx][n_head_kv * head_dim]
};

}  // namespace

std::unique_ptr<Backend> make_cuda_backend(const LlamaModel& model, const BackendOptions& opt) {
  return std::make_unique<CudaBackend>(model, opt);
}

}  // namespace minnow
