// Int8 tensor-core GEMM on Q4_K / Q6_K weights (device layout) for batches of more than 32 tokens.
//
// quantize_q8: one block per token; optional RMSNorm (statistics in a fixed order that depends on n_in only),
// then each warp rounds 32-element blocks to int8 (scale amax / 127) and writes {d, d * sum(q)} per block. The
// int8 values of every 64 elements are stored permuted (q8_pos in cuda_kernels.h) so that one 16-byte shared
// memory load gives a lane all four B-fragment registers of two consecutive 32-element sub-blocks.
//
// gemm_q8: a block of 8 warps computes a tile of 64 weight rows x BN tokens (BN = 32 or 64). The K loop walks
// the 256-element super-blocks: each stage copies the raw weight blocks of the 64 rows, the BN tokens' int8
// activations and their per-32 scales into shared memory with cp.async (double buffered); the block then
// decodes the weight scales of the stage to f32 once (shared memory), and every warp computes 32 rows x BN/2
// tokens over one half of each super-block (warps 0-3 elements 0-127, warps 4-7 elements 128-255; the two
// halves' sums are added at the end, always in that order). A fragments come straight from the raw blocks:
//   Q4_K: mma.m16n8k32 per 32-element sub-block (the nibbles are the A operand as they are),
//   Q6_K: mma.m16n8k16 per 16-element scale group (A holds q - 32 as signed int8, exact),
// with the accumulator starting at the bit pattern of 1.5 * 2^23, so the int32 result read as f32 is
// 1.5 * 2^23 + dot exactly (|dot| < 2^22) and one subtraction converts it. Each result is then scaled and added
// to a f32 accumulator in K order:
//   Q4_K: acc += (d*sc * dx) * isum - dmin*m * (dx * sum x)
//   Q6_K: acc += dx * (d*sc_a * isum_a + d*sc_b * isum_b)     (the two 16-groups of one 32-element block)
// Fragment layouts (PTX ISA, mma.m16n8k32 / m16n8k16 with .s8; lane = 4 * g + t):
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

constexpr int kThreads = 256;   // 8 warps: 2 along the rows x 2 along the tokens x 2 halves of each super-block
constexpr int kBM = 64;         // weight rows per block tile (SwiGLU: 32 gate rows + the same 32 up rows)
constexpr int kXStride = 320;   // bytes per token of staged activations (256 + 64: 16-byte loads without conflicts)
constexpr int kSStride = 20;    // floats per token of staged per-32 scales (8 x {d, d*sum} + 4 of padding)
constexpr int kQ4Stride = 144;  // staged Q4_K block: 36 words, rows land 4 banks apart
constexpr int kQ6Stride = 240;  // staged Q6_K block (224 used): 60 words, rows land 4 banks apart
constexpr int kScStride = 16;   // floats per row of decoded weight scales (Q4_K: {d*sc, dmin*m} x 8; Q6_K: d*sc x 16)
constexpr int kBiasBits = 0x4B400000;
constexpr float kBias = 12582912.0f;  // 1.5 * 2^23

__device__ __forceinline__ uint32_t smem_u32(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}
__device__ __forceinline__ void cp16(void* dst, const void* src) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(smem_u32(dst)), "l"(src));
}
__device__ __forceinline__ void cp_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N> __device__ __forceinline__ void cp_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory"); }

__device__ __forceinline__ uint32_t lds32(const uint8_t* p) { return *reinterpret_cast<const uint32_t*>(p); }
__device__ __forceinline__ uint4 lds128(const void* p) { return *reinterpret_cast<const uint4*>(p); }
__device__ __forceinline__ float4 ldf4(const float* p) { return *reinterpret_cast<const float4*>(p); }
__device__ __forceinline__ float2 ldf2(const float* p) { return *reinterpret_cast<const float2*>(p); }

