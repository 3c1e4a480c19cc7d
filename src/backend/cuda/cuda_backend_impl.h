#pragma once
// The CUDA backend's class (internal to src/backend/cuda): the device-side structs (DevMat, DevLayer, GemmGroup,
// LargeLayer), the constants and the declaration of CudaBackend, whose member functions are defined in
// cuda_backend.cpp (construction, upload, allocation, forward, downloads, profile), cuda_backend_small.cpp (the
// mat-vec path of at most kSmallBatch tokens) and cuda_backend_large.cpp (the GEMM path of larger batches).
#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_kernels.h"
#include "common/error.h"
#include "model/model.h"

namespace minnow::cuda_impl {

using cuda::check;

constexpr int kSmallBatch = 32;  // up to this many tokens: mat-vec kernels (batch invariant), graph replay
constexpr int kUbatch = 512;     // tokens per forward chunk
constexpr int kAttnGroup = 32;   // tokens per attention launch (bounds the split-K scratch)

inline void cublas_check(cublasStatus_t st, const char* what) {
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
  CudaBackend(const Model& model, const BackendOptions& opt);

  ~CudaBackend() override;

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
                   std::vector<int32_t>& top) override;

 private:
  void run(const Batch& batch, const std::vector<uint8_t>* top_only, std::vector<float>& logits,
           std::vector<int32_t>* top);

  // --dump: the GPU keeps no per-layer intermediates, but writes the logits (named as the CPU backend does).
  void dump_logits(int n_out);

  void validate();

  DevMat put_matrix(const WeightView& w, std::vector<uint8_t>& staging);

  const float* put_norm(const WeightView& w);

  void upload(const Model& model);

  void allocate();

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
  static int f16w_env();
  void allocate_large();

  static GemmGroup make_group(std::initializer_list<const DevMat*> ms);

  // Resident f16 copies of every large-batch weight group: mode 1 on, 0 off, -1 (auto) on when they take at
  // most half of the free VRAM.
  void allocate_weights_f16(int mode);

