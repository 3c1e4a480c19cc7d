#pragma once
// Per-format scalar kernels behind quant_ref.h's dispatchers. Each works on nb whole blocks.
// src / dst block pointers may be unaligned: blocks are copied in and out with memcpy.
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
