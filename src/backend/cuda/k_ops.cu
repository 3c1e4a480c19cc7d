// Row and element-wise kernels: RMSNorm to f16, f32->f16, SwiGLU, row gather, RoPE + KV-cache write.
#include <cuda_fp16.h>

#include "backend/cuda/cuda_kernels.h"
#include "common/error.h"

namespace minnow::cuda {
namespace {

__global__ void k_rmsnorm_f16(const float* __restrict__ x, int ldx, const float* __restrict__ w, int n, float eps,
                              __half* __restrict__ out) {
  __shared__ float s_part[32];
  const int r = blockIdx.x;
  const float* xr = x + size_t(r) * ldx;
  float s = 0.f;
  for (int i = threadIdx.x; i < n; i += blockDim.x) s = fmaf(xr[i], xr[i], s);
  for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
  if ((threadIdx.x & 31) == 0) s_part[threadIdx.x >> 5] = s;
  __syncthreads();
  if (threadIdx.x == 0) {
    float t = 0.f;
    for (int i = 0; i < int(blockDim.x >> 5); ++i) t += s_part[i];
    s_part[0] = rsqrtf(t / float(n) + eps);
  }
  __syncthreads();
  const float inv = s_part[0];
  for (int i = threadIdx.x; i < n; i += blockDim.x)
    out[size_t(r) * n + i] = __float2half_rn(xr[i] * inv * (w ? w[i] : 1.f));
}

__global__ void k_f32_to_f16(const float* __restrict__ x, int64_t n, __half* __restrict__ o) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) o[i] = __float2half_rn(x[i]);
}

__global__ void k_f32_to_f16_x4(const float4* __restrict__ x, int64_t n4, __half* __restrict__ o) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n4) return;
  const float4 v = x[i];
  __align__(8) __half2 h[2] = {__floats2half2_rn(v.x, v.y), __floats2half2_rn(v.z, v.w)};
  *reinterpret_cast<uint2*>(o + 4 * i) = *reinterpret_cast<const uint2*>(h);
}

__global__ void k_swiglu_f16(const float* __restrict__ g, const float* __restrict__ u, int64_t n,
                             __half* __restrict__ o) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) {
    const float v = g[i];
    o[i] = __float2half_rn(v / (1.f + __expf(-v)) * u[i]);
  }
}

// gu: [rows][ld], gate in columns [0, n_ff), up in [n_ff, 2 n_ff); out: [rows][n_ff]
__global__ void k_swiglu_f16_ld(const float* __restrict__ gu, int ld, int n_ff, int64_t n, __half* __restrict__ o) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const int64_t r = i / n_ff;
  const int c = int(i - r * n_ff);
  const float* row = gu + r * ld;
  const float v = row[c];
  o[i] = __float2half_rn(v / (1.f + __expf(-v)) * row[n_ff + c]);
}

__global__ void k_gather(const float* __restrict__ src, int n_cols, const int32_t* __restrict__ idx,
                         float* __restrict__ dst) {
  const int r = blockIdx.y;
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c < n_cols) dst[size_t(r) * n_cols + c] = src[size_t(idx[r]) * n_cols + c];
}

__device__ __forceinline__ void rope_pair(float& a, float& b, int pos, int i, int n_rot, float base, float fscale,
                                          const float* __restrict__ table) {
  float c, s;
  if (table) {  // rope_table: the same double-precision angles, rounded to float once on the host
    c = table[(size_t(pos) * (n_rot / 2) + i) * 2];
    s = table[(size_t(pos) * (n_rot / 2) + i) * 2 + 1];
  } else {
    const double theta = double(pos) * double(fscale) * pow(double(base), -2.0 * double(i) / double(n_rot));
    double sn, cs;
    sincos(theta, &sn, &cs);
    c = float(cs);
    s = float(sn);
  }
  const float x0 = a, x1 = b;
  a = x0 * c - x1 * s;
  b = x0 * s + x1 * c;
}

