// Int8 tensor-core GEMM on Q4_K / Q6_K weights (device layout) for batches of more than 32 tokens.
//
// quantize_q8: one block per token; optional RMSNorm (statistics in a fixed order that depends on n_in only),
// then each warp rounds 32-element blocks to int8 (scale amax / 127) and writes {d, d * sum(q)} per block.
//
// gemm_q8: a block of 4 warps computes a tile of 64 weight rows x BN tokens (BN = 32 or 64). The K loop walks
// the 256-element super-blocks: each stage copies the raw weight blocks of the 64 rows, the BN tokens' int8
// activations and their per-32 scales into shared memory with cp.async (double buffered), then every warp
// (32 rows x BN/2 tokens) decodes its A fragments straight from the raw blocks and issues
//   Q4_K: mma.m16n8k32 (one per 32-element sub-block; nibbles are the A operand as they are),
//   Q6_K: mma.m16n8k16 (one per 16-element scale group; A holds q - 32 as signed int8, exact),
// with the accumulator starting at the bit pattern of 1.5 * 2^23, so the int32 result read as f32 is
// 1.5 * 2^23 + dot exactly (|dot| < 2^22) and one subtraction converts it. Each sub-block's result is then
// scaled and added to a f32 accumulator in sub-block order:
//   Q4_K: acc += (d*sc * dx) * isum - dmin*m * (dx * sum x)      Q6_K: acc += (d*sc * dx) * isum
// The fragment layouts follow the PTX ISA (mma.m16n8k32 / m16n8k16 with .s8): lane = 4 * g + t,
//   A (16 x K, row): a0 = A[g][4t..4t+3], a1 = A[g+8][4t..], (k32 only: a2 = A[g][16+4t..], a3 = A[g+8][16+4t..])
//   B (K x 8, col):  b0 = B[4t..4t+3][g], (k32 only: b1 = B[16+4t..][g])
//   C (16 x 8):      c0 = C[g][2t], c1 = C[g][2t+1], c2 = C[g+8][2t], c3 = C[g+8][2t+1].
// Every output element goes through the same instruction sequence whatever the tile or the token count.
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdint>
#include <string>

#include "backend/cuda/cuda_kernels.h"
#include "backend/cuda/quant_dev.cuh"
#include "common/error.h"

namespace minnow::cuda {
namespace {

constexpr int kThreads = 128;     // 4 warps: 2 along the rows x 2 along the tokens
constexpr int kBM = 64;           // weight rows per block tile (SwiGLU: 32 gate rows + the same 32 up rows)
constexpr int kXStride = 272;     // bytes per token row of staged activations (256 + 16: no bank conflicts)
constexpr int kSStride = 80;      // bytes per token of staged scales (8 x {d, d*sum}, padded: no bank conflicts)
constexpr int kQ4Stride = 144;    // staged Q4_K block: 36 words, rows land 4 banks apart
constexpr int kQ6Stride = 240;    // staged Q6_K block (224 used): 60 words, rows land 4 banks apart
constexpr int kBiasBits = 0x4B400000;
constexpr float kBias = 12582912.0f;  // 1.5 * 2^23

__device__ __forceinline__ uint32_t smem_u32(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}
__device__ __forceinline__ void cp16(void* dst, const void* src) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(smem_u32(dst)), "l"(src));
}
__device__ __forceinline__ void cp_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N> __device__ __forceinline__ void cp_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

__device__ __forceinline__ uint32_t lds32(const uint8_t* p) { return *reinterpret_cast<const uint32_t*>(p); }

