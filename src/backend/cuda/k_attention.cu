// Attention of each token over its sequence's F16 KV cache, split into position chunks (flash-decoding):
// k_attn_chunk computes, for one (chunk, kv head, token), the unnormalised softmax-weighted sum of V for the
// (up to kMaxG) query heads of that kv head, plus the chunk's max score and sum of exponentials; k_attn_merge
// combines the chunks in a fixed order. Prompt tokens use the same kernels (each token reads the cache up to
// its own position), so a token's result does not depend on the batch it came in.
#include <cuda_fp16.h>

#include <algorithm>

#include "backend/cuda/cuda_kernels.h"
#include "common/error.h"

namespace minnow::cuda {
namespace {

constexpr int kThreads = 128;
constexpr int kMaxG = 8;  // query heads per block

int n_splits(int n_ctx) { return (n_ctx + attn_chunk(n_ctx) - 1) / attn_chunk(n_ctx); }

template <int D>
__global__ void __launch_bounds__(kThreads) k_attn_chunk(AttnArgs a, int chunk, int splits, int g_blocks) {
  extern __shared__ float smem[];
  const int split = blockIdx.x;
  const int kvh = blockIdx.y / g_blocks, gb = blockIdx.y % g_blocks;
  const int t = blockIdx.z;
  const int pos = a.d_pos[t], seq = a.d_seq[t];
  const int len = pos + 1;
  const int start = split * chunk;
  if (start >= len) return;
  const int cnt = min(chunk, len - start);
  const int G = a.n_head / a.n_head_kv;
  const int h0 = kvh * G + gb * kMaxG;
  const int ng = min(kMaxG, G - gb * kMaxG);
  float* q_s = smem;                 // [kMaxG][D]
  float* sc = smem + kMaxG * D;      // [kMaxG][chunk]
  __shared__ float s_max[kMaxG], s_sum[kMaxG];

  for (int i = threadIdx.x; i < ng * D; i += kThreads)
    q_s[i] = a.d_q[size_t(t) * a.ldq + size_t(h0) * D + i] * a.scale;
  __syncthreads();

  const size_t row_stride = size_t(a.n_head_kv) * D;  // halves between positions
  const __half* kbase = static_cast<const __half*>(a.d_kcache) + (size_t(seq) * a.n_ctx + start) * row_stride + size_t(kvh) * D;
  const __half* vbase = static_cast<const __half*>(a.d_vcache) + (size_t(seq) * a.n_ctx + start) * row_stride + size_t(kvh) * D;

  // Scores: one thread per position.
  for (int p = threadIdx.x; p < cnt; p += kThreads) {
    const uint4* kr = reinterpret_cast<const uint4*>(kbase + size_t(p) * row_stride);
    float s[kMaxG];
#pragma unroll
    for (int g = 0; g < kMaxG; ++g) s[g] = 0.f;
#pragma unroll 4
    for (int d8 = 0; d8 < D / 8; ++d8) {
      const uint4 kv = __ldg(kr + d8);
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
          const float* qg = q_s + g * D + d8 * 8;
#pragma unroll
          for (int i = 0; i < 8; ++i) s[g] = fmaf(qg[i], kf[i], s[g]);
        }
      }
    }
#pragma unroll
    for (int g = 0; g < kMaxG; ++g)
      if (g < ng) sc[g * chunk + p] = s[g];
  }
  __syncthreads();

