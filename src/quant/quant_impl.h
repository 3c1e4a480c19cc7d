#pragma once
// Per-format scalar kernels behind quant_ref.h's dispatchers. Each works on nb whole blocks.
// src / dst block pointers may be unaligned: blocks are copied in and out with memcpy.
#include <cmath>
#include <cstdint>
#include <cstring>

namespace minnow::qimpl {

// Block i of type B from a possibly unaligned byte stream.
template <class B>
B load(const uint8_t* src, int64_t i) {
  B b;
  std::memcpy(&b, src + i * static_cast<int64_t>(sizeof(B)), sizeof(B));
  return b;
}

// Block i of type B into a possibly unaligned byte stream.
template <class B>
void store(uint8_t* dst, int64_t i, const B& b) {
  std::memcpy(dst + i * static_cast<int64_t>(sizeof(B)), &b, sizeof(B));
}

inline int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

// The first element of largest magnitude, with its sign (0 when all are 0 or nan). x[n]
inline float signed_absmax(const float* x, int n) {
  float amax = 0, vmax = 0;
  for (int i = 0; i < n; ++i) {
    const float a = std::fabs(x[i]);
    if (a > amax) {
      amax = a;
      vmax = x[i];
    }
  }
  return vmax;
}

void dequant_q4_0(const uint8_t* src, float* y, int64_t nb);  // y[nb*32]
void dequant_q4_1(const uint8_t* src, float* y, int64_t nb);
void dequant_q5_0(const uint8_t* src, float* y, int64_t nb);
void dequant_q5_1(const uint8_t* src, float* y, int64_t nb);
void dequant_q8_0(const uint8_t* src, float* y, int64_t nb);
void dequant_q2_k(const uint8_t* src, float* y, int64_t nb);  // y[nb*256]
void dequant_q3_k(const uint8_t* src, float* y, int64_t nb);
void dequant_q4_k(const uint8_t* src, float* y, int64_t nb);
void dequant_q5_k(const uint8_t* src, float* y, int64_t nb);
void dequant_q6_k(const uint8_t* src, float* y, int64_t nb);

void quant_q4_0(const float* x, uint8_t* dst, int64_t nb);  // x[nb*32]
void quant_q4_1(const float* x, uint8_t* dst, int64_t nb);
void quant_q5_0(const float* x, uint8_t* dst, int64_t nb);
void quant_q5_1(const float* x, uint8_t* dst, int64_t nb);
void quant_q8_0(const float* x, uint8_t* dst, int64_t nb);
void quant_q2_k(const float* x, uint8_t* dst, int64_t nb);  // x[nb*256]
void quant_q3_k(const float* x, uint8_t* dst, int64_t nb);
void quant_q4_k(const float* x, uint8_t* dst, int64_t nb);
void quant_q5_k(const float* x, uint8_t* dst, int64_t nb);
void quant_q6_k(const float* x, uint8_t* dst, int64_t nb);

}  // namespace minnow::qimpl