// d = a . b over 32 (k32) or 16 (k16) int8 values, accumulator preset to the bias: the result as f32 bits.
__device__ __forceinline__ void mma_k32(float (&d)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                                        uint32_t b0, uint32_t b1) {
  int r0, r1, r2, r3;
  asm volatile(
      "mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%10,%10,%10,%10};\n"
      : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1), "r"(kBiasBits));
  d[0] = __int_as_float(r0);
  d[1] = __int_as_float(r1);
  d[2] = __int_as_float(r2);
  d[3] = __int_as_float(r3);
}
__device__ __forceinline__ void mma_k16(float (&d)[4], uint32_t a0, uint32_t a1, uint32_t b0) {
  int r0, r1, r2, r3;
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5}, {%6}, {%7,%7,%7,%7};\n"
      : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
      : "r"(a0), "r"(a1), "r"(b0), "r"(kBiasBits));
  d[0] = __int_as_float(r0);
  d[1] = __int_as_float(r1);
  d[2] = __int_as_float(r2);
  d[3] = __int_as_float(r3);
}

// Four 6-bit values (0..63) per word to signed int8 value - 32 (no carries between bytes).
__device__ __forceinline__ uint32_t minus32(uint32_t v) { return ((v | 0x80808080u) - 0x20202020u) ^ 0x80808080u; }

struct KArgs {
  const uint8_t* w[3];  // [n_out][row bytes] device layout
  int type[3];
  int n_out[3];
  float* y[3];  // [nt][ldy]
  int ldy[3];
  int tiles[3];  // row tiles of each matrix (SwiGLU: of 32 rows)
  int n_mats;
  int n_in;
  const int8_t* xq;  // [nt][n_in]
  const float* xs;   // [nt][n_in/32][2]
  int nt;
  int mode;
  int wstride;  // staged bytes per weight row
};

// One warp's share of one 256-element stage: rows [rw0, rw0 + 32) of the tile, tokens [tn0, tn0 + NT*8).
template <int NT>
__device__ __forceinline__ void stage_q4k(const uint8_t* sW, int wstride, const uint8_t* sX, const float* sS, int rw0,
                                          int tn0, int g, int t, float (&acc)[2][NT][4]) {
#pragma unroll 1
  for (int c = 0; c < 4; ++c) {  // sub-blocks 2c (low nibbles) and 2c+1 (high nibbles)
    uint32_t a[2][4];
    float ds[2][2][2], dm[2][2][2];  // [m tile][row g / g+8][sub-block]
#pragma unroll
    for (int mt = 0; mt < 2; ++mt) {
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const uint8_t* blk = sW + (rw0 + 16 * mt + g + 8 * h) * wstride;
        a[mt][h] = lds32(blk + 16 + 32 * c + 4 * t);
        a[mt][2 + h] = lds32(blk + 16 + 32 * c + 16 + 4 * t);
        const uint32_t dmw = lds32(blk);
        const float d = h2f(uint16_t(dmw & 0xFFFF)), dmin = h2f(uint16_t(dmw >> 16));
        float sc0, m0, sc1, m1;
        k4_scale_min(blk + 4, 2 * c, sc0, m0);
        k4_scale_min(blk + 4, 2 * c + 1, sc1, m1);
        ds[mt][h][0] = d * sc0;
        dm[mt][h][0] = dmin * m0;
        ds[mt][h][1] = d * sc1;
        dm[mt][h][1] = dmin * m1;
      }
    }
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
      const uint8_t* xr = sX + (tn0 + 8 * nt + g) * kXStride + 64 * c + 4 * t;
      const uint32_t b00 = lds32(xr), b01 = lds32(xr + 16), b10 = lds32(xr + 32), b11 = lds32(xr + 48);
      const int tk = tn0 + 8 * nt + 2 * t;  // this lane's two output tokens: tk, tk + 1
      const float2 s00 = *reinterpret_cast<const float2*>(sS + tk * (kSStride / 4) + 2 * (2 * c));
      const float2 s01 = *reinterpret_cast<const float2*>(sS + tk * (kSStride / 4) + 2 * (2 * c + 1));
      const float2 s10 = *reinterpret_cast<const float2*>(sS + (tk + 1) * (kSStride / 4) + 2 * (2 * c));
      const float2 s11 = *reinterpret_cast<const float2*>(sS + (tk + 1) * (kSStride / 4) + 2 * (2 * c + 1));
#pragma unroll
      for (int mt = 0; mt < 2; ++mt) {
#pragma unroll
        for (int sub = 0; sub < 2; ++sub) {
          const uint32_t sh = 4 * sub;
          float r[4];
          mma_k32(r, (a[mt][0] >> sh) & 0x0F0F0F0Fu, (a[mt][1] >> sh) & 0x0F0F0F0Fu, (a[mt][2] >> sh) & 0x0F0F0F0Fu,
                  (a[mt][3] >> sh) & 0x0F0F0F0Fu, sub ? b10 : b00, sub ? b11 : b01);
          const float2 x0 = sub ? s01 : s00, x1 = sub ? s11 : s10;  // tokens tk, tk+1: {dx, dx * sum}
#pragma unroll
          for (int i = 0; i < 4; ++i) {
            const int h = i >> 1;
            const float2 xv = (i & 1) ? x1 : x0;
            const float f = __fsub_rn(r[i], kBias);
            float v = __fmaf_rn(__fmul_rn(ds[mt][h][sub], xv.x), f, acc[mt][nt][i]);
            acc[mt][nt][i] = __fmaf_rn(-dm[mt][h][sub], xv.y, v);
          }
        }
      }
    }
  }
}