// d = a . b over 32 (k32) or 16 (k16) int8 values, accumulator preset to the bias: the result as f32 bits.
__device__ __forceinline__ void mma_k32(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  int r0, r1, r2, r3;
  asm(
      "mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%10,%10,%10,%10};\n"
      : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1), "r"(kBiasBits));
  d[0] = __int_as_float(r0);
  d[1] = __int_as_float(r1);
  d[2] = __int_as_float(r2);
  d[3] = __int_as_float(r3);
}
__device__ __forceinline__ void mma_k16(float (&d)[4], uint32_t a0, uint32_t a1, uint32_t b0) {
  int r0, r1, r2, r3;
  asm(
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
__device__ __forceinline__ uint32_t word_of(const uint4& v, int i) { return i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w; }

struct KArgs {
  const uint8_t* w[3];  // [n_out][row bytes] device layout
  int type[3];
  int n_out[3];
  float* y[3];  // [nt][ldy]
  int ldy[3];
  int tiles[3];  // row tiles of each matrix (SwiGLU: of 32 rows)
  int n_mats;
  int n_in;
  const int8_t* xq;  // [nt][n_in], permuted per 64 (q8_pos)
  const float* xs;   // [nt][n_in/32][2]
  int nt;
  int mode;
  int wstride;      // staged bytes per weight row
  int8_t* q_out;    // SwiGLUQ8: [nt][n_out] int8, permuted per 64 (q8_pos)
  float* s_out;     // SwiGLUQ8: [nt][n_out/32][2]
};

// q8_pos of cuda_kernels.h (device copy).
__device__ __forceinline__ int q8_pos_dev(int i) {
  const int k = i & 31;
  return (i & ~63) + 16 * ((k & 15) >> 2) + 8 * ((i >> 5) & 1) + 4 * (k >> 4) + (k & 3);
}

// One warp, one stage, Q4_K: rows [rw, rw + 32) of the tile, tokens [tn, tn + 8*NT), elements [128kz, 128kz+128).
template <int NT>
__device__ __forceinline__ void stage_q4k(const uint8_t* sW, int ws, const float* sSc, const uint8_t* sX,
                                          const float* sS, int rw, int tn, int kz, int g, int t,
                                          float (&acc)[2][NT][4]) {
#pragma unroll 1
  for (int cc = 0; cc < 2; ++cc) {
    const int c = 2 * kz + cc;  // sub-blocks 2c (low nibbles) and 2c+1 (high nibbles)
    uint32_t al[2][4], ah[2][4];
    float4 sc[2][2];  // [m tile][row g / g+8]: {d*sc, dmin*m} of sub-blocks 2c, 2c+1
#pragma unroll
    for (int mt = 0; mt < 2; ++mt) {
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int row = rw + 16 * mt + g + 8 * h;
        const uint8_t* blk = sW + row * ws + 16 + 32 * c + 4 * t;
        const uint32_t w0 = lds32(blk), w1 = lds32(blk + 16);
        al[mt][h] = w0 & 0x0F0F0F0Fu;
        al[mt][2 + h] = w1 & 0x0F0F0F0Fu;
        ah[mt][h] = (w0 >> 4) & 0x0F0F0F0Fu;
        ah[mt][2 + h] = (w1 >> 4) & 0x0F0F0F0Fu;
        sc[mt][h] = ldf4(sSc + row * kScStride + 4 * c);
      }
    }
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
      const uint4 b = lds128(sX + (tn + 8 * nt + g) * kXStride + 64 * c + 16 * t);
      const int tk = tn + 8 * nt + 2 * t;  // this lane's output tokens: tk, tk + 1
      const float4 s0 = ldf4(sS + tk * kSStride + 4 * c), s1 = ldf4(sS + (tk + 1) * kSStride + 4 * c);
#pragma unroll
      for (int mt = 0; mt < 2; ++mt) {
        float r0[4], r1[4];
        mma_k32(r0, al[mt], b.x, b.y);
        mma_k32(r1, ah[mt], b.z, b.w);
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          const float4 w = sc[mt][i >> 1];
          const float4 x = (i & 1) ? s1 : s0;  // {dx, dx*sum} of sub-blocks 2c, 2c+1
          float v = acc[mt][nt][i];
          v = __fmaf_rn(__fmul_rn(w.x, x.x), __fsub_rn(r0[i], kBias), v);
          v = __fmaf_rn(-w.y, x.y, v);
          v = __fmaf_rn(__fmul_rn(w.z, x.z), __fsub_rn(r1[i], kBias), v);
          v = __fmaf_rn(-w.w, x.w, v);
          acc[mt][nt][i] = v;
        }
      }
    }
  }
}