  // Softmax statistics: warp w handles heads w, w+4, ...
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  for (int g = warp; g < ng; g += kThreads / 32) {
    float m = -INFINITY;
    for (int p = lane; p < cnt; p += 32) m = fmaxf(m, sc[g * chunk + p]);
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
    float l = 0.f;
    for (int p = lane; p < cnt; p += 32) {
      const float e = __expf(sc[g * chunk + p] - m);
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

  // Weighted sum of V: thread handles column pair c (D/2 of them) for heads g = slot, slot + slots, ...
  constexpr int kCols = D / 2;
  constexpr int kSlots = kThreads / kCols;
  const int c = threadIdx.x % kCols, slot = threadIdx.x / kCols;
  float2 acc[(kMaxG + kSlots - 1) / kSlots];
#pragma unroll
  for (int i = 0; i < (kMaxG + kSlots - 1) / kSlots; ++i) acc[i] = make_float2(0.f, 0.f);
  for (int p = 0; p < cnt; ++p) {
    const float2 v = __half22float2(reinterpret_cast<const __half2*>(vbase + size_t(p) * row_stride)[c]);
#pragma unroll
    for (int i = 0; i < (kMaxG + kSlots - 1) / kSlots; ++i) {
      const int g = slot + i * kSlots;
      if (g < ng) {
        const float e = sc[g * chunk + p];
        acc[i].x = fmaf(e, v.x, acc[i].x);
        acc[i].y = fmaf(e, v.y, acc[i].y);
      }
    }
  }
#pragma unroll
  for (int i = 0; i < (kMaxG + kSlots - 1) / kSlots; ++i) {
    const int g = slot + i * kSlots;
    if (g < ng) {
      float* part = a.d_scratch + ((size_t(t) * a.n_head + h0 + g) * splits + split) * (D + 2);
      part[2 * c] = acc[i].x;
      part[2 * c + 1] = acc[i].y;
      if (c == 0) {
        part[D] = s_max[g];
        part[D + 1] = s_sum[g];
      }
    }
  }
}

template <int D>
__global__ void k_attn_merge(AttnArgs a, int chunk, int splits) {
  const int h = blockIdx.x, t = blockIdx.y;
  const int len = a.d_pos[t] + 1;
  const int nv = (len + chunk - 1) / chunk;
  const float* part = a.d_scratch + (size_t(t) * a.n_head + h) * splits * (D + 2);
  float m = -INFINITY;
  for (int s = 0; s < nv; ++s) m = fmaxf(m, part[size_t(s) * (D + 2) + D]);
  float den = 0.f;
  for (int s = 0; s < nv; ++s) den += part[size_t(s) * (D + 2) + D + 1] * __expf(part[size_t(s) * (D + 2) + D] - m);
  for (int d = threadIdx.x; d < D; d += blockDim.x) {
    float num = 0.f;
    for (int s = 0; s < nv; ++s) num += part[size_t(s) * (D + 2) + d] * __expf(part[size_t(s) * (D + 2) + D] - m);
    a.d_out[size_t(t) * a.ldo + size_t(h) * D + d] = num / den;
  }
}

template <int D>
void launch(const AttnArgs& a, cudaStream_t s) {
  const int chunk = attn_chunk(a.n_ctx), splits = n_splits(a.n_ctx);
  const int G = a.n_head / a.n_head_kv;
  const int g_blocks = (G + kMaxG - 1) / kMaxG;
  const size_t smem = size_t(kMaxG) * (D + chunk) * sizeof(float);
  dim3 grid(unsigned(splits), unsigned(a.n_head_kv * g_blocks), unsigned(a.n));
  k_attn_chunk<D><<<grid, kThreads, smem, s>>>(a, chunk, splits, g_blocks);
  check(cudaGetLastError(), "attention launch");
  k_attn_merge<D><<<dim3(unsigned(a.n_head), unsigned(a.n)), D < 128 ? D : 128, 0, s>>>(a, chunk, splits);
  check(cudaGetLastError(), "attention merge launch");
}

}  // namespace

int attn_chunk(int n_ctx) {
  const int per64 = (n_ctx + 63) / 64;
  const int c = (per64 + 127) / 128 * 128;
  return std::clamp(c, 128, 1024);
}

size_t attn_scratch_floats(int n, int n_head, int head_dim, int n_ctx) {
  return size_t(n) * n_head * n_splits(n_ctx) * (head_dim + 2);
}

bool attn_head_dim_supported(int head_dim) { return head_dim == 64 || head_dim == 128 || head_dim == 32 || head_dim == 256; }

void attention(const AttnArgs& a, cudaStream_t s) {
  if (a.n <= 0) return;
  if (a.n_head_kv <= 0 || a.n_head % a.n_head_kv != 0) throw Error("cuda: attention: bad head counts");
  switch (a.head_dim) {
    case 32: launch<32>(a, s); break;
    case 64: launch<64>(a, s); break;
    case 128: launch<128>(a, s); break;
    case 256: launch<256>(a, s); break;
    default: throw Error("cuda: attention: head dimension " + std::to_string(a.head_dim) + " is not supported");
  }
}

}  // namespace minnow::cuda