  void report() const;

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
                      const float* table);

  cuda::AttnArgs attn_args(int layer, int t0, int nt) const;
  // Attention of tokens [t0, t0 + nt) of a pass of n_pass tokens.
  void attend(int layer, int t0, int nt, int n_pass);

  // L2 prefetch schedule of the small-batch pass: mat-vec kernel i prefetches the weights of mat-vec kernel i + 2
  // (Q,K,V(l) -> gate,up(l); O(l) -> down(l); gate,up(l) -> Q,K,V(l+1); down(l) -> O(l+1); the last layer's
  // gate,up and down each prefetch kPfOut bytes of output.weight), so the weight stream runs ahead of the chain
  // of dependent kernels. Off by default: measured a 1.5-3% loss (v12, docs/cuda_notes.md); MINNOW_CUDA_PREFETCH=1
  // turns it on, =2 prefetches only the output.weight bytes.
  static constexpr size_t kPfOut = size_t(12) << 20;
  static size_t mat_bytes(const DevMat& m) { return cuda::dev_row_bytes(m.type, m.n_in) * size_t(m.n_out); }
  void add_pf(cuda::MatvecArgs& a, const DevMat& m, size_t off = 0, size_t max = ~size_t(0)) const;

  static cuda::MvMat mv(const DevMat& m, float* y, int ldy);

  // The per-layer work of a small batch, in order: per layer QKV (RMSNorm, RoPE and the KV-cache write fused),
  // attention, attn_output (+= residual), gate+up (RMSNorm, SwiGLU fused), down (+= residual). Every argument
  // reads its inputs from d_in_ and fixed buffers, so the same list serves the captured graph and the
  // persistent kernel.
  std::vector<cuda::DecodeStage> layer_stages(int nt) const;

  // Logits of the wanted rows (after every layer): output RMSNorm + output mat-vec.
  void enqueue_output(int nt, int n_out);

  // The final hidden rows whose logits are wanted, [n_out][n_embd] f32: d_x_ itself when all nt rows are
  // wanted (listed in increasing order, so in place) unless always_gather, else gathered into d_sel_.
  const float* output_rows(int nt, int n_out, bool always_gather = false);

  // Logits of n_out rows of xs ([n_out][n_embd], n_out <= kSmallBatch): output RMSNorm + output mat-vec.
  void output_matvec(const float* xs, int n_out);

  // The small-batch forward pass, one kernel per op (mat-vec kernels); captured as a graph by launch_graph.
  // With MINNOW_CUDA_PREFETCH, mat-vec i also prefetches the weights of mat-vec i + 2 into L2 (see add_pf).
  void enqueue_small(int nt, int n_out);

  // The persistent path (cuda::DecodePlan, one launch for all layers) for batches of up to 8 tokens; false when
  // it is off (the default; MINNOW_CUDA_PERSISTENT=1 turns it on) or unsupported for this model (then the graph
  // path runs).
  bool launch_persistent(int nt, int n_out);

  void launch_graph(int nt, int n_out);

  // y[nt][ldy] (columns [0, m.n_out)) = x16[nt][m.n_in] . W^T (+ y when accumulate), W dequantized in row chunks.
  void gemm(const DevMat& m, const void* x16, int nt, float* y, int ldy, bool accumulate);

  // y[nt][ldy] (columns [0, g.rows)) = x16[nt][g.n_in] . G^T (+ y when accumulate), G = the group's matrices
  // stacked by rows: one GEMM on the resident f16 copy, or per chunk of rows a dequant into a scratch buffer and
  // a GEMM, chunks round-robin over the side streams (forked from and joined back into stream_). `phase`: the
  // profile phase of the group (in the single-stream dequant mode, the dequants are timed apart).
  void group_gemm(const GemmGroup& g, const void* x16, int nt, float* y, int ldy, bool accumulate, int phase);

  // Split-K factor of an [m x nt x k] GEMM: doubled while the ~128x128 output tiles times the factor stay under
  // two waves over the SMs, each slice keeps >= 128 of K in multiples of 64, and the partial sums fit.
  int splitk_for(int m, int nt, int k) const;

  // y[nt][ldy] (columns [0, m)) = x16[nt][k] . W^T (+ y), W f16 [m][k]; with `splitk` (stream_ only) and
  // a factor > 1, one strided-batched GEMM writes the partial products of K slices into d_splitk_ and
  // splitk_reduce adds them in a fixed order (deterministic).
  void gemm_f16(cublasHandle_t h, cudaStream_t st, const __half* w, int m, int k, const void* x16, int nt, float* y,
                int ldy, bool accumulate, bool splitk);

  // forward_top's download: the top ids of all n_out rows, and the logits rows whose flag is not set (each run
  // of consecutive such rows in one copy).
  void download_top(int n_out, const uint8_t* top_only, std::vector<float>& logits, std::vector<int32_t>& top);

  // Copies the n_out logits rows (d_logits_) to the end of `logits` through the pinned h_logits_, in pieces of
  // 16 rows, so that the host copy of one piece overlaps the download of the next.
  void download_logits(int n_out, std::vector<float>& logits);

  // ---- Profile (MINNOW_CUDA_PROFILE=1): events on stream_ between the phases of each large pass; per-pass
  // means printed to stderr (or appended to MINNOW_CUDA_PROFILE_FILE) every MINNOW_CUDA_PROFILE_EVERY passes and
  // when the backend is destroyed; the first MINNOW_CUDA_PROFILE_SKIP (2) passes are left out. ----------------------------------------------------------------------
  enum Phase { kOther = 0, kDequant, kGemm, kQkv, kO, kGu, kDown, kRope, kAttn, kOut, kOutOther, kPhases };
  void mark(int phase);
  void finish_profile(int nt, int n_out);
  // Small passes (MINNOW_CUDA_PROFILE=1): GPU time from the input upload to the end of the graph (events), and
  // the host's wall time of the whole pass (upload, graph launch, logits download and copy); the difference is
  // what the host adds to a decode step.
  void small_event(int i);
  void small_done(double wall_ms);
  void print_profile() const;
  static double host_ms() {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
  }

  // With MINNOW_CUDA_GEMM=q8, large batches use the int8 tensor-core GEMM (cuda::gemm_q8) for Q4_K / Q6_K
  // matrices: activations are quantised once per input (RMSNorm fused), QKV is one launch, gate+up one launch
  // with SwiGLU in its epilogue, attn_output and down add into the residual; the gate+up epilogue writes down's
  // int8 input directly. Otherwise (the default), other types, or chunks of more than MINNOW_CUDA_GEMM_MAX
  // tokens: dequant to f16 + cuBLAS.
  bool q8_ok(int nt, std::initializer_list<const DevMat*> ms) const;
  static cuda::GemmMat gmat(const DevMat& m, float* y, int ldy);
  // y = W x for up to 3 matrices (or SwiGLU) on int8 activations xq / xs (quantize_q8's layout).
  void gemm8q(const int8_t* xq, const float* xs, int nt, std::initializer_list<cuda::GemmMat> ms, cuda::GemmMode mode,
              int n_in, int8_t* q_out = nullptr, float* s_out = nullptr);
  // x[nt][ldx] (RMSNorm with `norm` when given) -> d_xq_ / d_xs_, then gemm8q.
  void gemm8(const float* x, int ldx, const float* norm, int nt, std::initializer_list<cuda::GemmMat> ms,
             cuda::GemmMode mode, int n_in);

  void run_large(int nt, int n_out);

  void run_large_v2(int nt, int n_out);

  // v1 (MINNOW_CUDA_LARGE=v1, or MINNOW_CUDA_GEMM=q8): one dequant + GEMM per matrix, attention in groups of 32.
  void run_large_v1(int nt, int n_out);

  ModelParams p_;
  BackendOptions opt_;
  int n_ctx_ = 0, n_seq_ = 0;
  int prefetch_ = 0;  // L2 prefetch of later kernels' weights: 0 off, 1 all, 2 output.weight only (MINNOW_CUDA_PREFETCH)
  bool v11_ = false;  // MINNOW_CUDA_V11=1: the v11 decode graph (gather before the output mat-vec), for A/B timing
  // MINNOW_CUDA_PERSISTENT=1: the persistent decode kernel for batches of up to 8 tokens (bitwise equal results;
  // measured slower than the kernel-per-op graphs on the H100, docs/cuda_notes.md v13, so off by default).
  bool persistent_ = false;
  // Kernel timeline of single-token passes on the per-op graphs (MINNOW_CUDA_TRACE=1, not with the persistent
  // kernel): every mat-vec and attention launch gets a slot of d_ktrace_ (cuda_kernels.h, MatvecArgs::d_trace);
  // per slot, the sums over traced passes of (first block past the wait - previous kernel's last block end),
  // (last block end - first block past the wait), in us; printed by print_profile.
  bool ktrace_ = false;
  unsigned long long* d_ktrace_ = nullptr;  // [ktrace_label_.size()][3]
  std::vector<std::string> ktrace_label_;   // [slots] "L0 qkv", ...
  std::vector<double> kt_gap_, kt_work_;    // [slots]
  double kt_total_ = 0;                     // first kernel start -> last kernel end
  long kt_n_ = 0;
  int kt_skip_ = 8;           // warm-up passes not counted
  int kt_key_ = -1;           // the traced graph: the first one captured for one token with its logits
  bool kt_capturing_ = false;  // inside that capture
  bool kt_pending_ = false;    // that graph was launched: collect after the pass
  unsigned long long* ktrace_slot(const std::string& label);  // next slot (capture time), nullptr when off
  void ktrace_collect();                                      // after a traced single-token pass
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
  int* d_attn_counters_ = nullptr;  // attn_counter_ints(...), kept at zero by the kernel
  float* d_rope_ = nullptr;         // [n_ctx][n_rot/2][cos, sin] or nullptr (then computed in the kernel)
  void *d_kcache_ = nullptr, *d_vcache_ = nullptr;  // f16 [n_layer][n_seq][n_ctx][n_head_kv * head_dim]
};

}  // namespace minnow::cuda_impl
