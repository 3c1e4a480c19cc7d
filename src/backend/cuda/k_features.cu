// Kernels of the layer features beyond llama's (model/layer_spec.h): the unfused QKV epilogue (biases, per-head
// Q/K RMSNorm, adjacent or NeoX RoPE on n_rot dims with frequency factors, KV-cache write), the residual add with
// an output bias and a post-norm, gated activations (SiLU, GELU-tanh) of the prefill path, the embedding scale and the logit
// soft-cap. Every kernel computes a token from that token's data only, in a fixed order (batch invariance).
#include <cuda_fp16.h>

#include <string>

#include "backend/cuda/cuda_kernels.h"
#include "common/error.h"

namespace minnow::cuda {
namespace {

constexpr int kPostWarps = 4;
constexpr int kMaxHeadDim = 256;

// One block per token, kPostWarps warps; warp w handles heads w, w + kPostWarps, ... of q then k (head index
// h < n_head: q head h; else k head h - n_head), then every thread the v row.
__global__ void __launch_bounds__(kPostWarps * 32) k_qkv_post(QkvPostArgs a) {
  __shared__ float buf[kPostWarps][kMaxHeadDim];
  const int t = blockIdx.x;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int D = a.head_dim, half = a.n_rot / 2;
  const int pos = a.d_pos[t], seq = a.d_seq[t];
  const size_t kv_row = (size_t(seq) * a.n_ctx + pos) * size_t(a.n_head_kv) * D;
  __half* kc = static_cast<__half*>(a.d_kcache) + kv_row;
  __half* vc = static_cast<__half*>(a.d_vcache) + kv_row;
  float* sb = buf[warp];
  for (int h = warp; h < a.n_head + a.n_head_kv; h += kPostWarps) {
    const bool is_q = h < a.n_head;
    const int hh = is_q ? h : h - a.n_head;
    const float* src = is_q ? a.d_q + size_t(t) * a.ldq + size_t(hh) * D : a.d_k + size_t(t) * a.ldk + size_t(hh) * D;
    const float* bias = is_q ? a.d_bq : a.d_bk;
    const float* w = is_q ? a.d_q_norm : a.d_k_norm;
    float ss = 0.f;
    for (int d = lane; d < D; d += 32) {
      float x = src[d];
      if (bias) x += bias[size_t(hh) * D + d];
      sb[d] = x;
      ss = fmaf(x, x, ss);
    }
    if (w) {
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
      const float inv = rsqrtf(ss / float(D) + a.eps);
      for (int d = lane; d < D; d += 32) sb[d] = (sb[d] * inv) * w[d];
    }
    __syncwarp();
    for (int d = lane; d < D; d += 32) {
      float out = sb[d];
      if (d < a.n_rot) {
        int i, i0, i1;
        if (a.neox) {
          i = d < half ? d : d - half;
          i0 = i;
          i1 = i + half;
        } else {
          i = d >> 1;
          i0 = 2 * i;
          i1 = 2 * i + 1;
        }
        float c, s;
        if (a.d_rope) {
          c = a.d_rope[(size_t(pos) * half + i) * 2];
          s = a.d_rope[(size_t(pos) * half + i) * 2 + 1];
        } else {
          double theta = double(pos) * double(a.freq_scale) * pow(double(a.freq_base), -2.0 * double(i) / double(a.n_rot));
          if (a.d_factors) theta /= double(a.d_factors[i]);
          double sn, cs;
          sincos(theta, &sn, &cs);
          c = float(cs);
          s = float(sn);
        }
        const float x0 = sb[i0], x1 = sb[i1];
        out = d == i0 ? x0 * c - x1 * s : x0 * s + x1 * c;
      }
      if (is_q) a.d_q[size_t(t) * a.ldq + size_t(hh) * D + d] = out;
      else kc[size_t(hh) * D + d] = __float2half_rn(out);
    }
    __syncwarp();  // sb is reused by this warp's next head
  }
  const float* v = a.d_v + size_t(t) * a.ldv;
  for (int i = threadIdx.x; i < a.n_head_kv * D; i += blockDim.x)
    vc[i] = __float2half_rn(a.d_bv ? v[i] + a.d_bv[i] : v[i]);
}

__global__ void k_residual_post(float* __restrict__ x, int ldx, const float* __restrict__ y, int ldy,
                                const float* __restrict__ bias, const float* __restrict__ w, int n, float eps) {
  __shared__ float s_part[32];
  const int r = blockIdx.x;
  const float* yr = y + size_t(r) * ldy;
  float* xr = x + size_t(r) * ldx;
  float inv = 1.f;
  if (w) {
    float s = 0.f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
      const float v = bias ? yr[i] + bias[i] : yr[i];
      s = fmaf(v, v, s);
    }
    for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    if ((threadIdx.x & 31) == 0) s_part[threadIdx.x >> 5] = s;
    __syncthreads();
    if (threadIdx.x == 0) {
      float t = 0.f;
      for (int i = 0; i < int(blockDim.x >> 5); ++i) t += s_part[i];
      s_part[0] = rsqrtf(t / float(n) + eps);
    }
    __syncthreads();
    inv = s_part[0];
  }
  for (int i = threadIdx.x; i < n; i += blockDim.x) {
    const float v = bias ? yr[i] + bias[i] : yr[i];
    xr[i] += w ? (v * inv) * w[i] : v;
  }
}

__device__ __forceinline__ float act_fn(float v, int act) {
  if (act == int(Act::GeluTanh)) {
    // tanh in double: with --use_fast_math tanhf becomes tanh.approx.f32 (~5e-4 relative error). (The same
    // function as matvec_body.cuh's mv_gelu_tanh.)
    const float k = 0.7978845608028654f;  // sqrt(2 / pi)
    return 0.5f * v * (1.f + float(tanh(double(k * (v + 0.044715f * v * v * v)))));
  }
  return v / (1.f + __expf(-v));
}

__global__ void k_glu_f16_ld(const float* __restrict__ gu, int ld, int n_ff, int64_t n, __half* __restrict__ o,
                             int act) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const int64_t r = i / n_ff;
  const int c = int(i - r * n_ff);
  const float* row = gu + r * ld;
  o[i] = __float2half_rn(act_fn(row[c], act) * row[n_ff + c]);
}

