#pragma once
// The mat-vec's device code (used by the mat-vec kernel, k_matvec.cu): argument block, weight copies,
// activation staging and one block's work (mv_block); the
// weight-row dot products are in mv_dots.cuh. The arithmetic of a row never depends on the block shape, on rows
// per warp, or on how many tokens share the launch.
#include <cuda_fp16.h>

#include <cstdint>
#include <cstdlib>
#include <string>

#include "backend/cuda/cuda_kernels.h"
#include "backend/cuda/mv_dots.cuh"
#include "backend/cuda/quant_dev.cuh"
#include "common/error.h"

namespace minnow::cuda {
namespace {

constexpr int kMaxWarps = 16;         // warps per block (the per-op launcher uses kWarps, see k_matvec.cu)
constexpr int kMaxStage = 96 * 1024;  // bytes of staged activations per block
constexpr int kMaxSmem = 200 * 1024;  // dynamic shared memory per block
constexpr int kMaxQkvRows = 64;       // rows per block (R * rw) in QkvRope mode

struct KMat {
  const uint8_t* w;  // [n_out][row_bytes]
  int type;
  int n_out;
  float* y;  // [nb][ldy]
  int ldy;
  int row_bytes;
};
struct KArgs {
  KMat m[3];
  int n_mats;
  int total_rows;
  int n_in;
  const float* x;  // [nb][ldx]
  int ldx;
  int nb;
  const float* norm;  // [n_in] or nullptr
  float eps;
  int mode;
  int act;  // SwiGLU: 0 SiLU, 1 GELU-tanh (Act)
  int xreg;        // int8 path: keep each warp's first x items in registers between the statistics and the
                   // quantisation
  int rw;          // rows per warp (block rows = R * rw)
  int slot_bytes;  // shared-memory bytes per weight row
  int xs_stride;   // floats per staged token row
  const int32_t* pos;
  const int32_t* seq;
  int head_dim, n_rot;
  float freq_base, freq_scale;
  __half* kc;
  __half* vc;
  int n_ctx;
  const float* rope;     // [n_ctx][n_rot/2][2] or nullptr
  unsigned long long* trace;  // optional timeline [3] (MatvecArgs::d_trace)
};


__device__ __forceinline__ void cp4(void* dst, const void* src) {
  const unsigned s = unsigned(__cvta_generic_to_shared(dst));
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4;" ::"r"(s), "l"(src) : "memory");
}
__device__ __forceinline__ void locate(const KArgs& a, int row, int& mi, int& r) {
  mi = 0;
  r = row;
  if (a.mode == 2) return;
  while (mi + 1 < a.n_mats && r >= a.m[mi].n_out) {
    r -= a.m[mi].n_out;
    ++mi;
  }
}

// GELU with the tanh approximation; tanh in double (--use_fast_math would make tanhf tanh.approx.f32). The same
// function as k_features.cu's, so the decode and prefill paths agree.
__device__ __forceinline__ float mv_gelu_tanh(float v) {
  const float k = 0.7978845608028654f;  // sqrt(2 / pi)
  return 0.5f * v * (1.f + float(tanh(double(k * (v + 0.044715f * v * v * v)))));
}

__device__ __forceinline__ void rope2(float& a, float& b, int pos, int i, int n_rot, float base,
                                      float fscale) {
  const double theta = double(pos) * double(fscale) * pow(double(base), -2.0 * double(i) / double(n_rot));
  double sn, cs;
  sincos(theta, &sn, &cs);
  const float c = float(cs), s = float(sn);
  const float x0 = a, x1 = b;
  a = x0 * c - x1 * s;
  b = x0 * s + x1 * c;
}

// One block of the mat-vec: block column bx (rows [bx * R * rw, ...)), token group by (tokens [by * NB,
// ...)). `wait` is called once, after the weight copies are issued and before anything a predecessor writes
// is read (the kernel passes the PDL wait). The caller synchronises the block before reusing shared memory.

// Step 1 of a block: its weight rows -> shared memory at wsm (slot s at wsm + s * slot_bytes).
// The q-th weight row a warp copies (q < rw: its rows of the block; SwiGLU: q >= rw, the same rows of the up
// matrix): false past the last row, else its shared-memory slot, matrix and row within that matrix.
__device__ __forceinline__ bool mv_warp_row(const KArgs& a, int bx, int RB, int warp, int q, int& slot,
                                            const KMat*& m, int& r) {
  const int k = q % a.rw;
  const int row = bx * RB + warp * a.rw + k;
  if (row >= a.total_rows) return false;
  int mi;
  locate(a, row, mi, r);
  if (a.mode == 2) mi = q < a.rw ? 0 : 1;
  slot = (q < a.rw ? 0 : RB) + warp * a.rw + k;
  m = &a.m[mi];
  return true;
}

__device__ __forceinline__ void mv_issue(const KArgs& a, const int bx, uint8_t* wsm) {
  const int R = int(blockDim.x >> 5);
  const int RB = R * a.rw;
  const int warp = int(threadIdx.x >> 5), lane = int(threadIdx.x & 31);
  // 1. Weight rows -> shared memory (independent of the previous kernel). Each warp copies its own rows with
  //    16- or 4-byte cp.async copies (completion per thread; __syncwarp publishes), so it can start on them
  //    as soon as they arrive.
  const int n_mine = a.mode == 2 ? 2 * a.rw : a.rw;
  for (int q = 0; q < n_mine; ++q) {
    int s, r;
    const KMat* mp;
    if (!mv_warp_row(a, bx, RB, warp, q, s, mp, r)) continue;
    const KMat& m = *mp;
    const uint8_t* src = m.w + size_t(r) * m.row_bytes;
    uint8_t* dst = wsm + s * a.slot_bytes;
    if ((m.row_bytes & 15) == 0) {
      for (int c = lane; c < (m.row_bytes >> 4); c += 32) cp16(dst + c * 16, src + c * 16);
    } else {
      for (int c = lane; c < (m.row_bytes >> 2); c += 32) cp4(dst + c * 4, src + c * 4);
    }
  }
  cp_commit();
}

template <int NB, int XM, class Wait>  // XM: 0 f32 staged, 1 f32 from global, 2 int8 staged (Q4_K/Q6_K only)
__device__ __forceinline__ void mv_block_ex(const KArgs& a, const int bx, const int by, uint8_t* wsm,
                                            uint8_t* xsm, Wait&& wait) {
  constexpr bool STAGED = XM == 0;
  __shared__ float s_inv[NB];
  __shared__ float s_res[kMaxQkvRows][NB];  // QkvRope: row results of the block, exchanged for pairs
  const int R = int(blockDim.x >> 5);
  const int RB = R * a.rw;  // rows per block
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;

  trace_first(a.trace);
  mv_issue(a, bx, wsm);
  // RoPE inputs (positions come from the host, written before the graph starts): lane b, token b.
  int pre_pos = 0, pre_seq = 0;
  float2 pre_cs = make_float2(1.f, 0.f);
  if (a.mode == 3) {  // warp w's first row pair (2w, 2w + 1) of the block; pos and seq serve every pair
    const int row0 = bx * RB + warp * 2;
    if (2 * warp < RB && row0 < a.total_rows && lane < min(NB, a.nb - by * NB)) {
      const int t = by * NB + lane;
      pre_pos = a.pos[t];
      pre_seq = a.seq[t];
      int mi, r;
      locate(a, row0, mi, r);
      const int i = (r % a.head_dim) >> 1;
      if (a.rope && mi < 2 && 2 * i < a.n_rot)
        pre_cs = *reinterpret_cast<const float2*>(a.rope + (size_t(pre_pos) * (a.n_rot >> 1) + i) * 2);
    }
  }
  // int8 path: the norm weights of this warp's first quantisation item (constant, so loaded before the wait).
  float4 pn0 = make_float4(0.f, 0.f, 0.f, 0.f), pn1 = pn0;
  if (XM == 2 && a.xreg && a.norm) {
    const int idx = warp * 32 + lane, nblk = a.n_in >> 5;
    if (idx < nblk * 4) {
      const float4* nsrc = reinterpret_cast<const float4*>(a.norm + (idx >> 2) * 32 + (idx & 3) * 8);
      pn0 = nsrc[0];
      pn1 = nsrc[1];
    }
  }
  wait();
  trace_first(a.trace ? a.trace + 1 : nullptr);
  // Residual prefetch (Add mode, one row per warp): lane b holds y[b][row] for token b.
  float ypre = 0.f;
  if (a.mode == 1 && a.rw == 1) {
    const int row = bx * RB + warp;
    if (row < a.total_rows && lane < min(NB, a.nb - by * NB)) {
      int mi, r;
      locate(a, row, mi, r);
      ypre = a.m[mi].y[size_t(by * NB + lane) * a.m[mi].ldy + r];
    }
  }

  // 2. RMSNorm statistics (one warp per token, fixed order, loads batched), then the activations.
  const int b0 = by * NB;
  const int nb = min(NB, a.nb - b0);
  const float* x = a.x + size_t(b0) * a.ldx;
  if (XM != 2 && a.norm) {
    for (int b = warp; b < nb; b += R) {
      const float* xb = x + size_t(b) * a.ldx;
      float s = 0.f;
      for (int i0 = lane * 4; i0 < a.n_in; i0 += 128 * 8) {
        float4 v[8];
#pragma unroll
        for (int k = 0; k < 8; ++k)
          if (i0 + 128 * k < a.n_in) v[k] = *reinterpret_cast<const float4*>(xb + i0 + 128 * k);
#pragma unroll
        for (int k = 0; k < 8; ++k) {
          if (i0 + 128 * k < a.n_in) {
            s = fmaf(v[k].x, v[k].x, s);
            s = fmaf(v[k].y, v[k].y, s);
            s = fmaf(v[k].z, v[k].z, s);
            s = fmaf(v[k].w, v[k].w, s);
          }
        }
      }
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
      if (lane == 0) s_inv[b] = rsqrtf(s / float(a.n_in) + a.eps);
    }
    __syncthreads();
  }
  float* xs = reinterpret_cast<float*>(xsm);
  int8_t* xq = reinterpret_cast<int8_t*>(xsm);
  float* xqd = reinterpret_cast<float*>(xq + NB * xq_row(a.n_in));  // [NB][n_in/32]
  float* xqs = xqd + NB * (a.n_in >> 5);                    // [NB][n_in/16]
  if (XM == 0) {
    const int q = a.n_in >> 2;
#pragma unroll 4
    for (int idx = tid; idx < nb * q; idx += blockDim.x) {
      const int b = idx / q, col = (idx - b * q) * 4;
      float4 v = *reinterpret_cast<const float4*>(x + size_t(b) * a.ldx + col);
      if (a.norm) {
        const float sc = s_inv[b];
        const float4 n = *reinterpret_cast<const float4*>(a.norm + col);
        v.x = (v.x * sc) * n.x;
        v.y = (v.y * sc) * n.y;
        v.z = (v.z * sc) * n.z;
        v.w = (v.w * sc) * n.w;
      }
      *reinterpret_cast<float4*>(xs + b * a.xs_stride + xi(col)) = v;
    }
  } else if (XM == 2) {
    // Four lanes per (token, 32-element block), 8 elements each: scale = amax / 127, round to nearest even,
    // integer sums per 16. The whole warp iterates together (shuffles need every lane).
    const int nblk = a.n_in >> 5;
    const int total = nb * nblk * 4;
    // xreg: this warp's first item (base == warp * 32) is loaded once and kept in registers (c0, c1).
    float4 c0 = make_float4(0.f, 0.f, 0.f, 0.f), c1 = c0;
    bool have_c = false;
    if (a.norm) {
      // RMSNorm statistics with every thread: sum of squares per 32-block (4 lanes, fixed order) into xqd
      // (used as scratch), then per token the blocks in order. Independent of nb and of the block size.
      for (int base = warp * 32; base < total; base += int(blockDim.x)) {
        const int idx = base + lane;
        const bool act = idx < total;
        const int part = idx & 3, bj = idx >> 2;
        const int b = (NB == 1 || !act) ? 0 : bj / nblk, j = act ? bj - b * nblk : 0;
        float ss = 0.f;
        if (act) {
          const float4* src = reinterpret_cast<const float4*>(x + size_t(b) * a.ldx + j * 32 + part * 8);
          const float4 t0 = src[0], t1 = src[1];
          if (a.xreg && base == warp * 32) {
            c0 = t0;
            c1 = t1;
            have_c = true;
          }
          ss = fmaf(t0.x, t0.x, ss);
          ss = fmaf(t0.y, t0.y, ss);
          ss = fmaf(t0.z, t0.z, ss);
          ss = fmaf(t0.w, t0.w, ss);
          ss = fmaf(t1.x, t1.x, ss);
          ss = fmaf(t1.y, t1.y, ss);
          ss = fmaf(t1.z, t1.z, ss);
          ss = fmaf(t1.w, t1.w, ss);
        }
        ss += __shfl_xor_sync(0xffffffffu, ss, 1);
        ss += __shfl_xor_sync(0xffffffffu, ss, 2);
        if (act && part == 0) xqd[b * nblk + j] = ss;
      }
      __syncthreads();
      if (a.xreg) {  // one warp per token: lane-strided partial sums, then a fixed butterfly (depends on n_in
                     // only)
        for (int b = warp; b < nb; b += R) {
          float t = 0.f;
          for (int j = lane; j < nblk; j += 32) t += xqd[b * nblk + j];
#pragma unroll
          for (int o = 16; o > 0; o >>= 1) t += __shfl_xor_sync(0xffffffffu, t, o);
          if (lane == 0) s_inv[b] = rsqrtf(t / float(a.n_in) + a.eps);
        }
      } else if (tid < nb) {
        float t = 0.f;
        for (int j = 0; j < nblk; ++j) t += xqd[tid * nblk + j];
        s_inv[tid] = rsqrtf(t / float(a.n_in) + a.eps);
      }
      __syncthreads();
    }
    for (int base = warp * 32; base < total; base += int(blockDim.x)) {
      const int idx = base + lane;
      const bool act = idx < total;
      const int part = idx & 3, bj = idx >> 2;
      const int b = (NB == 1 || !act) ? 0 : bj / nblk, j = act ? bj - b * nblk : 0;
      float v[8];
#pragma unroll
      for (int i = 0; i < 8; ++i) v[i] = 0.f;
      if (act) {
        const bool first = base == warp * 32;
        float4 t0, t1;
        if (have_c && first) {
          t0 = c0;
          t1 = c1;
        } else {
          const float4* src = reinterpret_cast<const float4*>(x + size_t(b) * a.ldx + j * 32 + part * 8);
          t0 = src[0];
          t1 = src[1];
        }
        v[0] = t0.x;
        v[1] = t0.y;
        v[2] = t0.z;
        v[3] = t0.w;
        v[4] = t1.x;
        v[5] = t1.y;
        v[6] = t1.z;
        v[7] = t1.w;
        if (a.norm) {
          const float sc = s_inv[b];
          float4 n0, n1;
          if (a.xreg && first && b == 0) {  // item idx < nblk * 4 belongs to token 0: preloaded
            n0 = pn0;
            n1 = pn1;
          } else {
            const float4* nsrc = reinterpret_cast<const float4*>(a.norm + j * 32 + part * 8);
            n0 = nsrc[0];
            n1 = nsrc[1];
          }
          const float nn[8] = {n0.x, n0.y, n0.z, n0.w, n1.x, n1.y, n1.z, n1.w};
#pragma unroll
          for (int i = 0; i < 8; ++i) v[i] = (v[i] * sc) * nn[i];
        }
      }
      float amax = 0.f;
#pragma unroll
      for (int i = 0; i < 8; ++i) amax = fmaxf(amax, fabsf(v[i]));
      amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, 1));
      amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, 2));
      const float d = amax / 127.f;
      const float id = d > 0.f ? 127.f / amax : 0.f;
      uint32_t w0 = 0, w1 = 0;
      int sum = 0;
#pragma unroll
      for (int i = 0; i < 8; ++i) {
        const int qv = __float2int_rn(v[i] * id);
        sum += qv;
        if (i < 4)
          w0 |= uint32_t(qv & 0xFF) << (8 * i);
        else
          w1 |= uint32_t(qv & 0xFF) << (8 * (i - 4));
      }
      sum += __shfl_xor_sync(0xffffffffu, sum, 1);
      if (act) {
        *reinterpret_cast<uint2*>(xq + b * xq_row(a.n_in) + xperm(j * 32 + part * 8, a.n_in)) = make_uint2(w0, w1);
        if (part == 0) {
          xqd[b * nblk + j] = d;
          xqs[b * 2 * nblk + 2 * j] = float(sum);
        } else if (part == 2) {
          xqs[b * 2 * nblk + 2 * j + 1] = float(sum);
        }
      }
    }
  }
  __syncthreads();
  cp_wait_all();  // this warp's weight rows
  __syncwarp();

  // 3. rw rows per warp, each reduced by the whole warp; 4. epilogue.
  for (int k = 0; k < a.rw; ++k) {
    const int slot = warp * a.rw + k;
    const int row = bx * RB + slot;
    if (row >= a.total_rows) break;
    float acc[NB], acc2[NB];
#pragma unroll
    for (int b = 0; b < NB; ++b) acc[b] = acc2[b] = 0.f;
    int mi = 0, r = row;
    locate(a, row, mi, r);
    if constexpr (XM == 2) {
      XQ src{xq, xqd, xqs, a.n_in};
      row_dot_q8<NB>(a.m[a.mode == 2 ? 0 : mi].type, wsm + slot * a.slot_bytes, a.n_in, src, nb, lane, acc);
      if (a.mode == 2)
        row_dot_q8<NB>(a.m[1].type, wsm + (RB + slot) * a.slot_bytes, a.n_in, src, nb, lane, acc2);
    } else {
      XSrc<STAGED> src;
      src.p = STAGED ? xs : x;
      src.stride = STAGED ? a.xs_stride : a.ldx;
      src.norm = a.norm;
      src.inv = s_inv;
      row_dot<NB, STAGED>(a.m[a.mode == 2 ? 0 : mi].type, wsm + slot * a.slot_bytes, a.n_in, src, nb, lane,
                          acc);
      if (a.mode == 2)
        row_dot<NB, STAGED>(a.m[1].type, wsm + (RB + slot) * a.slot_bytes, a.n_in, src, nb, lane, acc2);
    }
#pragma unroll
    for (int b = 0; b < NB; ++b) {
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) {
        acc[b] += __shfl_xor_sync(0xffffffffu, acc[b], o);
        if (a.mode == 2) acc2[b] += __shfl_xor_sync(0xffffffffu, acc2[b], o);
      }
    }
    if (a.mode == 3) {
      if (lane == 0) {
#pragma unroll
        for (int b = 0; b < NB; ++b) s_res[slot][b] = acc[b];
      }
    } else {
      const KMat& m = a.m[a.mode == 2 ? 0 : mi];
#pragma unroll
      for (int b = 0; b < NB; ++b) {
        if (b < nb && lane == b) {
          float* y = m.y + size_t(b0 + b) * m.ldy + r;
          const float v = acc[b];
          if (a.mode == 0) {
            *y = v;
          } else if (a.mode == 1) {
            *y = (a.rw == 1 ? ypre : *y) + v;
          } else {
            const float g = (a.act ? mv_gelu_tanh(v) : v / (1.f + __expf(-v))) * acc2[b];
            *y = g;
          }
        }
      }
    }
  }
  if (a.mode == 3) {
    __syncthreads();
    // Warp w handles the row pairs (2p, 2p + 1) of the block for p = w, w + R, ... (one pair when rw == 1).
    for (int p = warp; 2 * p < RB; p += R) {
      const int row0 = bx * RB + 2 * p;
      if (row0 >= a.total_rows) break;
      int mi, r0;
      locate(a, row0, mi, r0);
      const int i = (r0 % a.head_dim) >> 1;
#pragma unroll
      for (int b = 0; b < NB; ++b) {
        if (b < nb && lane == b) {
          const int t = b0 + b;
          float v0 = s_res[2 * p][b], v1 = s_res[2 * p + 1][b];
          const int pos = pre_pos;
          if (mi < 2 && 2 * i < a.n_rot) {
            if (a.rope) {
              const float2 cs =
                  p == warp
                      ? pre_cs
                      : *reinterpret_cast<const float2*>(a.rope + (size_t(pos) * (a.n_rot >> 1) + i) * 2);
              const float x0 = v0, x1 = v1;
              v0 = __fmaf_rn(x0, cs.x, -__fmul_rn(x1, cs.y));
              v1 = __fmaf_rn(x0, cs.y, __fmul_rn(x1, cs.x));
            } else {
              rope2(v0, v1, pos, i, a.n_rot, a.freq_base, a.freq_scale);
            }
          }
          if (mi == 0) {
            float* y = a.m[0].y + size_t(t) * a.m[0].ldy + r0;
            y[0] = v0;
            y[1] = v1;
          } else {
            __half* c =
                (mi == 1 ? a.kc : a.vc) + (size_t(pre_seq) * a.n_ctx + pos) * size_t(a.m[1].n_out) + r0;
            c[0] = __float2half_rn(v0);
            c[1] = __float2half_rn(v1);
          }
        }
      }
    }
  }
  trace_last(a.trace ? a.trace + 2 : nullptr);
}

