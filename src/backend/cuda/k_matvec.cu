// Quantized matrix-vector products for decode (and small batches). One warp computes one output row for up
// to 8 tokens at once, so each weight is read once per 8 tokens. Q4_K and Q6_K have dedicated inner loops with
// 16-byte weight loads; every other format goes through deq8 (8 elements per lane step).
#include <string>

#include "backend/cuda/cuda_kernels.h"
#include "backend/cuda/quant_dev.cuh"
#include "common/error.h"

namespace minnow::cuda {
namespace {

constexpr int kWarps = 8;  // rows per block (the RMSNorm statistics are computed once per block)

struct KMat {
  const uint8_t* w;  // [n_out][row_bytes]
  int type;
  int n_out;
  float* y;  // [nb][ldy]
  int ldy;
  size_t row_bytes;
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
};

template <int NB>
__device__ __forceinline__ void fma8(const float* w, const float* __restrict__ x, int ldx, int nb, int col,
                                     float* acc) {
#pragma unroll
  for (int b = 0; b < NB; ++b) {
    if (b < nb) {
      const float4* xp = reinterpret_cast<const float4*>(x + size_t(b) * ldx + col);
      const float4 a = __ldg(xp), c = __ldg(xp + 1);
      float s = acc[b];
      s = fmaf(w[0], a.x, s); s = fmaf(w[1], a.y, s); s = fmaf(w[2], a.z, s); s = fmaf(w[3], a.w, s);
      s = fmaf(w[4], c.x, s); s = fmaf(w[5], c.y, s); s = fmaf(w[6], c.z, s); s = fmaf(w[7], c.w, s);
      acc[b] = s;
    }
  }
}

__device__ __forceinline__ void apply_norm8(const float* __restrict__ norm, int col, float* w) {
  if (norm) {
    const float4 a = __ldg(reinterpret_cast<const float4*>(norm + col));
    const float4 c = __ldg(reinterpret_cast<const float4*>(norm + col) + 1);
    w[0] *= a.x; w[1] *= a.y; w[2] *= a.z; w[3] *= a.w; w[4] *= c.x; w[5] *= c.y; w[6] *= c.z; w[7] *= c.w;
  }
}

template <int T, int NB>
__device__ __forceinline__ void dot_generic(const uint8_t* __restrict__ wrow, int n_in, const float* __restrict__ x,
                                            int ldx, int nb, const float* __restrict__ norm, int lane, float* acc) {
  const int n_units = n_in / 8;
  for (int u = lane; u < n_units; u += 32) {
    const int col = u * 8;
    float w[8];
    deq8<T>(wrow + (col / Fmt<T>::elems) * Fmt<T>::bytes, col % Fmt<T>::elems, w);
    apply_norm8(norm, col, w);
    fma8<NB>(w, x, ldx, nb, col, acc);
  }
}

// Q4_K: a lane step is 32 elements = one 16-byte load of packed nibbles (two sub-blocks of 16 each).
template <int NB>
__device__ __forceinline__ void dot_q4k(const uint8_t* __restrict__ wrow, int n_in, const float* __restrict__ x,
                                        int ldx, int nb, const float* __restrict__ norm, int lane, float* acc) {
  const int n_units = n_in / 32;
  for (int u = lane; u < n_units; u += 32) {
    const int sb = u >> 3, k = u & 7, c = k >> 1, h = k & 1;
    const uint8_t* blk = wrow + size_t(sb) * 144;
    const uint4 q = ld128(blk + 16 + 32 * c + 16 * h);
    const uint32_t dm = __ldg(reinterpret_cast<const unsigned int*>(blk));
    const float d = h2f(uint16_t(dm & 0xFFFF)), dmin = h2f(uint16_t(dm >> 16));
    float sc0, m0, sc1, m1;
    k4_scale_min(blk + 4, 2 * c, sc0, m0);
    k4_scale_min(blk + 4, 2 * c + 1, sc1, m1);
    const float ds0 = d * sc0, dm0 = dmin * m0, ds1 = d * sc1, dm1 = dmin * m1;
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
      apply_norm8(norm, col0 + 8 * half, w0);
      apply_norm8(norm, col1 + 8 * half, w1);
      fma8<NB>(w0, x, ldx, nb, col0 + 8 * half, acc);
      fma8<NB>(w1, x, ldx, nb, col1 + 8 * half, acc);
    }
  }
}

// Q6_K (padded to 224-byte blocks): a lane step is 64 elements = three 16-byte loads (ql, ql+32, qh).
template <int NB>
__device__ __forceinline__ void dot_q6k(const uint8_t* __restrict__ wrow, int n_in, const float* __restrict__ x,
                                        int ldx, int nb, const float* __restrict__ norm, int lane, float* acc) {
  const int n_units = n_in / 64;
  for (int u = lane; u < n_units; u += 32) {
    const int sb = u >> 2, k = u & 3, n = k >> 1, j = k & 1;
    const uint8_t* blk = wrow + size_t(sb) * 224;
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
        apply_norm8(norm, col + 8 * half, w);
        fma8<NB>(w, x, ldx, nb, col + 8 * half, acc);
      }
    }
  }
}