__global__ void k_scale(float* __restrict__ x, int64_t n, float s) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) x[i] *= s;
}

__global__ void k_softcap(float* __restrict__ x, int64_t n, float cap) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) x[i] = float(double(cap) * tanh(double(x[i]) / double(cap)));  // double: see act_fn
}

unsigned blocks(int64_t n) { return unsigned((n + 255) / 256); }

}  // namespace

void qkv_post(const QkvPostArgs& a, cudaStream_t s) {
  if (a.n <= 0) return;
  if (a.head_dim <= 0 || a.head_dim > kMaxHeadDim || a.n_rot < 0 || a.n_rot > a.head_dim || a.n_rot % 2 != 0 ||
      a.n_head_kv <= 0)
    throw Error("cuda: qkv_post: bad head dimension or rope dimension");
  k_qkv_post<<<unsigned(a.n), kPostWarps * 32, 0, s>>>(a);
  check(cudaGetLastError(), "qkv_post launch");
}

void residual_post(float* d_x, int ldx, const float* d_y, int ldy, const float* d_bias, const float* d_w, int n,
                   int rows, float eps, cudaStream_t s) {
  if (rows <= 0 || n <= 0) return;
  k_residual_post<<<unsigned(rows), 256, 0, s>>>(d_x, ldx, d_y, ldy, d_bias, d_w, n, eps);
  check(cudaGetLastError(), "residual_post launch");
}

void glu_f16_ld(const float* d_gu, int ld, int n_ff, int rows, void* d_out_f16, Act act, cudaStream_t s) {
  if (rows <= 0 || n_ff <= 0) return;
  if (ld < 2 * n_ff) throw Error("cuda: glu_f16_ld: row stride below 2 * n_ff");
  const int64_t n = int64_t(rows) * n_ff;
  k_glu_f16_ld<<<blocks(n), 256, 0, s>>>(d_gu, ld, n_ff, n, static_cast<__half*>(d_out_f16), int(act));
  check(cudaGetLastError(), "glu_f16_ld launch");
}

void scale(float* d_x, int64_t n, float sc, cudaStream_t s) {
  if (n <= 0) return;
  k_scale<<<blocks(n), 256, 0, s>>>(d_x, n, sc);
  check(cudaGetLastError(), "scale launch");
}

void softcap(float* d_x, int64_t n, float cap, cudaStream_t s) {
  if (n <= 0) return;
  if (!(cap > 0.f)) throw Error("cuda: softcap: the cap must be positive");
  k_softcap<<<blocks(n), 256, 0, s>>>(d_x, n, cap);
  check(cudaGetLastError(), "softcap launch");
}

}  // namespace minnow::cuda