// One warp, one stage, Q6_K: elements [128n, 128n + 128) with n = kz.
template <int NT>
__device__ __forceinline__ void stage_q6k(const uint8_t* sW, int ws, const float* sSc, const uint8_t* sX,
                                          const float* sS, int rw, int tn, int n, int g, int t,
                                          float (&acc)[2][NT][4]) {
  // Per row and half hh: ql words at 64n + 16hh + 4t (q = 0, 2) and 64n + 32 + 16hh + 4t (q = 1, 3), qh word at
  // 128 + 32n + 16hh + 4t; element 128n + 32q + 16hh + 4t + i is (ql >> 4*(q>>1)) & 15 | ((qh >> 2q) & 3) << 4.
  uint32_t lo0[2][2][2], lo1[2][2][2], hi[2][2][2];  // [m tile][row g / g+8][hh]
#pragma unroll
  for (int mt = 0; mt < 2; ++mt)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const uint8_t* blk = sW + (rw + 16 * mt + g + 8 * h) * ws;
#pragma unroll
      for (int hh = 0; hh < 2; ++hh) {
        lo0[mt][h][hh] = lds32(blk + 64 * n + 16 * hh + 4 * t);
        lo1[mt][h][hh] = lds32(blk + 64 * n + 32 + 16 * hh + 4 * t);
        hi[mt][h][hh] = lds32(blk + 128 + 32 * n + 16 * hh + 4 * t);
      }
    }
#pragma unroll 1
  for (int qp = 0; qp < 2; ++qp) {  // 32-element blocks j = 4n + 2qp + sub (sub = 0, 1): one 64-element pair
    const int P = 2 * n + qp;
    uint32_t a[2][2][2][2];  // [sub][m tile][hh][row g / g+8]
    float2 ds[2][2][2];      // [sub][m tile][row g / g+8]: d*sc of the groups hh = 0, 1
#pragma unroll
    for (int sub = 0; sub < 2; ++sub) {
      const int q = 2 * qp + sub;
#pragma unroll
      for (int mt = 0; mt < 2; ++mt)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
#pragma unroll
          for (int hh = 0; hh < 2; ++hh) {
            const uint32_t src = sub ? lo1[mt][h][hh] : lo0[mt][h][hh];
            const uint32_t lo = (qp ? (src >> 4) : src) & 0x0F0F0F0Fu;
            const uint32_t hb = ((hi[mt][h][hh] >> (2 * q)) & 0x03030303u) << 4;
            a[sub][mt][hh][h] = minus32(lo | hb);
          }
          ds[sub][mt][h] = ldf2(sSc + (rw + 16 * mt + g + 8 * h) * kScStride + 8 * n + 2 * q);
        }
    }
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
      const uint4 b = lds128(sX + (tn + 8 * nt + g) * kXStride + 64 * P + 16 * t);
      const int tk = tn + 8 * nt + 2 * t;
      const float4 s0 = ldf4(sS + tk * kSStride + 4 * P), s1 = ldf4(sS + (tk + 1) * kSStride + 4 * P);
#pragma unroll
      for (int sub = 0; sub < 2; ++sub) {
#pragma unroll
        for (int mt = 0; mt < 2; ++mt) {
          float ra[4], rb[4];
          mma_k16(ra, a[sub][mt][0][0], a[sub][mt][0][1], word_of(b, 2 * sub));
          mma_k16(rb, a[sub][mt][1][0], a[sub][mt][1][1], word_of(b, 2 * sub + 1));
#pragma unroll
          for (int i = 0; i < 4; ++i) {
            const float2 w = ds[sub][mt][i >> 1];
            const float4 x = (i & 1) ? s1 : s0;
            const float dx = sub ? x.z : x.x;
            float u = __fmul_rn(w.x, __fsub_rn(ra[i], kBias));
            u = __fmaf_rn(w.y, __fsub_rn(rb[i], kBias), u);
            acc[mt][nt][i] = __fmaf_rn(dx, u, acc[mt][nt][i]);
          }
        }
      }
    }
  }
}

