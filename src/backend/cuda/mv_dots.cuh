#pragma once
// Dot products of one weight row (in shared memory, device layout) with the staged activations of up to NB
// tokens, reduced by one warp: lane l takes the units u = l + 32 i of the row in order, so the arithmetic of
// a row depends only on n_in. f32 activations (XSrc; every format, dedicated Q4_K / Q6_K loops) or int8 ones
// (XQ; Q4_K / Q6_K with dp4a). Used by matvec_body.cuh.
#include <cuda_fp16.h>

#include <cstdint>

#include "backend/cuda/quant_dev.cuh"

namespace minnow::cuda {
namespace {

__device__ __forceinline__ int xi(int col) { return col + ((col >> 6) << 2); }  // padded staged index

// Where the activations come from: staged (shared memory, already normalised) or global (normalised here,
// with the same operations in the same order as the staging, so both give identical values).
template <bool STAGED>
struct XSrc {
  const float* p;
  int stride;
  const float* norm;
  const float* inv;  // [NB] shared
  __device__ __forceinline__ void get8(int b, int col, float* v) const {
    if (STAGED) {
      const float4* q = reinterpret_cast<const float4*>(p + b * stride + xi(col));
      const float4 a = q[0], c = q[1];
      v[0] = a.x;
      v[1] = a.y;
      v[2] = a.z;
      v[3] = a.w;
      v[4] = c.x;
      v[5] = c.y;
      v[6] = c.z;
      v[7] = c.w;
    } else {
      const float4* q = reinterpret_cast<const float4*>(p + size_t(b) * stride + col);
      const float4 a = __ldg(q), c = __ldg(q + 1);
      v[0] = a.x;
      v[1] = a.y;
      v[2] = a.z;
      v[3] = a.w;
      v[4] = c.x;
      v[5] = c.y;
      v[6] = c.z;
      v[7] = c.w;
      if (norm) {
        const float s = inv[b];
        const float4 n0 = __ldg(reinterpret_cast<const float4*>(norm + col));
        const float4 n1 = __ldg(reinterpret_cast<const float4*>(norm + col) + 1);
        const float nn[8] = {n0.x, n0.y, n0.z, n0.w, n1.x, n1.y, n1.z, n1.w};
#pragma unroll
        for (int i = 0; i < 8; ++i) v[i] = (v[i] * s) * nn[i];
      }
    }
  }
};

template <int NB, bool STAGED>
__device__ __forceinline__ void fma8(const float* w, const XSrc<STAGED>& xs, int nb, int col, float* acc) {
#pragma unroll
  for (int b = 0; b < NB; ++b) {
    if (b < nb) {
      float v[8];
      xs.get8(b, col, v);
      float s = acc[b];
#pragma unroll
      for (int i = 0; i < 8; ++i) s = fmaf(w[i], v[i], s);
      acc[b] = s;
    }
  }
}

template <int T, int NB, bool S>
__device__ __forceinline__ void dot_generic(const uint8_t* wrow, int n_in, const XSrc<S>& xs, int nb,
                                            int lane, float* acc) {
  const int n_units = n_in / 8;
  for (int u = lane; u < n_units; u += 32) {
    const int col = u * 8;
    float w[8];
    deq8<T>(wrow + (col / Fmt<T>::elems) * Fmt<T>::bytes, col % Fmt<T>::elems, w);
    fma8<NB>(w, xs, nb, col, acc);
  }
}

// Q4_K units of 32 weights (16 bytes of nibbles: halves of sub-blocks 2c and 2c + 1) dealt to lanes as
// u = lane + 32 i, so a lane's place in its super-block (c, h) is the same on every iteration.
struct Q4kLane {
  int c, h;
  int sbits;        // bit offset of the two scale bytes of sub-blocks 2c, 2c + 1 in their words
  bool low_scales;  // sub-blocks 2c, 2c + 1 < 4: 6-bit scale and min stored whole
};
__device__ __forceinline__ Q4kLane q4k_lane(int lane) {
  const int k = lane & 7, c = k >> 1;
  return Q4kLane{c, k & 1, 16 * (c & 1), c < 2};
}
// d * scale and dmin * min of sub-blocks 2c and 2c + 1 from the block header (one 16-byte load: d | dmin,
// then the 12 bytes of packed 6-bit scales and mins), the two decoded side by side in the two low bytes (the
// values k4_scale_min gives, byte by byte).
__device__ __forceinline__ void q4k_scales(const uint8_t* blk, const Q4kLane& L, float& ds0, float& dm0,
                                           float& ds1, float& dm1) {
  const uint4 hd = ld128(blk);
  const float d = h2f(uint16_t(hd.x & 0xFFFF)), dmin = h2f(uint16_t(hd.x >> 16));
  const uint32_t Y = hd.y >> L.sbits, Z = hd.z >> L.sbits, W = hd.w >> L.sbits;
  const uint32_t scp = L.low_scales ? (Y & 0x3F3Fu) : ((W & 0x0F0Fu) | ((Y >> 2) & 0x3030u));
  const uint32_t mp = L.low_scales ? (Z & 0x3F3Fu) : (((W >> 4) & 0x0F0Fu) | ((Z >> 2) & 0x3030u));
  const float sc0 = u2f(scp & 0xFFu), sc1 = u2f((scp >> 8) & 0xFFu);
  const float m0 = u2f(mp & 0xFFu), m1 = u2f((mp >> 8) & 0xFFu);
  ds0 = d * sc0;
  dm0 = dmin * m0;
  ds1 = d * sc1;
  dm1 = dmin * m1;
}

template <int NB, bool S>
__device__ __forceinline__ void dot_q4k(const uint8_t* wrow, int n_in, const XSrc<S>& xs, int nb, int lane,
                                        float* acc) {
  const int n_units = n_in / 32;
  const Q4kLane L = q4k_lane(lane);
  const int c = L.c, h = L.h;
  for (int u = lane; u < n_units; u += 32) {
    const int sb = u >> 3;
    const uint8_t* blk = wrow + sb * 144;
    const uint4 q = ld128(blk + 16 + 32 * c + 16 * h);
    float ds0, dm0, ds1, dm1;
    q4k_scales(blk, L, ds0, dm0, ds1, dm1);
    const int col0 = sb * 256 + 64 * c + 16 * h, col1 = col0 + 32;
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      float w0[8], w1[8];
#pragma unroll
      for (int i = 0; i < 8; ++i) {
        const uint32_t byte = byte_of(q, 8 * half + i);
        w0[i] = fmaf(ds0, u2f(byte & 0xF), -dm0);
        w1[i] = fmaf(ds1, u2f(byte >> 4), -dm1);
      }
      fma8<NB>(w0, xs, nb, col0 + 8 * half, acc);
      fma8<NB>(w1, xs, nb, col1 + 8 * half, acc);
    }
  }
}

template <int NB, bool S>
__device__ __forceinline__ void dot_q6k(const uint8_t* wrow, int n_in, const XSrc<S>& xs, int nb, int lane,
                                        float* acc) {
  const int n_units = n_in / 64;
  for (int u = lane; u < n_units; u += 32) {
    const int sb = u >> 2, k = u & 3, n = k >> 1, j = k & 1;
    const uint8_t* blk = wrow + sb * 224;
    const uint4 qa = ld128(blk + 64 * n + 16 * j);
    const uint4 qb = ld128(blk + 64 * n + 32 + 16 * j);
    const uint4 qh = ld128(blk + 128 + 32 * n + 16 * j);
    const float d = h2f(ld16u(blk + 208));
    const int8_t* scs = reinterpret_cast<const int8_t*>(blk + 192) + 8 * n + j;
#pragma unroll
    for (int g = 0; g < 4; ++g) {
      const float ds = d * float(scs[2 * g]);
      const int col = sb * 256 + 128 * n + 32 * g + 16 * j;
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        float w[8];
#pragma unroll
        for (int i = 0; i < 8; ++i) {
          const int ii = 8 * half + i;
          uint32_t lo = (g & 1) ? byte_of(qb, ii) : byte_of(qa, ii);
          lo = (g >= 2) ? (lo >> 4) : (lo & 0xF);
          const uint32_t hb = (byte_of(qh, ii) >> (2 * g)) & 3;
          w[i] = ds * (u2f(lo | (hb << 4)) - 32.0f);
        }
        fma8<NB>(w, xs, nb, col + 8 * half, acc);
      }
    }
  }
}

