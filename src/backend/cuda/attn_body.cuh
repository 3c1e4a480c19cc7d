#pragma once
// The attention's device code (used by the attention kernel, k_attention.cu). See k_attention.cu for the
// algorithm.
#include <cuda_fp16.h>

#include "backend/cuda/cuda_kernels.h"
#include "backend/cuda/quant_dev.cuh"

namespace minnow::cuda {
namespace {

constexpr int kMaxChunk = 256;  // positions per block: attn_cfg().chunk (64, 128 or 256), fixed per process
constexpr int kMaxG = 4;        // query heads per block: at most this many (attn_cfg().heads)
__host__ __device__ constexpr int threads_for(int) { return 128; }

// The chunking of the attention: 128 positions per block (64 and 256 measured slower, v15 in
// docs/cuda_notes.md), at most kMaxG query heads per block. Fixed, so a token's arithmetic never depends on the
// batch (the chunk size sets where the split-K merge happens).
struct AttnCfg {
  int chunk;
  int heads;
};
inline AttnCfg attn_cfg(int) { return AttnCfg{128, kMaxG}; }
inline int n_splits(int n_ctx, int chunk) { return (n_ctx + chunk - 1) / chunk; }

inline size_t smem_bytes(int D, int chunk) {
  return size_t(kMaxG) * D * 4 + size_t(kMaxG) * chunk * 4 + size_t(chunk) * (D + 8) * 2 + size_t(chunk) * D * 2;
}

// One block of the attention grid (bx: chunk, by: kv head x query-head group, bz: token), with kThreads
// threads (a token's result does not depend on kThreads). `wait` is called before anything a predecessor
// wrote is read. Every return is uniform across the block; the caller synchronises before reusing smem.
// chunk: positions per block (attn_cfg), gper: query heads per block (<= kMaxG).
template <int D, int kThreads, class Wait>
__device__ __forceinline__ void attn_block(const AttnArgs& a, int splits, int g_blocks, int chunk, int gper,
                                           int bx, int by, int bz, float* smem, Wait&& wait) {
  float* q_s = smem;                                             // [kMaxG][D]
  float* sc = q_s + kMaxG * D;                                   // [kMaxG][chunk]
  __half* k_s = reinterpret_cast<__half*>(sc + kMaxG * chunk);   // [chunk][D + 8]
  __half* v_s = k_s + chunk * (D + 8);                           // [chunk][D]
  __shared__ float s_max[kMaxG], s_sum[kMaxG];
  __shared__ int s_last;

  const int split = bx;
  const int kvh = by / g_blocks, gb = by % g_blocks;
  const int t = bz;
  // Positions and sequence slots come from the host (written before the pass starts), so they are read before
  // the wait; so are the K/V rows that earlier passes wrote: this pass writes at most n_pass positions of a
  // sequence, the last of them at or after pos, so positions below pos + 1 - n_pass are already final.
  const int pos = a.d_pos[t], seq = a.d_seq[t];
  const int len = pos + 1;
  const int start = split * chunk;
  const int cnt = start < len ? min(chunk, len - start) : 0;
  const int n_pass = a.n_pass > 0 ? a.n_pass : a.n;
  const int pre = max(0, min(cnt, len - n_pass - start));
  const int tid = threadIdx.x;
  const size_t row_stride = size_t(a.n_head_kv) * D;  // halves between positions
  const __half* kg =
      static_cast<const __half*>(a.d_kcache) + (size_t(seq) * a.n_ctx + start) * row_stride + size_t(kvh) * D;
  const __half* vg =
      static_cast<const __half*>(a.d_vcache) + (size_t(seq) * a.n_ctx + start) * row_stride + size_t(kvh) * D;
  constexpr int kVec = D / 8;  // 16-byte vectors per row
  for (int i = tid; i < pre * kVec; i += kThreads) {
    const int p = i / kVec, c = i % kVec;
    cp16(k_s + p * (D + 8) + c * 8, reinterpret_cast<const uint4*>(kg + size_t(p) * row_stride) + c);
    cp16(v_s + p * D + c * 8, reinterpret_cast<const uint4*>(vg + size_t(p) * row_stride) + c);
  }
  wait();
  if (cnt == 0) return;  // nothing was issued
  const int nv = (len + chunk - 1) / chunk;
  const int G = a.n_head / a.n_head_kv;
  const int h0 = kvh * G + gb * gper;
  const int ng = min(gper, G - gb * gper);

  // Stage the rest of K and V (written by this pass), and q.
  for (int i = pre * kVec + tid; i < cnt * kVec; i += kThreads) {
    const int p = i / kVec, c = i % kVec;
    cp16(k_s + p * (D + 8) + c * 8, reinterpret_cast<const uint4*>(kg + size_t(p) * row_stride) + c);
    cp16(v_s + p * D + c * 8, reinterpret_cast<const uint4*>(vg + size_t(p) * row_stride) + c);
  }
  for (int i = tid; i < ng * D / 4; i += kThreads)
    cp16(q_s + 4 * i, a.d_q + size_t(t) * a.ldq + size_t(h0) * D + 4 * i);
  cp_commit();
  cp_wait_all();
  __syncthreads();

  // Scores: one thread per position.
  for (int p = tid; p < cnt; p += kThreads) {
    float s[kMaxG];
#pragma unroll
    for (int g = 0; g < kMaxG; ++g) s[g] = 0.f;
    const uint4* kr = reinterpret_cast<const uint4*>(k_s + p * (D + 8));
#pragma unroll 4
    for (int d8 = 0; d8 < kVec; ++d8) {
      const uint4 kv = kr[d8];
      const __half2* hk = reinterpret_cast<const __half2*>(&kv);
      float kf[8];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const float2 f = __half22float2(hk[i]);
        kf[2 * i] = f.x;
        kf[2 * i + 1] = f.y;
      }
#pragma unroll
      for (int g = 0; g < kMaxG; ++g) {
        if (g < ng) {
          const float4* qg = reinterpret_cast<const float4*>(q_s + g * D + d8 * 8);
          const float4 qa = qg[0], qb = qg[1];
          float acc = s[g];
          acc = fmaf(qa.x, kf[0], acc);
          acc = fmaf(qa.y, kf[1], acc);
          acc = fmaf(qa.z, kf[2], acc);
          acc = fmaf(qa.w, kf[3], acc);
          acc = fmaf(qb.x, kf[4], acc);
          acc = fmaf(qb.y, kf[5], acc);
          acc = fmaf(qb.z, kf[6], acc);
          acc = fmaf(qb.w, kf[7], acc);
          s[g] = acc;
        }
      }
    }
    // Sliding window: positions at or before pos - window are masked (their weight becomes exactly 0).
    const bool masked = a.window > 0 && start + p <= pos - a.window;
#pragma unroll
    for (int g = 0; g < kMaxG; ++g)
      if (g < ng) sc[g * chunk + p] = masked ? -INFINITY : s[g] * a.scale;
  }
  __syncthreads();