template <int BN>
__global__ void __launch_bounds__(kThreads, 2) k_gemm_q8(KArgs a) {
  constexpr int NT = BN / 16;  // n8 tiles per warp (each warp covers BN / 2 tokens)
  extern __shared__ __align__(16) uint8_t smem[];
  const int tid = int(threadIdx.x), warp = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
  const int wm = warp & 1, wn = (warp >> 1) & 1, kz = warp >> 2;
  const bool swiglu = a.mode == 2 || a.mode == 3;

  // Which matrix and rows this block covers.
  int mi = 0, tile = int(blockIdx.y);
  while (mi + 1 < a.n_mats && tile >= a.tiles[mi]) tile -= a.tiles[mi++];
  const int row0 = tile * (swiglu ? kBM / 2 : kBM);
  const int tok0 = int(blockIdx.x) * BN;
  const int n_out = a.n_out[mi];
  const int nsb = a.n_in / 256;
  const int nblk32 = a.n_in / 32;

  const size_t stage_bytes = size_t(kBM) * a.wstride + size_t(BN) * (kXStride + kSStride * 4);
  auto sW = [&](int st) { return smem + st * stage_bytes; };
  auto sX = [&](int st) { return smem + st * stage_bytes + size_t(kBM) * a.wstride; };
  auto sS = [&](int st) {
    return reinterpret_cast<float*>(smem + st * stage_bytes + size_t(kBM) * a.wstride + size_t(BN) * kXStride);
  };
  float* sSc = reinterpret_cast<float*>(smem + 2 * stage_bytes);  // [kBM][kScStride]

  auto row_mat = [&](int r) { return swiglu ? (r >= kBM / 2 ? 1 : 0) : mi; };
  auto load_stage = [&](int st, int kb) {
    uint8_t* w = sW(st);
    for (int i = tid; i < kBM * 16; i += kThreads) {
      const int r = i >> 4, c = i & 15;
      const int m = row_mat(r);
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
    float* s = sS(st);
    for (int i = tid; i < BN * 4; i += kThreads) {
      const int tk = i >> 2, c = i & 3;
      const int tt = min(tok0 + tk, a.nt - 1);
      cp16(s + tk * kSStride + c * 4, a.xs + (size_t(tt) * nblk32 + kb * 8) * 2 + c * 4);
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
    // Decode this stage's weight scales once: 64 rows x 8 items (Q4_K: one sub-block's {d*sc, dmin*m};
    // Q6_K: two groups' d*sc).
    for (int i = tid; i < kBM * 8; i += kThreads) {
      const int r = i >> 3, j = i & 7;
      const uint8_t* blk = sW(st) + r * a.wstride;
      float* o = sSc + r * kScStride + 2 * j;
      if (a.type[row_mat(r)] == T_Q6_K) {
        const float d = h2f(*reinterpret_cast<const uint16_t*>(blk + 208));
        const int8_t* scs = reinterpret_cast<const int8_t*>(blk + 192);
        o[0] = d * float(scs[2 * j]);
        o[1] = d * float(scs[2 * j + 1]);
      } else {
        const uint32_t dm = lds32(blk);
        float sc, m;
        k4_scale_min(blk + 4, j, sc, m);
        o[0] = h2f(uint16_t(dm & 0xFFFF)) * sc;
        o[1] = h2f(uint16_t(dm >> 16)) * m;
      }
    }
    __syncthreads();
    if (my_type == T_Q6_K)
      stage_q6k<NT>(sW(st), a.wstride, sSc, sX(st), sS(st), 32 * wm, (BN / 2) * wn, kz, g, t, acc);
    else
      stage_q4k<NT>(sW(st), a.wstride, sSc, sX(st), sS(st), 32 * wm, (BN / 2) * wn, kz, g, t, acc);
    __syncthreads();
  }

  // The two halves of K are added (first half + second half), then the epilogue. Element (mt, nt, i) of a warp:
  // row 32*wm + 16*mt + g + 8*(i>>1) of the tile, token (BN/2)*wn + 8*nt + 2t + (i&1).
  float* ex = reinterpret_cast<float*>(smem);  // [8 warps][2*NT*4 elements][32 lanes]
  constexpr int NE = 2 * NT * 4;
  const bool writer = kz == 1 || (swiglu && wm == 1);
  if (writer) {
#pragma unroll
    for (int mt = 0; mt < 2; ++mt)
#pragma unroll
      for (int nt = 0; nt < NT; ++nt)
#pragma unroll
        for (int i = 0; i < 4; ++i) ex[(warp * NE + (mt * NT + nt) * 4 + i) * 32 + lane] = acc[mt][nt][i];
  }
  __syncthreads();
  if (kz == 1 || (swiglu && wm == 1)) return;
  if (a.mode == 3) {
    // silu(gate) * up, rounded to int8 per token and 32 rows (this warp holds all 32 rows of the tile for its
    // tokens: 4 per lane, 8 lanes): the same arithmetic as quantize_q8 on the f32 values.
    const int j = row0 / 32;
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int par = 0; par < 2; ++par) {
        float o[2][2];
        float amax = 0.f;
#pragma unroll
        for (int mt = 0; mt < 2; ++mt)
#pragma unroll
          for (int h = 0; h < 2; ++h) {
            const int e = (mt * NT + nt) * 4 + 2 * h + par;
            const float v = __fadd_rn(acc[mt][nt][2 * h + par], ex[((warp + 4) * NE + e) * 32 + lane]);
            const float u = __fadd_rn(ex[((warp + 1) * NE + e) * 32 + lane], ex[((warp + 5) * NE + e) * 32 + lane]);
            o[mt][h] = v / (1.0f + __expf(-v)) * u;
            amax = fmaxf(amax, fabsf(o[mt][h]));
          }
#pragma unroll
        for (int m = 4; m < 32; m <<= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, m));
        const float d = amax / 127.f;
        const float id = d > 0.f ? 127.f / amax : 0.f;
        int qv[2][2], sum = 0;
#pragma unroll
        for (int mt = 0; mt < 2; ++mt)
#pragma unroll
          for (int h = 0; h < 2; ++h) {
            qv[mt][h] = __float2int_rn(o[mt][h] * id);
            sum += qv[mt][h];
          }
#pragma unroll
        for (int m = 4; m < 32; m <<= 1) sum += __shfl_xor_sync(0xffffffffu, sum, m);
        const int tok = tok0 + (BN / 2) * wn + 8 * nt + 2 * t + par;
        if (tok < a.nt) {
          int8_t* qrow = a.q_out + size_t(tok) * n_out;
#pragma unroll
          for (int mt = 0; mt < 2; ++mt)
#pragma unroll
            for (int h = 0; h < 2; ++h) qrow[q8_pos_dev(row0 + 16 * mt + 8 * h + g)] = int8_t(qv[mt][h]);
          if (g == 0) {
            float* sp = a.s_out + (size_t(tok) * (n_out / 32) + j) * 2;
            sp[0] = d;
            sp[1] = d * float(sum);
          }
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
        const int e = (mt * NT + nt) * 4 + i;
        const float v = __fadd_rn(acc[mt][nt][i], ex[((warp + 4) * NE + e) * 32 + lane]);
        const int row = row0 + (swiglu ? 0 : 32 * wm) + 16 * mt + g + 8 * (i >> 1);
        const int tok = tok0 + (BN / 2) * wn + 8 * nt + 2 * t + (i & 1);
        if (row >= n_out || tok >= a.nt) continue;
        float* p = y + size_t(tok) * ldy + row;
        if (swiglu) {
          const float u = __fadd_rn(ex[((warp + 1) * NE + e) * 32 + lane], ex[((warp + 5) * NE + e) * 32 + lane]);
          *p = v / (1.0f + __expf(-v)) * u;
        } else {
          *p = a.mode == 1 ? *p + v : v;
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
  // Position of this lane's element inside its 64-element group (q8_pos).
  const int pos_in = 16 * ((lane & 15) >> 2) + 4 * (lane >> 4) + (lane & 3);
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
    q[size_t(tok) * n_in + 64 * (j >> 1) + 8 * (j & 1) + pos_in] = int8_t(qv);
    if (lane == 0) {
      s[(size_t(tok) * nblk + j) * 2] = d;
      s[(size_t(tok) * nblk + j) * 2 + 1] = d * float(sum);
    }
  }
}

template <int BN>
void launch_gemm(const KArgs& k, int row_tiles, cudaStream_t s) {
  auto bytes = [](int ws) {
    return 2 * (size_t(kBM) * ws + size_t(BN) * (kXStride + kSStride * 4)) + size_t(kBM) * kScStride * 4;
  };
  static bool attr_set = false;
  if (!attr_set) {
    check(cudaFuncSetAttribute(k_gemm_q8<BN>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes(kQ6Stride))),
          "gemm_q8 smem attribute");
    attr_set = true;
  }
  const dim3 grid(unsigned((k.nt + BN - 1) / BN), unsigned(row_tiles));
  k_gemm_q8<BN><<<grid, kThreads, bytes(k.wstride), s>>>(k);
  check(cudaGetLastError(), "gemm_q8 launch");
}

}  // namespace

bool gemm_q8_supported(GgmlType t) { return t == GgmlType::Q4_K || t == GgmlType::Q6_K; }

void quantize_q8(const float* d_x, int ldx, int nt, int n_in, const float* d_norm, float eps, int8_t* d_q, float* d_s,
                 cudaStream_t s) {
  if (nt <= 0) return;
  if (n_in <= 0 || n_in % 64 != 0) throw Error("quantize_q8: n_in must be a positive multiple of 64");
  k_quantize_q8<<<unsigned(nt), 256, 0, s>>>(d_x, ldx, n_in, d_norm, eps, d_q, d_s);
  check(cudaGetLastError(), "quantize_q8 launch");
}

void gemm_q8(const GemmQ8Args& a, cudaStream_t s) {
  if (a.nt <= 0) return;
  if (a.n_in <= 0 || a.n_in % 256 != 0) throw Error("gemm_q8: n_in must be a positive multiple of 256");
  const bool swiglu = a.mode == GemmMode::SwiGLU || a.mode == GemmMode::SwiGLUQ8;
  const int n_mats = swiglu ? 2 : a.n_mats;
  if (n_mats < 1 || n_mats > 3) throw Error("gemm_q8: 1 to 3 matrices");
  if (swiglu && a.m[0].n_out != a.m[1].n_out) throw Error("gemm_q8: gate and up differ in size");
  if (a.mode == GemmMode::SwiGLUQ8 && (a.m[0].n_out % 64 != 0 || !a.d_q_out || !a.d_s_out))
    throw Error("gemm_q8: SwiGLUQ8 needs n_out % 64 == 0 and int8 output buffers");
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
  k.q_out = a.d_q_out;
  k.s_out = a.d_s_out;
  // Tokens per tile: 64 (weights staged half as often) unless that leaves the card with too few blocks.
  static int n_sm = 0;
  if (n_sm == 0) {
    int dev = 0;
    check(cudaGetDevice(&dev), "cudaGetDevice");
    check(cudaDeviceGetAttribute(&n_sm, cudaDevAttrMultiProcessorCount, dev), "cudaDeviceGetAttribute");
  }
  const long blocks64 = long(row_tiles) * ((a.nt + 63) / 64);
  const int bn = a.bn == 32 || a.bn == 64 ? a.bn : blocks64 >= 2L * n_sm ? 64 : 32;
  if (bn == 64) launch_gemm<64>(k, row_tiles, s);
  else launch_gemm<32>(k, row_tiles, s);
}

}  // namespace minnow::cuda
