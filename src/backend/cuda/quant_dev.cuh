#pragma once
// Device-side decoders of every supported block format, in the device layout of cuda_kernels.h (ggml's block
// layout, some blocks padded to 4/16-byte boundaries). deq8<T>(block, off, out) decodes the 8 consecutive
// elements [off, off+8) of one block; off is a multiple of 8, so all 8 share one scale.
#include <cuda_fp16.h>

#include <cstdint>

#include "quant/ggml_type.h"

namespace minnow::cuda {

constexpr int T_F32 = 0, T_F16 = 1, T_Q4_0 = 2, T_Q4_1 = 3, T_Q5_0 = 6, T_Q5_1 = 7, T_Q8_0 = 8, T_Q2_K = 10,
              T_Q3_K = 11, T_Q4_K = 12, T_Q5_K = 13, T_Q6_K = 14, T_BF16 = 30;

template <int T> struct Fmt;
template <> struct Fmt<T_F32> { static constexpr int elems = 8, bytes = 32; };
template <> struct Fmt<T_F16> { static constexpr int elems = 8, bytes = 16; };
template <> struct Fmt<T_BF16> { static constexpr int elems = 8, bytes = 16; };
template <> struct Fmt<T_Q4_0> { static constexpr int elems = 32, bytes = 20; };
template <> struct Fmt<T_Q4_1> { static constexpr int elems = 32, bytes = 20; };
template <> struct Fmt<T_Q5_0> { static constexpr int elems = 32, bytes = 24; };
template <> struct Fmt<T_Q5_1> { static constexpr int elems = 32, bytes = 24; };
template <> struct Fmt<T_Q8_0> { static constexpr int elems = 32, bytes = 36; };
template <> struct Fmt<T_Q2_K> { static constexpr int elems = 256, bytes = 84; };
template <> struct Fmt<T_Q3_K> { static constexpr int elems = 256, bytes = 112; };
template <> struct Fmt<T_Q4_K> { static constexpr int elems = 256, bytes = 144; };
template <> struct Fmt<T_Q5_K> { static constexpr int elems = 256, bytes = 176; };
template <> struct Fmt<T_Q6_K> { static constexpr int elems = 256, bytes = 224; };

__device__ __forceinline__ float h2f(uint16_t h) { return __half2float(__ushort_as_half(h)); }
__device__ __forceinline__ float bf2f(uint32_t h) { return __uint_as_float(h << 16); }
__device__ __forceinline__ uint16_t ld16u(const uint8_t* p) { return *reinterpret_cast<const uint16_t*>(p); }
__device__ __forceinline__ uint32_t ld32u(const uint8_t* p) { return *reinterpret_cast<const uint32_t*>(p); }
// Plain (generic-address) loads: the decoders also read weights staged in shared memory.
__device__ __forceinline__ uint4 ld128(const uint8_t* p) { return *reinterpret_cast<const uint4*>(p); }
// Small unsigned integer q (< 2^23) to float in two full-rate instructions.
__device__ __forceinline__ float u2f(uint32_t q) { return __uint_as_float(0x4B000000u | q) - 8388608.0f; }
__device__ __forceinline__ uint32_t byte_of(const uint4& v, int i) {
  const uint32_t w = i < 4 ? v.x : i < 8 ? v.y : i < 12 ? v.z : v.w;
  return (w >> (8 * (i & 3))) & 0xFFu;
}

// 6-bit scale and min of sub-block j of Q4_K / Q5_K (12 packed bytes at s).
__device__ __forceinline__ void k4_scale_min(const uint8_t* s, int j, float& sc, float& m) {
  if (j < 4) {
    sc = float(s[j] & 63);
    m = float(s[j + 4] & 63);
  } else {
    sc = float((s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4));
    m = float((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
  }
}
// Signed 6-bit scale s (0..15) of Q3_K, already minus 32.
__device__ __forceinline__ int q3k_scale(const uint8_t* sc, int s) {
  const int low = s < 8 ? (sc[s] & 0xF) : (sc[s - 8] >> 4);
  const int high = (sc[8 + (s & 3)] >> (2 * (s >> 2))) & 3;
  return (low | (high << 4)) - 32;
}

template <int T> __device__ __forceinline__ void deq8(const uint8_t* b, int off, float* o);

template <> __device__ __forceinline__ void deq8<T_F32>(const uint8_t* b, int, float* o) {
  const float4 a = *reinterpret_cast<const float4*>(b);
  const float4 c = *(reinterpret_cast<const float4*>(b) + 1);
  o[0] = a.x; o[1] = a.y; o[2] = a.z; o[3] = a.w; o[4] = c.x; o[5] = c.y; o[6] = c.z; o[7] = c.w;
}
template <> __device__ __forceinline__ void deq8<T_F16>(const uint8_t* b, int, float* o) {
  const uint4 v = ld128(b);
  const uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    o[2 * i] = h2f(uint16_t(w[i] & 0xFFFF));
    o[2 * i + 1] = h2f(uint16_t(w[i] >> 16));
  }
}
template <> __device__ __forceinline__ void deq8<T_BF16>(const uint8_t* b, int, float* o) {
  const uint4 v = ld128(b);
  const uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    o[2 * i] = bf2f(w[i] & 0xFFFF);
    o[2 * i + 1] = bf2f(w[i] >> 16);
  }
}
template <> __device__ __forceinline__ void deq8<T_Q4_0>(const uint8_t* b, int off, float* o) {
  const float d = h2f(ld16u(b));
  const uint8_t* qs = b + 2;
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const int j = off + i;
    const int q = j < 16 ? (qs[j] & 0xF) : (qs[j - 16] >> 4);
    o[i] = float(q - 8) * d;
  }
}
template <> __device__ __forceinline__ void deq8<T_Q4_1>(const uint8_t* b, int off, float* o) {
  const float d = h2f(ld16u(b)), m = h2f(ld16u(b + 2));
  const uint8_t* qs = b + 4;
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const int j = off + i;
    const int q = j < 16 ? (qs[j] & 0xF) : (qs[j - 16] >> 4);
    o[i] = float(q) * d + m;
  }
}
template <> __device__ __forceinline__ void deq8<T_Q5_0>(const uint8_t* b, int off, float* o) {
  const float d = h2f(ld16u(b));
  const uint32_t qh = uint32_t(b[2]) | (uint32_t(b[3]) << 8) | (uint32_t(b[4]) << 16) | (uint32_t(b[5]) << 24);
  const uint8_t* qs = b + 6;
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const int j = off + i;
    const int lo = j < 16 ? (qs[j] & 0xF) : (qs[j - 16] >> 4);
    const int q = lo | int(((qh >> j) & 1u) << 4);
    o[i] = float(q - 16) * d;
  }
}
template <> __device__ __forceinline__ void deq8<T_Q5_1>(const uint8_t* b, int off, float* o) {
  const float d = h2f(ld16u(b)), m = h2f(ld16u(b + 2));
  const uint32_t qh = ld32u(b + 4);
  const uint8_t* qs = b + 8;
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const int j = off + i;
    const int lo = j < 16 ? (qs[j] & 0xF) : (qs[j - 16] >> 4);
    const int q = lo | int(((qh >> j) & 1u) << 4);
    o[i] = float(q) * d + m;
  }
}
template <> __device__ __forceinline__ void deq8<T_Q8_0>(const uint8_t* b, int off, float* o) {
  const float d = h2f(ld16u(b));
  const int8_t* qs = reinterpret_cast<const int8_t*>(b + 2);
#pragma unroll
  for (int i = 0; i < 8; ++i) o[i] = float(qs[off + i]) * d;
}
template <> __device__ __forceinline__ void deq8<T_Q2_K>(const uint8_t* b, int off, float* o) {
  const float d = h2f(ld16u(b + 80)), dmin = h2f(ld16u(b + 82));
  const int n = off >> 7, r = off & 127, j = r >> 5, l0 = r & 31;
  const uint8_t sc = b[8 * n + 2 * j + (l0 >> 4)];
  const float dl = d * float(sc & 0xF), ml = dmin * float(sc >> 4);
  const uint8_t* q = b + 16 + 32 * n + l0;
#pragma unroll
  for (int i = 0; i < 8; ++i) o[i] = dl * float((q[i] >> (2 * j)) & 3) - ml;
}
template <> __device__ __forceinline__ void deq8<T_Q3_K>(const uint8_t* b, int off, float* o) {
  const float d = h2f(ld16u(b + 108));
  const int n = off >> 7, r = off & 127, j = r >> 5, l0 = r & 31;
  const float dl = d * float(q3k_scale(b + 96, 8 * n + 2 * j + (l0 >> 4)));
  const uint8_t* q = b + 32 + 32 * n + l0;
  const uint8_t* hm = b + l0;
  const int hb = 4 * n + j;
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const int v = int((q[i] >> (2 * j)) & 3) - (((hm[i] >> hb) & 1) ? 0 : 4);
    o[i] = dl * float(v);
  }
}
template <> __device__ __forceinline__ void deq8<T_Q4_K>(const uint8_t* b, int off, float* o) {
  const float d = h2f(ld16u(b)), dmin = h2f(ld16u(b + 2));
  const int c = off >> 6, hi = (off >> 5) & 1, l0 = off & 31;
  float sc, m;
  k4_scale_min(b + 4, 2 * c + hi, sc, m);
  const float dl = d * sc, ml = dmin * m;
  const uint8_t* q = b + 16 + 32 * c + l0;
#pragma unroll
  for (int i = 0; i < 8; ++i) o[i] = dl * float(hi ? (q[i] >> 4) : (q[i] & 0xF)) - ml;
}
template <> __device__ __forceinline__ void deq8<T_Q5_K>(const uint8_t* b, int off, float* o) {
  const float d = h2f(ld16u(b)), dmin = h2f(ld16u(b + 2));
  const int c = off >> 6, hi = (off >> 5) & 1, l0 = off & 31;
  float sc, m;
  k4_scale_min(b + 4, 2 * c + hi, sc, m);
  const float dl = d * sc, ml = dmin * m;
  const uint8_t* qh = b + 16 + l0;
  const uint8_t* q = b + 48 + 32 * c + l0;
  const int hb = 2 * c + hi;
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const int v = (hi ? (q[i] >> 4) : (q[i] & 0xF)) + (((qh[i] >> hb) & 1) << 4);
    o[i] = dl * float(v) - ml;
  }
}
template <> __device__ __forceinline__ void deq8<T_Q6_K>(const uint8_t* b, int off, float* o) {
  const float d = h2f(ld16u(b + 208));
  const int n = off >> 7, r = off & 127, g = r >> 5, l0 = r & 31;
  const float dl = d * float(reinterpret_cast<const int8_t*>(b + 192)[8 * n + (l0 >> 4) + 2 * g]);
  const uint8_t* ql = b + 64 * n + 32 * (g & 1) + l0;
  const uint8_t* qh = b + 128 + 32 * n + l0;
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const int lo = g >= 2 ? (ql[i] >> 4) : (ql[i] & 0xF);
    const int v = (lo | (((qh[i] >> (2 * g)) & 3) << 4)) - 32;
    o[i] = dl * float(v);
  }
}