// ---- int8 activations (decode of Q4_K / Q6_K): x quantized per 32 elements, dp4a dot products ----------
// Staged per token: xq int8 [n_in], dx float [n_in/32] (scale), s16 float [n_in/16] (sum of xq per 16).
// Place of column col in a staged int8 row of n columns (n % 64 == 0): the row is stored as 4 planes,
// plane k holding bytes [16k, 16k + 16) of every 64-byte piece, so the 32 lanes of a warp reading one 16-byte
// part of consecutive pieces read 512 contiguous bytes (no shared-memory bank conflicts). Each plane is padded by
// 16 bytes (xq_plane), so lanes reading the same piece in neighbouring planes (the Q6_K dots) hit other banks.
__host__ __device__ __forceinline__ int xq_plane(int n) { return (n >> 2) + 16; }  // bytes per plane
__host__ __device__ __forceinline__ int xq_row(int n) { return 4 * xq_plane(n); }  // bytes per staged row
__host__ __device__ __forceinline__ int xperm(int col, int n) {
  return ((col >> 4) & 3) * xq_plane(n) + ((col >> 6) << 4) + (col & 15);
}

struct XQ {
  const int8_t* q;  // [NB][xq_row(n_in)] (planar, xperm)
  const float* d;   // [NB][n_in/32]
  const float* s;   // [NB][n_in/16]
  int n_in;
};