template <int NB>
__device__ __forceinline__ void row_dot(const KMat& m, int row, int n_in, const float* __restrict__ x, int ldx, int nb,
                                        const float* __restrict__ norm, int lane, float* acc) {
  const uint8_t* wrow = m.w + size_t(row) * m.row_bytes;
  if (m.type == T_Q4_K) {
    dot_q4k<NB>(wrow, n_in, x, ldx, nb, norm, lane, acc);
  } else if (m.type == T_Q6_K) {
    dot_q6k<NB>(wrow, n_in, x, ldx, nb, norm, lane, acc);
  } else {
    switch (m.type) {
      case T_F32: dot_generic<T_F32, NB>(wrow, n_in, x, ldx, nb, norm, lane, acc); break;
      case T_F16: dot_generic<T_F16, NB>(wrow, n_in, x, ldx, nb, norm, lane, acc); break;
      case T_BF16: dot_generic<T_BF16, NB>(wrow, n_in, x, ldx, nb, norm, lane, acc); break;
      case T_Q4_0: dot_generic<T_Q4_0, NB>(wrow, n_in, x, ldx, nb, norm, lane, acc); break;
      case T_Q4_1: dot_generic<T_Q4_1, NB>(wrow, n_in, x, ldx, nb, norm, lane, acc); break;
      case T_Q5_0: dot_generic<T_Q5_0, NB>(wrow, n_in, x, ldx, nb, norm, lane, acc); break;
      case T_Q5_1: dot_generic<T_Q5_1, NB>(wrow, n_in, x, ldx, nb, norm, lane, acc); break;
      case T_Q8_0: dot_generic<T_Q8_0, NB>(wrow, n_in, x, ldx, nb, norm, lane, acc); break;
      case T_Q2_K: dot_generic<T_Q2_K, NB>(wrow, n_in, x, ldx, nb, norm, lane, acc); break;
      case T_Q3_K: dot_generic<T_Q3_K, NB>(wrow, n_in, x, ldx, nb, norm, lane, acc); break;
      case T_Q5_K: dot_generic<T_Q5_K, NB>(wrow, n_in, x, ldx, nb, norm, lane, acc); break;
      default: break;
    }
  }
}