template <int NT>
__device__ __forceinline__ void stage_q6k(const uint8_t* sW, int wstride, const uint8_t* sX, const float* sS, int rw0,
                                          int tn0, int g, int t, float (&acc)[2][NT][4]) {
#pragma unroll 1
  for (int n = 0; n < 2; ++n) {
#pragma unroll 1
    for (int hh = 0; hh < 2; ++hh) {
      // Groups G = 8n + 2q + hh for q = 0..3 share these words: ql at 64n + 32(q&1) + 16hh + 4t, qh at
      // 128 + 32n + 16hh + 4t (elements 128n + 32q + 16hh + 4t .. +3).
      uint32_t lo0[2][2], lo1[2][2], hi[2][2];
      float dsc[2][2];  // d of the block, [m tile][row g / g+8]
#pragma unroll
      for (int mt = 0; mt < 2; ++mt) {
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const uint8_t* blk = sW + (rw0 + 16 * mt + g + 8 * h) * wstride;
          lo0[mt][h] = lds32(blk + 64 * n + 16 * hh + 4 * t);
          lo1[mt][h] = lds32(blk + 64 * n + 32 + 16 * hh + 4 * t);
          hi[mt][h] = lds32(blk + 128 + 32 * n + 16 * hh + 4 * t);
          dsc[mt][h] = h2f(*reinterpret_cast<const uint16_t*>(blk + 208));
        }
      }
#pragma unroll
      for (int q = 0; q < 4; ++q) {
        const int G = 8 * n + 2 * q + hh;
        uint32_t a[2][2];
        float ds[2][2];
#pragma unroll
        for (int mt = 0; mt < 2; ++mt) {
#pragma unroll
          for (int h = 0; h < 2; ++h) {
            const uint32_t src = (q & 1) ? lo1[mt][h] : lo0[mt][h];
            const uint32_t lo = (q >= 2 ? (src >> 4) : src) & 0x0F0F0F0Fu;
            const uint32_t hb = ((hi[mt][h] >> (2 * q)) & 0x03030303u) << 4;
            a[mt][h] = minus32(lo | hb);
            const uint8_t* blk = sW + (rw0 + 16 * mt + g + 8 * h) * wstride;
            ds[mt][h] = dsc[mt][h] * float(reinterpret_cast<const int8_t*>(blk + 192)[G]);
          }
        }
#pragma unroll
        for (int nt = 0; nt < NT; ++nt) {
          const uint32_t b0 = lds32(sX + (tn0 + 8 * nt + g) * kXStride + 16 * G + 4 * t);
          const int tk = tn0 + 8 * nt + 2 * t;
          const float dx0 = sS[tk * (kSStride / 4) + 2 * (G >> 1)];
          const float dx1 = sS[(tk + 1) * (kSStride / 4) + 2 * (G >> 1)];
#pragma unroll
          for (int mt = 0; mt < 2; ++mt) {
            float r[4];
            mma_k16(r, a[mt][0], a[mt][1], b0);
#pragma unroll
            for (int i = 0; i < 4; ++i) {
              const float f = __fsub_rn(r[i], kBias);
              acc[mt][nt][i] = __fmaf_rn(__fmul_rn(ds[mt][i >> 1], (i & 1) ? dx1 : dx0), f, acc[mt][nt][i]);
            }
          }
        }
      }
    }
  }
}

