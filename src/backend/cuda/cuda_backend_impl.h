#pragma once
// The CUDA backend's class (internal to src/backend/cuda). Its parts:
//   weights on the device   DeviceWeights (cuda_weights.h/.cpp)
//   the KV cache            KvCache (cuda_kv_cache.h)
//   the decode path         batches of at most kSmallBatch tokens: one fused mat-vec kernel per op, batch
//                           invariant (cuda_decode.cpp)
//   graphs                  each decode batch shape captured once as a CUDA graph and replayed (cuda_graphs.cpp)
//   the prefill path        larger batches: stacked f16 GEMMs through cuBLAS (cuda_prefill.cpp)
//   measurements            Profiler (cuda_profile.h/.cpp), off by default
// and this class ties them together: construction, buffers, the forward entry points and the downloads
// (cuda_backend.cpp).
#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_kernels.h"
#include "backend/cuda/cuda_kv_cache.h"
#include "backend/cuda/cuda_profile.h"
#include "backend/cuda/cuda_weights.h"
#include "common/error.h"
#include "model/model.h"

namespace minnow::cuda_impl {

using cuda::check;

constexpr int kSmallBatch = 32;  // up to this many tokens: mat-vec kernels (batch invariant), graph replay
constexpr int kUbatch = 512;     // tokens per forward chunk
constexpr int kAttnGroup = 32;   // smallest number of tokens per attention launch (bounds the split-K scratch)

inline void cublas_check(cublasStatus_t st, const char* what) {
  if (st != CUBLAS_STATUS_SUCCESS) throw Error(std::string("cublas: ") + what + " failed (status " + std::to_string(int(st)) + ")");
}

// Large batches: matrices sharing their input, stacked by rows for one GEMM.
struct GemmGroup {
  DevMat m[3];
  int n = 0;
  int n_in = 0, rows = 0;   // rows = sum of the matrices' n_out
  __half* f16 = nullptr;    // [rows][n_in] resident f16 copy (MINNOW_CUDA_F16W), or nullptr
};
struct LargeLayer {
  GemmGroup qkv, o, gu, down;  // Q,K,V; attn_output; gate,up; ffn_down
};

class CudaBackend final : public Backend {
 public:
  CudaBackend(const Model& model, const BackendOptions& opt);
  ~CudaBackend() override;

  std::string name() const override { return "cuda"; }
  size_t kv_cache_bytes() const override { return kv_->bytes(); }
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
  // ---- cuda_backend.cpp: entry points, buffers, downloads ------------------------------------------------
  void run(const Batch& batch, const std::vector<uint8_t>* top_only, std::vector<float>& logits,
           std::vector<int32_t>* top);
  void validate() const;
  void allocate();
  void report() const;
  template <class T>
  T* scratch(size_t count);  // a device buffer freed with the backend, counted in scratch_bytes_
  // --dump: the GPU keeps no per-layer intermediates, but writes the logits (named as the CPU backend does).
  void dump_logits(int n_out);
  // forward_top's download: the top ids of all n_out rows, and the logits rows whose flag is not set.
  void download_top(int n_out, const uint8_t* top_only, std::vector<float>& logits, std::vector<int32_t>& top);
  // Copies the n_out logits rows to the end of `logits` through the pinned h_logits_, in pieces of 16 rows, so
  // that the host copy of one piece overlaps the download of the next.
  void download_logits(int n_out, std::vector<float>& logits);
  const int32_t* d_tokens() const { return d_in_; }
  const int32_t* d_pos() const { return d_in_ + kUbatch; }
  const int32_t* d_seq() const { return d_in_ + 2 * kUbatch; }
  const int32_t* d_outidx() const { return d_in_ + 3 * kUbatch; }
  // Attention arguments of tokens [t0, t0 + nt) (queries in d_q_; the prefill path points them elsewhere).
  cuda::AttnArgs attn_args(int layer, int t0, int nt) const;
  // The final hidden rows whose logits are wanted, [n_out][n_embd] f32: d_x_ itself when all nt rows are
  // wanted (listed in increasing order, so in place), else gathered into d_sel_.
  const float* output_rows(int nt, int n_out);
  // Logits of n_out rows of xs ([n_out][n_embd], n_out <= kSmallBatch): output RMSNorm + output mat-vec.
  void output_matvec(const float* xs, int n_out);

  // ---- The layer features (model/layer_spec.h), shared by both paths (cuda_features.cpp) -------------------
  // Chosen once from the description: fused_qkv_ when the fused QKV epilogue (adjacent RoPE on the one angle
  // table, no bias, no Q/K norm) computes the layer exactly, else qkv_post() (the unfused epilogue).
  void setup_features(const Model& model);
  // Embedding lookup of nt tokens into d_x_, scaled by the embedding scale.
  void embed(int nt);
  // The unfused QKV epilogue of layer l on q, k, v (strides ldq, ldk, ldv): biases, Q/K norms, RoPE, KV store.
  void qkv_post(int layer, int nt, float* q, const float* k, const float* v, int ldq, int ldk, int ldv);
  // x += post(y + bias) (see cuda::residual_post): the attention output or FFN output with their optional
  // bias and post-norm.
  void residual_post(const float* y, int ldy, const float* bias, const float* norm, int nt);
  // The soft-cap of n_out logits rows, when the model has one.
  void cap_logits(int n_out);

  // ---- cuda_decode.cpp: the small-batch pass ------------------------------------------------------------
  // Per layer: QKV (RMSNorm, RoPE and the KV-cache write fused), attention, attn_output (+= residual),
  // gate+up (RMSNorm, SwiGLU fused), down (+= residual); then the output mat-vec. Captured by launch_graph.
  void enqueue_small(int nt, int n_out);
  static cuda::MvMat mv(const DevMat& m, float* y, int ldy);