template <int NB>
__global__ void __launch_bounds__(kWarps * 32) k_matvec(KArgs a) {
  __shared__ float s_part[kWarps][NB];
  __shared__ float s_inv[NB];
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int b0 = blockIdx.y * NB;
  const int nb = min(NB, a.nb - b0);
  const float* x = a.x + size_t(b0) * a.ldx;
  if (a.norm) {
    // RMSNorm statistics of each token, in a fixed order (independent of nb and of the block).
#pragma unroll
    for (int b = 0; b < NB; ++b) {
      if (b < nb) {
        float s = 0.f;
        for (int i = tid; i < a.n_in; i += kWarps * 32) {
          const float v = x[size_t(b) * a.ldx + i];
          s = fmaf(v, v, s);
        }
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
        if (lane == 0) s_part[warp][b] = s;
      }
    }
    __syncthreads();
    if (tid < nb) {
      float s = 0.f;
#pragma unroll
      for (int w = 0; w < kWarps; ++w) s += s_part[w][tid];
      s_inv[tid] = rsqrtf(s / float(a.n_in) + a.eps);
    }
    __syncthreads();
  }
  int row = blockIdx.x * kWarps + warp;
  if (row >= a.total_rows) return;

  float acc[NB], acc2[NB];
#pragma unroll
  for (int b = 0; b < NB; ++b) acc[b] = acc2[b] = 0.f;
  int mi = 0;
  if (a.mode == 2) {
    row_dot<NB>(a.m[0], row, a.n_in, x, a.ldx, nb, a.norm, lane, acc);
    row_dot<NB>(a.m[1], row, a.n_in, x, a.ldx, nb, a.norm, lane, acc2);
  } else {
    while (mi + 1 < a.n_mats && row >= a.m[mi].n_out) {
      row -= a.m[mi].n_out;
      ++mi;
    }
    row_dot<NB>(a.m[mi], row, a.n_in, x, a.ldx, nb, a.norm, lane, acc);
  }
#pragma unroll
  for (int b = 0; b < NB; ++b) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      acc[b] += __shfl_xor_sync(0xffffffffu, acc[b], o);
      if (a.mode == 2) acc2[b] += __shfl_xor_sync(0xffffffffu, acc2[b], o);
    }
  }
  if (lane == 0) {
    const KMat& m = a.m[mi];
#pragma unroll
    for (int b = 0; b < NB; ++b) {
      if (b < nb) {
        const float inv = a.norm ? s_inv[b] : 1.f;
        float* y = m.y + size_t(b0 + b) * m.ldy + row;
        const float v = acc[b] * inv;
        if (a.mode == 0) {
          *y = v;
        } else if (a.mode == 1) {
          *y += v;
        } else {
          const float up = acc2[b] * inv;
          *y = v / (1.f + __expf(-v)) * up;
        }
      }
    }
  }
}

}  // namespace

void matvec(const MatvecArgs& a, cudaStream_t s) {
  if (a.nb <= 0) return;
  KArgs k{};
  if (a.n_mats < 1 || a.n_mats > 3 || (a.mode == MvMode::SwiGLU && a.n_mats != 2))
    throw Error("cuda: matvec: bad matrix count");
  if (a.ldx % 4 != 0 || a.n_in % 8 != 0) throw Error("cuda: matvec: misaligned input");
  k.n_mats = a.n_mats;
  k.total_rows = 0;
  for (int i = 0; i < a.n_mats; ++i) {
    const MvMat& m = a.m[i];
    if (!dev_type_supported(m.type) || a.n_in % dev_block_elems(m.type) != 0)
      throw Error("cuda: matvec: unsupported type or shape");
    k.m[i] = KMat{static_cast<const uint8_t*>(m.d_w), int(m.type), m.n_out, m.d_y, m.ldy,
                  dev_row_bytes(m.type, a.n_in)};
    k.total_rows += m.n_out;
  }
  if (a.mode == MvMode::SwiGLU) {
    if (a.m[0].n_out != a.m[1].n_out) throw Error("cuda: matvec: gate/up shapes differ");
    k.total_rows = a.m[0].n_out;
  }
  k.n_in = a.n_in;
  k.x = a.d_x;
  k.ldx = a.ldx;
  k.nb = a.nb;
  k.norm = a.d_norm;
  k.eps = a.eps;
  k.mode = int(a.mode);
  const unsigned gx = unsigned((k.total_rows + kWarps - 1) / kWarps);
  if (a.nb == 1) {
    k_matvec<1><<<dim3(gx, 1), kWarps * 32, 0, s>>>(k);
  } else {
    k_matvec<8><<<dim3(gx, unsigned((a.nb + 7) / 8)), kWarps * 32, 0, s>>>(k);
  }
  check(cudaGetLastError(), "matvec launch");
}

}  // namespace minnow::cuda