template <int BN>
__global__ void __launch_bounds__(kThreads) k_gemm_q8(KArgs a) {
  constexpr int NT = BN / 16;  // n8 tiles per warp (each warp covers BN / 2 tokens)
  extern __shared__ __align__(16) uint8_t smem[];
  const int tid = int(threadIdx.x), warp = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
  const int wm = warp & 1, wn = warp >> 1;
  const bool swiglu = a.mode == 2;

  // Which matrix and rows this block covers.
  int mi = 0, tile = int(blockIdx.y);
  while (mi + 1 < a.n_mats && tile >= a.tiles[mi]) tile -= a.tiles[mi++];
  const int rows_per_tile = swiglu ? kBM / 2 : kBM;
  const int row0 = tile * rows_per_tile;
  const int tok0 = int(blockIdx.x) * BN;
  const int n_out = a.n_out[mi];
  const int nsb = a.n_in / 256;
  const int nblk32 = a.n_in / 32;

  const size_t stage_bytes = size_t(kBM) * a.wstride + size_t(BN) * (kXStride + kSStride);
  auto sW = [&](int st) { return smem + st * stage_bytes; };
  auto sX = [&](int st) { return smem + st * stage_bytes + size_t(kBM) * a.wstride; };
  auto sS = [&](int st) {
    return reinterpret_cast<float*>(smem + st * stage_bytes + size_t(kBM) * a.wstride + size_t(BN) * kXStride);
  };

  auto load_stage = [&](int st, int kb) {
    uint8_t* w = sW(st);
    for (int i = tid; i < kBM * 16; i += kThreads) {
      const int r = i >> 4, c = i & 15;
      const int m = swiglu ? (r >= kBM / 2 ? 1 : 0) : mi;
      const int rr = min(row0 + (swiglu ? (r & (kBM / 2 - 1)) : r), n_out - 1);
      const int bb = a.type[m] == T_Q6_K ? 224 : 144;
      if (c * 16 < bb) cp16(w + r * a.wstride + c * 16, a.w[m] + (size_t(rr) * nsb + kb) * bb + c * 16);
    }
    uint8_t* x = sX(st);
    for (int i = tid; i < BN * 16; i += kThreads) {
      const int tk = i >> 4, c = i & 15;
      const int tt = min(tok0 + tk, a.nt - 1);
      cp16(x + tk * kXStride + c * 16, a.xq + size_t(tt) * a.n_in + kb * 256 + c * 16);
    }
    uint8_t* s = reinterpret_cast<uint8_t*>(sS(st));
    for (int i = tid; i < BN * 4; i += kThreads) {
      const int tk = i >> 2, c = i & 3;
      const int tt = min(tok0 + tk, a.nt - 1);
      cp16(s + tk * kSStride + c * 16, a.xs + (size_t(tt) * nblk32 + kb * 8) * 2 + c * 4);
    }
    cp_commit();
  };

  float acc[2][NT][4];
#pragma unroll
  for (int mt = 0; mt < 2; ++mt)
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int i = 0; i < 4; ++i) acc[mt][nt][i] = 0.f;

  const int my_type = a.type[swiglu ? wm : mi];
  load_stage(0, 0);
  for (int kb = 0; kb < nsb; ++kb) {
    if (kb + 1 < nsb) {
      load_stage((kb + 1) & 1, kb + 1);
      cp_wait<1>();
    } else {
      cp_wait<0>();
    }
    __syncthreads();
    const int st = kb & 1;
    if (my_type == T_Q6_K)
      stage_q6k<NT>(sW(st), a.wstride, sX(st), sS(st), 32 * wm, (BN / 2) * wn, g, t, acc);
    else
      stage_q4k<NT>(sW(st), a.wstride, sX(st), sS(st), 32 * wm, (BN / 2) * wn, g, t, acc);
    __syncthreads();
  }

  // Epilogue. Element (mt, nt, i): row 32*wm + 16*mt + g + 8*(i>>1) of the tile, token (BN/2)*wn + 8*nt + 2t + (i&1).
  if (swiglu) {
    float* ex = reinterpret_cast<float*>(smem);  // [2][NT][4][64 lanes of the two token-warps]
    if (wm == 1) {
#pragma unroll
      for (int mt = 0; mt < 2; ++mt)
#pragma unroll
        for (int nt = 0; nt < NT; ++nt)
#pragma unroll
          for (int i = 0; i < 4; ++i) ex[((mt * NT + nt) * 4 + i) * 64 + wn * 32 + lane] = acc[mt][nt][i];
    }
    __syncthreads();
    if (wm == 1) return;
#pragma unroll
    for (int mt = 0; mt < 2; ++mt)
#pragma unroll
      for (int nt = 0; nt < NT; ++nt)
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          const int row = row0 + 16 * mt + g + 8 * (i >> 1);
          const int tok = tok0 + (BN / 2) * wn + 8 * nt + 2 * t + (i & 1);
          if (row < n_out && tok < a.nt) {
            const float gv = acc[mt][nt][i];
            const float uv = ex[((mt * NT + nt) * 4 + i) * 64 + wn * 32 + lane];
            a.y[0][size_t(tok) * a.ldy[0] + row] = gv / (1.0f + __expf(-gv)) * uv;
          }
        }
    return;
  }
  float* y = a.y[mi];
  const int ldy = a.ldy[mi];