// cp.async: 16-byte global -> shared copies (L2 only), commit and wait.
__device__ __forceinline__ void cp16(void* dst, const void* src) {
  const unsigned s = unsigned(__cvta_generic_to_shared(dst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(s), "l"(src) : "memory");
}
__device__ __forceinline__ void cp_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
__device__ __forceinline__ void cp_wait_all() { asm volatile("cp.async.wait_all;" ::: "memory"); }

// Programmatic dependent launch (sm_90): a kernel launched with launch_pdl may start while its predecessor
// runs; it must call pdl_wait() before reading anything the predecessor wrote (or writing what it reads).
// pdl_trigger() lets the successor's blocks be scheduled.
__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

// Kernel timeline (cuda_kernels.h, MatvecArgs::d_trace): t[0] / t[1] hold the complement of the earliest block
// start / the earliest block past the wait, t[2] the latest block end (%globaltimer ns, all by atomicMax).
__device__ __forceinline__ unsigned long long trace_time() {
  unsigned long long t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}
__device__ __forceinline__ void trace_first(unsigned long long* t) {
  if (t && threadIdx.x == 0) atomicMax(t, ~trace_time());
}
__device__ __forceinline__ void trace_last(unsigned long long* t) {  // after the block's last work
  if (t) {
    __syncthreads();
    if (threadIdx.x == 0) atomicMax(t, trace_time());
  }
}
__device__ __forceinline__ void pdl_trigger() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// Calls f.template operator()<T>() for the runtime type t (device code). Unknown types do nothing.
#define MINNOW_TYPE_SWITCH(t, ...)                                   \
  switch (t) {                                                       \
    case T_F32: { constexpr int TT = T_F32; __VA_ARGS__; } break;    \
    case T_F16: { constexpr int TT = T_F16; __VA_ARGS__; } break;    \
    case T_BF16: { constexpr int TT = T_BF16; __VA_ARGS__; } break;  \
    case T_Q4_0: { constexpr int TT = T_Q4_0; __VA_ARGS__; } break;  \
    case T_Q4_1: { constexpr int TT = T_Q4_1; __VA_ARGS__; } break;  \
    case T_Q5_0: { constexpr int TT = T_Q5_0; __VA_ARGS__; } break;  \
    case T_Q5_1: { constexpr int TT = T_Q5_1; __VA_ARGS__; } break;  \
    case T_Q8_0: { constexpr int TT = T_Q8_0; __VA_ARGS__; } break;  \
    case T_Q2_K: { constexpr int TT = T_Q2_K; __VA_ARGS__; } break;  \
    case T_Q3_K: { constexpr int TT = T_Q3_K; __VA_ARGS__; } break;  \
    case T_Q4_K: { constexpr int TT = T_Q4_K; __VA_ARGS__; } break;  \
    case T_Q5_K: { constexpr int TT = T_Q5_K; __VA_ARGS__; } break;  \
    case T_Q6_K: { constexpr int TT = T_Q6_K; __VA_ARGS__; } break;  \
    default: break;                                                  \
  }

}  // namespace minnow::cuda