__global__ void k_rope_kv(RopeKvArgs a) {
  const int t = blockIdx.x;
  const int pos = a.d_pos[t], seq = a.d_seq[t];
  const int D = a.head_dim, half_d = D / 2;
  float* q = a.d_q + size_t(t) * a.ldq;
  const float* k = a.d_k + size_t(t) * a.ldk;
  const float* v = a.d_v + size_t(t) * a.ldv;
  const size_t cache_row = (size_t(seq) * a.n_ctx + pos) * size_t(a.n_head_kv) * D;
  __half* kc = static_cast<__half*>(a.d_kcache) + cache_row;
  __half* vc = static_cast<__half*>(a.d_vcache) + cache_row;
  for (int p = threadIdx.x; p < a.n_head * half_d; p += blockDim.x) {
    const int h = p / half_d, i = p % half_d;
    if (2 * i < a.n_rot)
      rope_pair(q[h * D + 2 * i], q[h * D + 2 * i + 1], pos, i, a.n_rot, a.freq_base, a.freq_scale, a.d_rope);
  }
  for (int p = threadIdx.x; p < a.n_head_kv * half_d; p += blockDim.x) {
    const int h = p / half_d, i = p % half_d;
    float k0 = k[h * D + 2 * i], k1 = k[h * D + 2 * i + 1];
    if (2 * i < a.n_rot) rope_pair(k0, k1, pos, i, a.n_rot, a.freq_base, a.freq_scale, a.d_rope);
    kc[h * D + 2 * i] = __float2half_rn(k0);
    kc[h * D + 2 * i + 1] = __float2half_rn(k1);
  }
  for (int p = threadIdx.x; p < a.n_head_kv * D; p += blockDim.x) vc[p] = __float2half_rn(v[p]);
}

unsigned blocks_for(int64_t n, int threads) { return unsigned((n + threads - 1) / threads); }

// a before b: higher value, then lower id; an id < 0 (none) is after everything.
__device__ __forceinline__ bool top_before(float va, int ia, float vb, int ib) {
  return ia >= 0 && (ib < 0 || va > vb || (va == vb && ia < ib));
}
// The first of the warp's (v, i) pairs in that order, in every lane.
__device__ __forceinline__ void top_warp(float& v, int& i) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, v, o);
    const int oi = __shfl_xor_sync(0xffffffffu, i, o);
    if (top_before(ov, oi, v, i)) {
      v = ov;
      i = oi;
    }
  }
}
// One block per row, k rounds: round j finds the best element strictly after round j - 1's pick in the
// (value desc, id asc) order, by a strided scan and a fixed-shape reduction (the result is the same whatever
// the order of the scan).
__global__ void k_top_ids(const float* __restrict__ logits, int n_vocab, int k, int32_t* __restrict__ out) {
  const float* row = logits + size_t(blockIdx.x) * n_vocab;
  __shared__ float s_v[32];
  __shared__ int s_i[32];
  __shared__ float s_pv;
  __shared__ int s_pi;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  float pv = INFINITY;
  int pi = -1;
  for (int j = 0; j < k; ++j) {
    float bv = 0.f;
    int bi = -1;
    for (int i = threadIdx.x; i < n_vocab; i += blockDim.x) {
      const float v = row[i];
      const bool after = v < pv || (v == pv && i > pi);  // NaN: never
      if (after && top_before(v, i, bv, bi)) {
        bv = v;
        bi = i;
      }
    }
    top_warp(bv, bi);
    if (lane == 0) {
      s_v[warp] = bv;
      s_i[warp] = bi;
    }
    __syncthreads();
    if (warp == 0) {
      bv = lane < nw ? s_v[lane] : 0.f;
      bi = lane < nw ? s_i[lane] : -1;
      top_warp(bv, bi);
      if (lane == 0) {
        out[size_t(blockIdx.x) * k + j] = bi;
        s_pv = bi >= 0 ? bv : -INFINITY;
        s_pi = bi >= 0 ? bi : n_vocab;  // none left: nothing is after (-inf, n_vocab)
      }
    }
    __syncthreads();
    pv = s_pv;
    pi = s_pi;
    __syncthreads();  // s_v, s_pv reused by the next round
  }
}

}  // namespace