#pragma unroll
  for (int mt = 0; mt < 2; ++mt)
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int row = row0 + 32 * wm + 16 * mt + g + 8 * (i >> 1);
        const int tok = tok0 + (BN / 2) * wn + 8 * nt + 2 * t + (i & 1);
        if (row < n_out && tok < a.nt) {
          float* p = y + size_t(tok) * ldy + row;
          *p = a.mode == 1 ? *p + acc[mt][nt][i] : acc[mt][nt][i];
        }
      }
}

__global__ void __launch_bounds__(256) k_quantize_q8(const float* __restrict__ x, int ldx, int n_in,
                                                     const float* __restrict__ norm, float eps, int8_t* __restrict__ q,
                                                     float* __restrict__ s) {
  __shared__ float red[8];
  const int tok = int(blockIdx.x), tid = int(threadIdx.x), warp = tid >> 5, lane = tid & 31;
  const float* xr = x + size_t(tok) * ldx;
  float inv = 1.f;
  if (norm) {
    float ss = 0.f;
    for (int i = tid; i < n_in; i += 256) ss = __fmaf_rn(xr[i], xr[i], ss);
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
    if (lane == 0) red[warp] = ss;
    __syncthreads();
    float tot = 0.f;
#pragma unroll
    for (int w = 0; w < 8; ++w) tot += red[w];
    inv = rsqrtf(tot / float(n_in) + eps);
  }
  const int nblk = n_in / 32;
  for (int j = warp; j < nblk; j += 8) {
    const int i = 32 * j + lane;
    float v = xr[i];
    if (norm) v = __fmul_rn(__fmul_rn(v, inv), norm[i]);
    float amax = fabsf(v);
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
    const float d = amax / 127.f;
    const float id = d > 0.f ? 127.f / amax : 0.f;
    const int qv = __float2int_rn(v * id);
    int sum = qv;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    q[size_t(tok) * n_in + i] = int8_t(qv);
    if (lane == 0) {
      s[(size_t(tok) * nblk + j) * 2] = d;
      s[(size_t(tok) * nblk + j) * 2 + 1] = d * float(sum);
    }
  }
}