  // Softmax statistics: warp w handles heads w, w+4.
  const int warp = tid >> 5, lane = tid & 31;
  for (int g = warp; g < ng; g += kThreads / 32) {  // kThreads / 32 warps
    float m = -INFINITY;
    for (int p = lane; p < cnt; p += 32) m = fmaxf(m, sc[g * chunk + p]);
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
    float l = 0.f;
    for (int p = lane; p < cnt; p += 32) {
      // m == -inf only when the window masks the whole chunk: its weights are 0 (and the merge gives it weight
      // exp(-inf - M) = 0; the chunk of pos itself is never masked).
      const float e = m == -INFINITY ? 0.f : __expf(sc[g * chunk + p] - m);
      sc[g * chunk + p] = e;
      l += e;
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) l += __shfl_xor_sync(0xffffffffu, l, o);
    if (lane == 0) {
      s_max[g] = m;
      s_sum[g] = l;
    }
  }
  __syncthreads();

  // Weighted sum of V: thread handles column pair c for heads slot, slot + kSlots, ...
  constexpr int kCols = D / 2;
  constexpr int kSlots = kThreads / kCols;
  constexpr int kPer = (kMaxG + kSlots - 1) / kSlots;
  const int c = tid % kCols, slot = tid / kCols;
  // Two accumulator sets (even / odd positions) halve the dependent FMA chain; fixed order, summed at the
  // end.
  float2 acc[kPer], acc_odd[kPer];
#pragma unroll
  for (int i = 0; i < kPer; ++i) acc[i] = acc_odd[i] = make_float2(0.f, 0.f);
  int p = 0;
#pragma unroll 4
  for (; p + 1 < cnt; p += 2) {
    const float2 v0 = __half22float2(reinterpret_cast<const __half2*>(v_s + p * D)[c]);
    const float2 v1 = __half22float2(reinterpret_cast<const __half2*>(v_s + (p + 1) * D)[c]);
#pragma unroll
    for (int i = 0; i < kPer; ++i) {
      const int g = slot + i * kSlots;
      if (g < ng) {
        const float e0 = sc[g * chunk + p], e1 = sc[g * chunk + p + 1];
        acc[i].x = fmaf(e0, v0.x, acc[i].x);
        acc[i].y = fmaf(e0, v0.y, acc[i].y);
        acc_odd[i].x = fmaf(e1, v1.x, acc_odd[i].x);
        acc_odd[i].y = fmaf(e1, v1.y, acc_odd[i].y);
      }
    }
  }
  if (p < cnt) {
    const float2 v0 = __half22float2(reinterpret_cast<const __half2*>(v_s + p * D)[c]);
#pragma unroll
    for (int i = 0; i < kPer; ++i) {
      const int g = slot + i * kSlots;
      if (g < ng) {
        const float e0 = sc[g * chunk + p];
        acc[i].x = fmaf(e0, v0.x, acc[i].x);
        acc[i].y = fmaf(e0, v0.y, acc[i].y);
      }
    }
  }
#pragma unroll
  for (int i = 0; i < kPer; ++i) {
    acc[i].x += acc_odd[i].x;
    acc[i].y += acc_odd[i].y;
  }
  if (nv == 1) {  // the only chunk: normalise and write the output directly
#pragma unroll
    for (int i = 0; i < kPer; ++i) {
      const int g = slot + i * kSlots;
      if (g < ng) {
        const float inv = 1.f / s_sum[g];
        float* o = a.d_out + size_t(t) * a.ldo + size_t(h0 + g) * D + 2 * c;
        o[0] = acc[i].x * inv;
        o[1] = acc[i].y * inv;
      }
    }
    return;
  }
  const size_t part_stride = D + 2;
#pragma unroll
  for (int i = 0; i < kPer; ++i) {
    const int g = slot + i * kSlots;
    if (g < ng) {
      float* part = a.d_scratch + ((size_t(t) * a.n_head + h0 + g) * splits + split) * part_stride;
      part[2 * c] = acc[i].x;
      part[2 * c + 1] = acc[i].y;
      if (c == 0) {
        part[D] = s_max[g];
        part[D + 1] = s_sum[g];
      }
    }
  }