void top_ids_rows(const float* d_logits, int n_rows, int n_vocab, int k, int32_t* d_out, cudaStream_t s) {
  if (n_rows <= 0) return;
  if (k < 1 || k > 16) throw Error("cuda: top ids: k must be 1..16");
  k_top_ids<<<unsigned(n_rows), 256, 0, s>>>(d_logits, n_vocab, k, d_out);
  check(cudaGetLastError(), "top_ids launch");
}

void rmsnorm_f16(const float* d_x, int ldx, const float* d_w, int n, int rows, float eps, void* d_out_f16,
                 cudaStream_t s) {
  if (rows <= 0) return;
  k_rmsnorm_f16<<<rows, 256, 0, s>>>(d_x, ldx, d_w, n, eps, static_cast<__half*>(d_out_f16));
  check(cudaGetLastError(), "rmsnorm_f16 launch");
}

void f32_to_f16(const float* d_x, int64_t n, void* d_out_f16, cudaStream_t s) {
  if (n <= 0) return;
  if (n % 4 == 0 && reinterpret_cast<uintptr_t>(d_x) % 16 == 0 && reinterpret_cast<uintptr_t>(d_out_f16) % 8 == 0) {
    k_f32_to_f16_x4<<<blocks_for(n / 4, 256), 256, 0, s>>>(reinterpret_cast<const float4*>(d_x), n / 4,
                                                           static_cast<__half*>(d_out_f16));
    check(cudaGetLastError(), "f32_to_f16 launch");
    return;
  }
  k_f32_to_f16<<<blocks_for(n, 256), 256, 0, s>>>(d_x, n, static_cast<__half*>(d_out_f16));
  check(cudaGetLastError(), "f32_to_f16 launch");
}

void swiglu_f16(const float* d_g, const float* d_u, int64_t n, void* d_out_f16, cudaStream_t s) {
  if (n <= 0) return;
  k_swiglu_f16<<<blocks_for(n, 256), 256, 0, s>>>(d_g, d_u, n, static_cast<__half*>(d_out_f16));
  check(cudaGetLastError(), "swiglu_f16 launch");
}

void swiglu_f16_ld(const float* d_gu, int ld, int n_ff, int rows, void* d_out_f16, cudaStream_t s) {
  if (rows <= 0 || n_ff <= 0) return;
  if (ld < 2 * n_ff) throw Error("cuda: swiglu_f16_ld: row stride below 2 * n_ff");
  const int64_t n = int64_t(rows) * n_ff;
  k_swiglu_f16_ld<<<blocks_for(n, 256), 256, 0, s>>>(d_gu, ld, n_ff, n, static_cast<__half*>(d_out_f16));
  check(cudaGetLastError(), "swiglu_f16_ld launch");
}

void gather_rows(const float* d_src, int n_cols, const int32_t* d_idx, int n, float* d_dst, cudaStream_t s) {
  if (n <= 0) return;
  k_gather<<<dim3(blocks_for(n_cols, 256), unsigned(n)), 256, 0, s>>>(d_src, n_cols, d_idx, d_dst);
  check(cudaGetLastError(), "gather_rows launch");
}

void rope_kv(const RopeKvArgs& a, cudaStream_t s) {
  if (a.n <= 0) return;
  if (a.head_dim % 2 != 0 || a.n_rot > a.head_dim) throw Error("cuda: rope: bad head dimension");
  k_rope_kv<<<a.n, 128, 0, s>>>(a);
  check(cudaGetLastError(), "rope_kv launch");
}

}  // namespace minnow::cuda