// Q4_K with int8 activations: lane l takes the 64-weight pieces p = l + 32 i of the row (super-block p / 4,
// sub-blocks 2c and 2c + 1 with c = p % 4, the same c on every iteration): 32 bytes of nibbles, one scale decode
// and one set of activation scales for 64 weights. The integer dot products are exact; the float sum of a row
// depends only on n_in.
template <int NB>
__device__ __forceinline__ void dot_q4k_q8(const uint8_t* wrow, int n_in, const XQ& x, int nb, int lane,
                                           float* acc) {
  const int n_pieces = n_in / 64;
  const Q4kLane L = q4k_lane(2 * (lane & 3));  // c = lane % 4 (h unused)
  const int c = L.c;
  for (int p = lane; p < n_pieces; p += 32) {
    const int sb = p >> 2;
    const uint8_t* blk = wrow + sb * 144;
    const uint4 q0 = ld128(blk + 16 + 32 * c), q1 = ld128(blk + 32 + 32 * c);
    float ds0, dm0, ds1, dm1;
    q4k_scales(blk, L, ds0, dm0, ds1, dm1);
    const uint32_t w[8] = {q0.x, q0.y, q0.z, q0.w, q1.x, q1.y, q1.z, q1.w};  // weights 0-31 of sub-blocks 2c | 2c+1
    const int col0 = sb * 256 + 64 * c;
    const int j0 = sb * 8 + 2 * c, j1 = j0 + 1;  // the 32-blocks of col0 and col0 + 32
#pragma unroll
    for (int b = 0; b < NB; ++b) {
      if (b < nb) {
        const int8_t* xr = x.q + b * xq_row(x.n_in) + (col0 >> 2);  // piece p = col0 / 64 in each plane (xperm)
        const int plane = xq_plane(x.n_in);
        const uint4 xa = *reinterpret_cast<const uint4*>(xr), xb1 = *reinterpret_cast<const uint4*>(xr + plane),
                    xc = *reinterpret_cast<const uint4*>(xr + 2 * plane),
                    xd = *reinterpret_cast<const uint4*>(xr + 3 * plane);  // columns col0 + [0, 16, 32, 48)
        const int xl[8] = {int(xa.x), int(xa.y), int(xa.z), int(xa.w), int(xb1.x), int(xb1.y), int(xb1.z), int(xb1.w)};
        const int xh[8] = {int(xc.x), int(xc.y), int(xc.z), int(xc.w), int(xd.x), int(xd.y), int(xd.z), int(xd.w)};
        int sl = 0, sh = 0;
#pragma unroll
        for (int i = 0; i < 8; ++i) {
          sl = __dp4a(int(w[i] & 0x0F0F0F0Fu), xl[i], sl);
          sh = __dp4a(int((w[i] >> 4) & 0x0F0F0F0Fu), xh[i], sh);
        }
        const float* db = x.d + b * (x.n_in >> 5);
        const float2 s0 = *reinterpret_cast<const float2*>(x.s + b * (x.n_in >> 4) + 2 * j0);  // per-16 sums
        const float2 s1 = *reinterpret_cast<const float2*>(x.s + b * (x.n_in >> 4) + 2 * j1);
        float r = acc[b];
        r = fmaf(db[j0], fmaf(ds0, float(sl), -dm0 * (s0.x + s0.y)), r);
        r = fmaf(db[j1], fmaf(ds1, float(sh), -dm1 * (s1.x + s1.y)), r);
        acc[b] = r;
      }
    }
  }
}