template <int BN>
void launch_gemm(const KArgs& k, int row_tiles, cudaStream_t s) {
  const size_t smem = 2 * (size_t(kBM) * k.wstride + size_t(BN) * (kXStride + kSStride));
  static bool attr_set = false;
  if (!attr_set) {
    const size_t max_smem = 2 * (size_t(kBM) * kQ6Stride + size_t(BN) * (kXStride + kSStride));
    check(cudaFuncSetAttribute(k_gemm_q8<BN>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(max_smem)),
          "gemm_q8 smem attribute");
    attr_set = true;
  }
  const dim3 grid(unsigned((k.nt + BN - 1) / BN), unsigned(row_tiles));
  k_gemm_q8<BN><<<grid, kThreads, smem, s>>>(k);
  check(cudaGetLastError(), "gemm_q8 launch");
}

}  // namespace

bool gemm_q8_supported(GgmlType t) { return t == GgmlType::Q4_K || t == GgmlType::Q6_K; }

void quantize_q8(const float* d_x, int ldx, int nt, int n_in, const float* d_norm, float eps, int8_t* d_q, float* d_s,
                 cudaStream_t s) {
  if (nt <= 0) return;
  if (n_in % 32 != 0) throw Error("quantize_q8: n_in must be a multiple of 32");
  k_quantize_q8<<<unsigned(nt), 256, 0, s>>>(d_x, ldx, n_in, d_norm, eps, d_q, d_s);
  check(cudaGetLastError(), "quantize_q8 launch");
}

void gemm_q8(const GemmQ8Args& a, cudaStream_t s) {
  if (a.nt <= 0) return;
  if (a.n_in <= 0 || a.n_in % 256 != 0) throw Error("gemm_q8: n_in must be a positive multiple of 256");
  const bool swiglu = a.mode == GemmMode::SwiGLU;
  const int n_mats = swiglu ? 2 : a.n_mats;
  if (n_mats < 1 || n_mats > 3) throw Error("gemm_q8: 1 to 3 matrices");
  if (swiglu && a.m[0].n_out != a.m[1].n_out) throw Error("gemm_q8: gate and up differ in size");
  KArgs k{};
  bool any_q6 = false;
  int row_tiles = 0;
  for (int i = 0; i < n_mats; ++i) {
    const GemmMat& m = a.m[i];
    if (!gemm_q8_supported(m.type)) throw Error("gemm_q8: unsupported weight type " + std::string(type_name(m.type)));
    if (m.n_out <= 0) throw Error("gemm_q8: empty matrix");
    k.w[i] = static_cast<const uint8_t*>(m.d_w);
    k.type[i] = int(m.type);
    k.n_out[i] = m.n_out;
    k.y[i] = m.d_y;
    k.ldy[i] = m.ldy;
    k.tiles[i] = swiglu ? (m.n_out + kBM / 2 - 1) / (kBM / 2) : (m.n_out + kBM - 1) / kBM;
    any_q6 = any_q6 || m.type == GgmlType::Q6_K;
    if (!swiglu) row_tiles += k.tiles[i];
  }
  if (swiglu) row_tiles = k.tiles[0];
  k.n_mats = swiglu ? 1 : n_mats;  // SwiGLU: one row-tile range; the second matrix is read alongside
  k.n_in = a.n_in;
  k.xq = a.d_xq;
  k.xs = a.d_xs;
  k.nt = a.nt;
  k.mode = int(a.mode);
  k.wstride = any_q6 ? kQ6Stride : kQ4Stride;
  // Tokens per tile: 64 (weights staged half as often) unless that leaves the card with too few blocks.
  static int n_sm = 0;
  if (n_sm == 0) {
    int dev = 0;
    check(cudaGetDevice(&dev), "cudaGetDevice");
    check(cudaDeviceGetAttribute(&n_sm, cudaDevAttrMultiProcessorCount, dev), "cudaDeviceGetAttribute");
  }
  const long blocks64 = long(row_tiles) * ((a.nt + 63) / 64);
  if (blocks64 >= 2L * n_sm) launch_gemm<64>(k, row_tiles, s);
  else launch_gemm<32>(k, row_tiles, s);
}

}  // namespace minnow::cuda