  // The last chunk block of this (token, head group) merges.
  __threadfence();
  __syncthreads();
  int* counter = a.d_counters + (size_t(t) * a.n_head_kv + kvh) * g_blocks + gb;
  if (tid == 0) s_last = atomicAdd(counter, 1) == nv - 1;
  __syncthreads();
  if (!s_last) return;
  __threadfence();
  if (nv <= chunk) {
    // Per head: chunk weights w_s = exp(m_s - M) / sum_s l_s exp(m_s - M), one warp per head (lane-strided,
    // fixed order), kept in sc; then every output element sums w_s * o_s with its loads in flight together.
    for (int g = warp; g < ng; g += kThreads / 32) {
      const float* part = a.d_scratch + (size_t(t) * a.n_head + h0 + g) * splits * part_stride;
      float mv[kMaxChunk / 32], lv[kMaxChunk / 32];
      float m = -INFINITY;
#pragma unroll
      for (int k = 0; k < kMaxChunk / 32; ++k) {
        const int s = lane + 32 * k;
        mv[k] = s < nv ? __ldcg(part + s * part_stride + D) : -INFINITY;
        lv[k] = s < nv ? __ldcg(part + s * part_stride + D + 1) : 0.f;
        m = fmaxf(m, mv[k]);
      }
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
      float den = 0.f;
#pragma unroll
      for (int k = 0; k < kMaxChunk / 32; ++k) {
        mv[k] = lane + 32 * k < nv ? __expf(mv[k] - m) : 0.f;
        den = fmaf(lv[k], mv[k], den);
      }
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) den += __shfl_xor_sync(0xffffffffu, den, o);
#pragma unroll
      for (int k = 0; k < kMaxChunk / 32; ++k)
        if (lane + 32 * k < nv) sc[g * chunk + lane + 32 * k] = mv[k] / den;
    }
    __syncthreads();
    for (int i = tid; i < ng * D; i += kThreads) {
      const int g = i / D, d = i % D;
      const float* part = a.d_scratch + (size_t(t) * a.n_head + h0 + g) * splits * part_stride + d;
      float num = 0.f;
      // 32 loads in flight per batch: one L2 round trip up to 32 chunks (depth 4096); same sum order as
      // before.
      for (int s0 = 0; s0 < nv; s0 += 32) {
        float ov[32];
#pragma unroll
        for (int k = 0; k < 32; ++k) ov[k] = s0 + k < nv ? __ldcg(part + (s0 + k) * part_stride) : 0.f;
#pragma unroll
        for (int k = 0; k < 32; ++k)
          if (s0 + k < nv) num = fmaf(sc[g * chunk + s0 + k], ov[k], num);
      }
      a.d_out[size_t(t) * a.ldo + size_t(h0 + g) * D + d] = num;
    }
  } else {
    for (int i = tid; i < ng * D; i += kThreads) {
      const int g = i / D, d = i % D;
      const float* part = a.d_scratch + (size_t(t) * a.n_head + h0 + g) * splits * part_stride;
      // Loads are batched 8 at a time so that they are in flight together (in order, fixed sum order).
      float m = -INFINITY;
      for (int s0 = 0; s0 < nv; s0 += 8) {
        float mv[8];
#pragma unroll
        for (int k = 0; k < 8; ++k)
          mv[k] = s0 + k < nv ? __ldcg(part + (s0 + k) * part_stride + D) : -INFINITY;
#pragma unroll
        for (int k = 0; k < 8; ++k) m = fmaxf(m, mv[k]);
      }
      float num = 0.f, den = 0.f;
      for (int s0 = 0; s0 < nv; s0 += 8) {
        float mv[8], lv[8], ov[8];
#pragma unroll
        for (int k = 0; k < 8; ++k) {
          const bool ok = s0 + k < nv;
          const float* ps = part + (s0 + k) * part_stride;
          mv[k] = ok ? __ldcg(ps + D) : -INFINITY;
          lv[k] = ok ? __ldcg(ps + D + 1) : 0.f;
          ov[k] = ok ? __ldcg(ps + d) : 0.f;
        }
#pragma unroll
        for (int k = 0; k < 8; ++k) {
          if (s0 + k < nv) {
            const float w = __expf(mv[k] - m);
            den = fmaf(lv[k], w, den);
            num = fmaf(ov[k], w, num);
          }
        }
      }
      a.d_out[size_t(t) * a.ldo + size_t(h0 + g) * D + d] = num / den;
    }
  }
  if (tid == 0) *counter = 0;
}

}  // namespace
}  // namespace minnow::cuda