template <int NB>
__device__ __forceinline__ void dot_q6k_q8(const uint8_t* wrow, int n_in, const XQ& x, int nb, int lane,
                                           float* acc) {
  const int n_units = n_in / 64;
  const int k = lane & 3, n = k >> 1, j = k & 1;  // u = lane + 32 i: the same place in every super-block
  for (int u = lane; u < n_units; u += 32) {
    const int sb = u >> 2;
    const uint8_t* blk = wrow + sb * 224;
    const uint4 qa = ld128(blk + 64 * n + 16 * j);
    const uint4 qb = ld128(blk + 64 * n + 32 + 16 * j);
    const uint4 qh = ld128(blk + 128 + 32 * n + 16 * j);
    const float d = h2f(ld16u(blk + 208));
    // The 4 scales this unit needs, s[8n + j + 2g] for g < 4, from one 8-byte load (sign-extended bytes).
    const uint2 scw = *reinterpret_cast<const uint2*>(blk + 192 + 8 * n);
    const uint32_t wa[4] = {qa.x, qa.y, qa.z, qa.w}, wb[4] = {qb.x, qb.y, qb.z, qb.w};
    const uint32_t wh[4] = {qh.x, qh.y, qh.z, qh.w};
#pragma unroll
    for (int g = 0; g < 4; ++g) {
      int q6[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const uint32_t src = (g & 1) ? wb[i] : wa[i];
        const uint32_t lo = (g >= 2 ? (src >> 4) : src) & 0x0F0F0F0Fu;
        // bits 2g, 2g + 1 of each byte of qh moved to bits 4, 5 (= ((wh >> 2g) & 0x03030303) << 4)
        const uint32_t hi = (g < 2 ? (wh[i] << (4 - 2 * g)) : (wh[i] >> (2 * g - 4))) & 0x30303030u;
        q6[i] = int(lo | hi);
      }
      const int sbyte = int(int8_t(((g < 2 ? scw.x : scw.y) >> (8 * (j + 2 * (g & 1)))) & 0xFFu));
      const float ds = d * float(sbyte);
      const int col = sb * 256 + 128 * n + 32 * g + 16 * j;
      const int jb = sb * 8 + 4 * n + g;  // col >> 5 (16 j < 32)
#pragma unroll
      for (int b = 0; b < NB; ++b) {
        if (b < nb) {
          const uint4 xv = *reinterpret_cast<const uint4*>(x.q + b * xq_row(x.n_in) + xperm(col, x.n_in));
          int sm = 0;
          sm = __dp4a(q6[0], int(xv.x), sm);
          sm = __dp4a(q6[1], int(xv.y), sm);
          sm = __dp4a(q6[2], int(xv.z), sm);
          sm = __dp4a(q6[3], int(xv.w), sm);
          const float s16 = x.s[b * (x.n_in >> 4) + 2 * jb + j];
          acc[b] = fmaf(x.d[b * (x.n_in >> 5) + jb] * ds, float(sm) - 32.f * s16, acc[b]);
        }
      }
    }
  }
}

template <int NB, bool S>
__device__ __forceinline__ void row_dot(int type, const uint8_t* wrow, int n_in, const XSrc<S>& xs, int nb,
                                        int lane, float* acc) {
  switch (type) {
    case T_Q4_K:
      dot_q4k<NB>(wrow, n_in, xs, nb, lane, acc);
      break;
    case T_Q6_K:
      dot_q6k<NB>(wrow, n_in, xs, nb, lane, acc);
      break;
    case T_F32:
      dot_generic<T_F32, NB>(wrow, n_in, xs, nb, lane, acc);
      break;
    case T_F16:
      dot_generic<T_F16, NB>(wrow, n_in, xs, nb, lane, acc);
      break;
    case T_BF16:
      dot_generic<T_BF16, NB>(wrow, n_in, xs, nb, lane, acc);
      break;
    case T_Q4_0:
      dot_generic<T_Q4_0, NB>(wrow, n_in, xs, nb, lane, acc);
      break;
    case T_Q4_1:
      dot_generic<T_Q4_1, NB>(wrow, n_in, xs, nb, lane, acc);
      break;
    case T_Q5_0:
      dot_generic<T_Q5_0, NB>(wrow, n_in, xs, nb, lane, acc);
      break;
    case T_Q5_1:
      dot_generic<T_Q5_1, NB>(wrow, n_in, xs, nb, lane, acc);
      break;
    case T_Q8_0:
      dot_generic<T_Q8_0, NB>(wrow, n_in, xs, nb, lane, acc);
      break;
    case T_Q2_K:
      dot_generic<T_Q2_K, NB>(wrow, n_in, xs, nb, lane, acc);
      break;
    case T_Q3_K:
      dot_generic<T_Q3_K, NB>(wrow, n_in, xs, nb, lane, acc);
      break;
    case T_Q5_K:
      dot_generic<T_Q5_K, NB>(wrow, n_in, xs, nb, lane, acc);
      break;
    default:
      break;
  }
}

template <int NB>
__device__ __forceinline__ void row_dot_q8(int type, const uint8_t* wrow, int n_in, const XQ& xs, int nb,
                                           int lane, float* acc) {
  if (type == T_Q4_K)
    dot_q4k_q8<NB>(wrow, n_in, xs, nb, lane, acc);
  else
    dot_q6k_q8<NB>(wrow, n_in, xs, nb, lane, acc);
}

}  // namespace
}  // namespace minnow::cuda