  // ---- cuda_graphs.cpp: one graph per (tokens, wanted rows) -----------------------------------------------
  void launch_graph(int nt, int n_out);

  // ---- cuda_prefill.cpp: the large-batch pass -------------------------------------------------------------
  // The matrices that share an input are stacked by rows and computed as one GEMM (Q,K,V; gate,up) into
  // [nt][sum of n_out] outputs; attention runs in groups of up to the whole chunk (bounded by 512 MiB of
  // scratch); RoPE reads the angle table. The weights are dequantized per GEMM into a scratch buffer (only the
  // quantized weights stay resident), or, opted in with MINNOW_CUDA_F16W (=auto: when they take at most half of
  // the free VRAM; =1: always; TinyLlama-1.1B: +1973 MiB), read from resident f16 copies.
  void allocate_large();
  static GemmGroup make_group(std::initializer_list<const DevMat*> ms);
  void allocate_weights_f16(int mode);  // mode: MINNOW_CUDA_F16W (0 off, 1 on, -1 auto)
  // y[nt][ldy] (columns [0, g.rows)) = x16[nt][g.n_in] . G^T (+ y when accumulate), G = the group's matrices
  // stacked by rows: one GEMM on the resident f16 copy, or per matrix a dequant into the scratch buffer and a
  // GEMM. `phase`: the profile phase of the group.
  void group_gemm(const GemmGroup& g, const void* x16, int nt, float* y, int ldy, bool accumulate, int phase);
  void gemm_f16(const __half* w, int m, int k, const void* x16, int nt, float* y, int ldy, bool accumulate);
  void rope_and_store(int layer, int nt, float* q, const float* k, const float* v, int ldq, int ldk, int ldv);
  void run_large(int nt, int n_out);

  ModelParams p_;
  BackendOptions opt_;
  int n_ctx_ = 0, n_seq_ = 0;
  int dump_calls_ = 0;  // forward chunks so far (file names of --dump, as the CPU backend numbers calls)
  cudaStream_t stream_ = nullptr;
  cublasHandle_t blas_ = nullptr;
  std::unique_ptr<DeviceWeights> w_;
  std::unique_ptr<KvCache> kv_;
  std::unique_ptr<Profiler> prof_;
  std::vector<void*> allocs_;  // scratch buffers
  std::map<int, cudaGraphExec_t> graphs_;
  size_t scratch_bytes_ = 0, weight_read_bytes_ = 0;
  std::vector<cudaEvent_t> dl_ev_;  // one per 16-row piece of the logits download

  // Activations and inputs (both paths).
  int32_t* d_in_ = nullptr;  // [4][kUbatch]: tokens, positions, sequences, rows whose logits are wanted
  int32_t* h_in_ = nullptr;  // pinned mirror of d_in_
  float *d_x_ = nullptr, *d_q_ = nullptr, *d_k_ = nullptr, *d_v_ = nullptr, *d_att_ = nullptr;  // [kUbatch][width]
  float *d_g_ = nullptr, *d_sel_ = nullptr, *d_logits_ = nullptr;
  float* h_logits_ = nullptr;  // pinned [kUbatch][n_vocab]
  int32_t* d_top_ = nullptr;   // [kUbatch][Backend::kTopIds] forward_top's ids
  int32_t* h_top_ = nullptr;   // pinned mirror of d_top_
  float* d_attn_scratch_ = nullptr;
  int* d_attn_counters_ = nullptr;  // attn_counter_ints(...), kept at zero by the kernel
  float* d_rope_ = nullptr;         // [n_ctx][n_rot/2][cos, sin] or nullptr (then computed in the kernels)

  // Features (setup_features).
  bool fused_qkv_ = true;            // the fused QKV epilogue (MvMode::QkvRope / rope_kv) computes the layer
  bool post_attn_ = false;           // attn_output goes through residual_post (o bias or post-attention norm)
  bool post_ffn_ = false;            // ffn_down goes through residual_post (post-FFN norm)
  cuda::Act act_ = cuda::Act::SiLU;  // gated activation
  float attn_scale_ = 1.f;
  float embd_scale_ = 1.f;
  float softcap_ = 0.f;
  std::vector<int> window_;                // [n_layer] sliding window (0: none)
  std::vector<float> layer_base_;          // [n_layer] RoPE base
  std::vector<const float*> layer_rope_;   // [n_layer] angle table of the unfused epilogue, or nullptr
  float* d_tmp_ = nullptr;                 // [kUbatch][n_embd]: attn_output / ffn_down before residual_post

  // Prefill path.
  std::vector<LargeLayer> large_;   // [n_layer]
  GemmGroup out_group_;             // output.weight
  bool f16w_ = false;               // resident f16 weight groups
  size_t f16w_bytes_ = 0;
  __half* d_wbuf_ = nullptr;        // f16 dequant scratch of the largest group
  size_t wbuf_elems_ = 0;
  int attn_group_ = kAttnGroup;     // tokens per attention launch
  float* d_qkv_ = nullptr;          // [kUbatch][q_dim + k_dim + v_dim]
  float* d_gu_ = nullptr;           // [kUbatch][2 n_ff]: gate | up
  void* d_h16_ = nullptr;           // f16 [kUbatch][max width]
};

template <class T>
T* CudaBackend::scratch(size_t count) {
  void* p = nullptr;
  const size_t bytes = std::max<size_t>(count * sizeof(T), 256);
  check(cudaMalloc(&p, bytes), "cudaMalloc");
  allocs_.push_back(p);
  scratch_bytes_ += bytes;
  return static_cast<T*>(p);
}

}  // namespace minnow::cuda_impl
