#pragma once
// Host-side entry points of the CUDA kernels, usable from plain C++ (tests, the backend). All pointers named
// d_* are device pointers. Every launcher checks the launch and throws minnow::Error on a CUDA failure.
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "quant/ggml_type.h"

namespace minnow::cuda {

void check(cudaError_t e, const char* what);  // throws Error("cuda: WHAT: <reason>") unless cudaSuccess
#define MINNOW_CUDA_CHECK(call) ::minnow::cuda::check((call), #call)

// ---- Device weight layout ------------------------------------------------------------------------------
// On the GPU every format keeps ggml's block layout, but some blocks are padded so that each block starts on
// a 4- or 16-byte boundary (Q4_0 18->20, Q5_0 22->24, Q8_0 34->36, Q3_K 110->112, Q6_K 210->224 bytes).
// F32/F16/BF16 are handled as blocks of 8 elements.
bool dev_type_supported(GgmlType t);
int dev_block_elems(GgmlType t);
size_t dev_block_bytes(GgmlType t);
size_t dev_row_bytes(GgmlType t, int64_t n);  // n must be a multiple of dev_block_elems(t)
// Repacks n_rows rows of n elements from ggml's layout (src) into the device layout (dst, host memory,
// n_rows * dev_row_bytes(t, n) bytes).
void repack_rows(GgmlType t, const void* src, int64_t n, int64_t n_rows, void* dst);

// ---- Quantized matrix-vector products (decode path) ----------------------------------------------------
// y[b][o] = inv_rms(x[b]) * sum_i W[o][i] * norm[i] * x[b][i]   (norm == nullptr: no RMSNorm, inv_rms = 1)
// Up to 3 matrices sharing the input (e.g. Q, K, V); each output row is computed by one warp in a fixed order
// that depends only on n_in, so row b's result never depends on nb (batch invariance).
// When every matrix of the call is Q4_K or Q6_K, the normalised activations are rounded to int8 per block of
// 32 (scale amax/127, round to nearest even; as llama.cpp's q8_1) and the dot products use dp4a; otherwise
// they stay f32.
// Gated activations: silu(x) = x / (1 + e^-x); gelu_tanh(x) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
enum class Act : int { SiLU = 0, GeluTanh = 1 };
enum class MvMode : int {
  Store = 0,   // y = W x
  Add = 1,     // y += W x (residual)
  SwiGLU = 2,  // m[0] = gate, m[1] = up: m[0].y = act(gate x) * (up x) (MatvecArgs::act, SiLU by default)
  QkvRope = 3, // m[0] = Q, m[1] = K, m[2] = V: RoPE on Q (stored f32 in m[0].y) and K; K and V written as f16
               // into the caches at [seq][pos] (row stride m[1].n_out); needs even n_out
};
struct MvMat {
  const void* d_w = nullptr;  // [n_out][dev_row_bytes(type, n_in)]
  GgmlType type = GgmlType::F32;
  int n_out = 0;
  float* d_y = nullptr;  // [nb][ldy]
  int ldy = 0;
};
struct MatvecArgs {
  MvMat m[3];
  int n_mats = 1;
  int n_in = 0;
  const float* d_x = nullptr;  // [nb][ldx]
  int ldx = 0;
  int nb = 1;                     // tokens (any count; processed 8 per block row)
  const float* d_norm = nullptr;  // [n_in] RMSNorm weight or nullptr
  float eps = 1e-5f;
  MvMode mode = MvMode::Store;
  Act act = Act::SiLU;  // SwiGLU only: the gate's activation
  // QkvRope only (see RopeKvArgs for the meaning):
  const int32_t* d_pos = nullptr;  // [nb]
  const int32_t* d_seq = nullptr;  // [nb]
  int head_dim = 0, n_rot = 0;
  float freq_base = 10000.f, freq_scale = 1.f;
  void* d_kcache = nullptr;  // f16 [n_seq][n_ctx][m[1].n_out]
  void* d_vcache = nullptr;
  int n_ctx = 0;
  const float* d_rope = nullptr;  // optional [n_ctx][n_rot/2][2] = cos, sin of each angle (rope_table)
  // Optional timeline [3] (MINNOW_CUDA_TRACE=1): ~earliest block start, ~earliest block past the wait, latest
  // block end (%globaltimer ns; written with atomicMax onto zeros, so the first two are stored complemented).
  unsigned long long* d_trace = nullptr;
};
// cos and sin of pos * freq_scale * base^(-2i/n_rot) / factors[i] for pos < n_ctx, 2i < n_rot, computed in
// double (factors: [n_rot/2] per-dimension frequency factors, or nullptr for none).
void rope_table(int n_ctx, int n_rot, double freq_base, double freq_scale, float* out /* host */,
                const float* factors = nullptr /* host */);
// Launched with programmatic dependent launch: the block's weight rows are copied to shared memory
// (cp.async) before waiting for the previous kernel, so weight fetch overlaps the previous kernel's tail.
void matvec(const MatvecArgs& a, cudaStream_t s);

// ---- Dequantization ------------------------------------------------------------------------------------
// out[r][:] = decode(table row ids[r]) for r < n (f32); ids is a device array.
void get_rows(GgmlType t, const void* d_table, int n_cols, const int32_t* d_ids, int n, float* d_out,
              cudaStream_t s);
// out (f16, [n_rows][n_in]) = decode(W)
void dequant_f16(GgmlType t, const void* d_w, int64_t n_in, int64_t n_rows, void* d_out_f16, cudaStream_t s);

// ---- Element-wise / row ops ----------------------------------------------------------------------------
// out[r][0..k) = the k (<= 16) largest ids of logits row r, highest first, lower id first on ties, NaN never
// listed, -1 past the last listed (Backend::forward_top's order; the host version is minnow::top_ids).
void top_ids_rows(const float* d_logits, int n_rows, int n_vocab, int k, int32_t* d_out, cudaStream_t s);
// out_f16[r][:] = x[r][:] * rsqrt(mean(x^2) + eps) * w[:]  (w may be nullptr: no weight)
void rmsnorm_f16(const float* d_x, int ldx, const float* d_w, int n, int rows, float eps, void* d_out_f16,
                 cudaStream_t s);
void f32_to_f16(const float* d_x, int64_t n, void* d_out_f16, cudaStream_t s);
// out_f16[i] = silu(g[i]) * u[i]
void swiglu_f16(const float* d_g, const float* d_u, int64_t n, void* d_out_f16, cudaStream_t s);
// out_f16[r][i] = silu(gu[r][i]) * gu[r][n_ff + i] for i < n_ff (gate and up side by side in one row of stride
// ld >= 2 * n_ff, as one GEMM over the stacked gate and up matrices writes them); out is [rows][n_ff]
void swiglu_f16_ld(const float* d_gu, int ld, int n_ff, int rows, void* d_out_f16, cudaStream_t s);
// dst[r][:] = src[idx[r]][:]
void gather_rows(const float* d_src, int n_cols, const int32_t* d_idx, int n, float* d_dst, cudaStream_t s);

// RoPE (llama.cpp "normal" mode: adjacent pairs (2i, 2i+1) rotated by pos * freq_scale * base^(-2i/n_rot),
// for 2i < n_rot) on q (in place) and k, then k and v (f16) are written into the cache at [seq][pos].
// Cache layout: [n_seq][n_ctx][n_head_kv][head_dim] f16.
struct RopeKvArgs {
  float* d_q = nullptr;        // [n][ldq], n_head * head_dim used
  const float* d_k = nullptr;  // [n][ldk], n_head_kv * head_dim used
  const float* d_v = nullptr;  // [n][ldv]
  int ldq = 0, ldk = 0, ldv = 0;
  const int32_t* d_pos = nullptr;  // [n]
  const int32_t* d_seq = nullptr;  // [n]
  int n = 0;
  int n_head = 0, n_head_kv = 0, head_dim = 0, n_rot = 0;
  float freq_base = 10000.f, freq_scale = 1.f;
  void* d_kcache = nullptr;  // f16 [n_seq][n_ctx][n_head_kv][head_dim]
  void* d_vcache = nullptr;
  int n_ctx = 0;
  const float* d_rope = nullptr;  // optional [n_ctx][n_rot/2][2] = cos, sin (rope_table); nullptr: computed
};
void rope_kv(const RopeKvArgs& a, cudaStream_t s);

// ---- Attention over the cache (split-K / flash-decoding) -----------------------------------------------
// out[t][h*D + d] = softmax_p(q_t,h . K[seq_t][p][h / gqa] * scale, p <= pos_t) . V[...]
// Positions are cut into chunks of attn_chunk(head_dim) positions; each (token, kv head, chunk) is one block
// that handles the query heads of its group; the last block of a (token, kv head) to finish merges the chunks
// in a fixed order (one launch). Grid sizes depend only on n and
// n_ctx (never on positions), so the launch can be captured in a graph.
int attn_chunk(int head_dim);
size_t attn_scratch_floats(int n, int n_head, int head_dim, int n_ctx);
size_t attn_counter_ints(int n, int n_head, int n_head_kv);
struct AttnArgs {
  const float* d_q = nullptr;  // [n][ldq]
  int ldq = 0;
  const void* d_kcache = nullptr;  // f16 [n_seq][n_ctx][n_head_kv][head_dim]
  const void* d_vcache = nullptr;
  const int32_t* d_pos = nullptr;
  const int32_t* d_seq = nullptr;
  int n = 0;
  int n_pass = 0;  // tokens whose K/V the current forward pass writes (0: n); earlier positions are read early
  int n_head = 0, n_head_kv = 0, head_dim = 0, n_ctx = 0;
  float scale = 1.f;
  float* d_scratch = nullptr;  // attn_scratch_floats(...)
  int* d_counters = nullptr;   // attn_counter_ints(...), zero before the first launch (kernels leave it zero)
  float* d_out = nullptr;      // [n][ldo]
  int ldo = 0;
  unsigned long long* d_trace = nullptr;  // optional timeline [3], as MatvecArgs::d_trace
  int window = 0;  // sliding window: > 0: a token at pos attends only to p' with pos - p' < window
};
bool attn_head_dim_supported(int head_dim);
void attention(const AttnArgs& a, cudaStream_t s);

// ---- Kernels of the layer features (model/layer_spec.h) beyond llama's ------------------------------------
// The QKV epilogue when a feature rules out the fused mat-vec epilogue, per token (one block each, so a token's
// result never depends on the batch): q += bq, k += bk, v += bv (biases, when given); q and k per head RMS-
// normalised over head_dim and multiplied by q_norm / k_norm (when given); RoPE on the first n_rot dims of each
// q and k head, adjacent pairs (2i, 2i+1) or NeoX halves (i, i + n_rot/2), angle pos * freq_scale *
// base^(-2i/n_rot) / factors[i]; q written back in place (f32), k and v as f16 into the cache at [seq][pos].
struct QkvPostArgs {
  float* d_q = nullptr;        // [n][ldq], n_head * head_dim used
  const float* d_k = nullptr;  // [n][ldk], n_head_kv * head_dim used
  const float* d_v = nullptr;  // [n][ldv]
  int ldq = 0, ldk = 0, ldv = 0;
  const int32_t* d_pos = nullptr;  // [n]
  const int32_t* d_seq = nullptr;  // [n]
  int n = 0;
  int n_head = 0, n_head_kv = 0, head_dim = 0, n_rot = 0;
  const float* d_bq = nullptr;  // [n_head * head_dim] or nullptr (likewise bk, bv: [n_head_kv * head_dim])
  const float* d_bk = nullptr;
  const float* d_bv = nullptr;
  const float* d_q_norm = nullptr;  // [head_dim] or nullptr (likewise k_norm)
  const float* d_k_norm = nullptr;
  float eps = 1e-6f;
  bool neox = false;
  const float* d_rope = nullptr;  // [n_ctx][n_rot/2][2] cos, sin (rope_table with the factors), or nullptr:
  float freq_base = 10000.f, freq_scale = 1.f;  // then the angles are computed in double from these
  const float* d_factors = nullptr;             // [n_rot/2] or nullptr
  void* d_kcache = nullptr;  // f16 [n_seq][n_ctx][n_head_kv][head_dim]
  void* d_vcache = nullptr;
  int n_ctx = 0;
};
void qkv_post(const QkvPostArgs& a, cudaStream_t s);
// x[r][i] += post(y[r][i] + bias[i]) for r < rows, i < n; post(v) = v * rsqrt(mean(v^2) + eps) * w[i] when w is
// given (a post-attention / post-FFN norm), else v. bias may be nullptr. One block per row (fixed order).
void residual_post(float* d_x, int ldx, const float* d_y, int ldy, const float* d_bias, const float* d_w, int n,
                   int rows, float eps, cudaStream_t s);
// out_f16[r][i] = act(gu[r][i]) * gu[r][n_ff + i] (as swiglu_f16_ld, any act)
void glu_f16_ld(const float* d_gu, int ld, int n_ff, int rows, void* d_out_f16, Act act, cudaStream_t s);
// x[i] *= scale (embedding scale)
void scale(float* d_x, int64_t n, float scale, cudaStream_t s);
// x[i] = cap * tanh(x[i] / cap) (final logit soft-cap)
void softcap(float* d_x, int64_t n, float cap, cudaStream_t s);

}  // namespace minnow::cuda