template <int NB, int XM, class Wait>
__device__ __forceinline__ void mv_block(const KArgs& a, const int bx, const int by, uint8_t* smem,
                                         Wait&& wait) {
  const int nslots = a.mode == 2 ? 2 * int(blockDim.x >> 5) * a.rw : int(blockDim.x >> 5) * a.rw;
  mv_block_ex<NB, XM>(a, bx, by, smem, smem + nslots * a.slot_bytes, wait);
}

// Host side: validates a and fills k (all but rw); xm: the activation path (0 f32 staged, 1 f32 from global,
// 2 int8 staged), chosen from the matrix types and shapes only; stage: bytes of staged activations for token
// groups of NB.
inline void mv_prepare(const MatvecArgs& a, int NB, KArgs& k, int& xm, size_t& stage) {
  k = KArgs{};
  if (a.n_mats < 1 || a.n_mats > 3 || (a.mode == MvMode::SwiGLU && a.n_mats != 2) ||
      (a.mode == MvMode::QkvRope && a.n_mats != 3))
    throw Error("cuda: matvec: bad matrix count");
  if (a.ldx % 4 != 0 || a.n_in % 8 != 0) throw Error("cuda: matvec: misaligned input");
  int max_row = 0;
  k.n_mats = a.n_mats;
  k.total_rows = 0;
  for (int i = 0; i < a.n_mats; ++i) {
    const MvMat& m = a.m[i];
    if (!dev_type_supported(m.type) || a.n_in % dev_block_elems(m.type) != 0)
      throw Error("cuda: matvec: unsupported type or shape");
    const int rb = int(dev_row_bytes(m.type, a.n_in));
    k.m[i] = KMat{static_cast<const uint8_t*>(m.d_w), int(m.type), m.n_out, m.d_y, m.ldy, rb};
    k.total_rows += m.n_out;
    max_row = std::max(max_row, rb);
  }
  if (a.mode == MvMode::SwiGLU) {
    if (a.m[0].n_out != a.m[1].n_out) throw Error("cuda: matvec: gate/up shapes differ");
    k.total_rows = a.m[0].n_out;
  }
  if (a.mode == MvMode::QkvRope) {
    for (int i = 0; i < 3; ++i)
      if (a.m[i].n_out % 2 != 0) throw Error("cuda: matvec: rope needs even row counts");
    if (a.m[1].n_out != a.m[2].n_out || a.head_dim <= 0 || a.head_dim % 2 != 0 || a.n_rot > a.head_dim)
      throw Error("cuda: matvec: bad rope arguments");
  }
  k.n_in = a.n_in;
  k.x = a.d_x;
  k.ldx = a.ldx;
  k.nb = a.nb;
  k.norm = a.d_norm;
  k.eps = a.eps;
  k.mode = int(a.mode);
  k.act = int(a.act);
  k.slot_bytes = (max_row + 15) / 16 * 16;
  k.xs_stride = a.n_in + (a.n_in / 64) * 4 + 4;
  k.pos = a.d_pos;
  k.seq = a.d_seq;
  k.head_dim = a.head_dim;
  k.n_rot = a.n_rot;
  k.freq_base = a.freq_base;
  k.freq_scale = a.freq_scale;
  k.kc = static_cast<__half*>(a.d_kcache);
  k.vc = static_cast<__half*>(a.d_vcache);
  k.n_ctx = a.n_ctx;
  k.rope = a.d_rope;
  k.xreg = 1;
  k.trace = a.d_trace;
  // int8 activations when every matrix is Q4_K or Q6_K (a choice that depends on the types only, never on
  // nb).
  bool q8 = true;
  for (int i = 0; i < a.n_mats; ++i)
    q8 = q8 && (a.m[i].type == GgmlType::Q4_K || a.m[i].type == GgmlType::Q6_K);
  stage = 0;
  xm = 0;
  if (q8) {
    xm = 2;
    stage = size_t(NB) * xq_row(a.n_in) + size_t(NB) * (a.n_in / 32) * 4 + size_t(NB) * (a.n_in / 16) * 4;
  } else {
    stage = size_t(NB) * k.xs_stride * sizeof(float);
    xm = stage <= size_t(kMaxStage) ? 0 : 1;
    if (xm == 1) stage = 0;
  }
}

}  // namespace
}  // namespace minnow::cuda
