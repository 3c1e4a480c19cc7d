#pragma once
// Plain scalar reference implementations of every supported block format. These are the ground truth that
// every fast path (SIMD, CUDA) is tested against. n is a number of elements, a multiple of the block size.
#include <cstdint>

#include "quant/ggml_type.h"

namespace minnow {

float fp16_to_fp32(uint16_t h);
uint16_t fp32_to_fp16(float f);  // round to nearest even
float bf16_to_fp32(uint16_t h);
uint16_t fp32_to_bf16(float f);  // round to nearest even

// dst[n] <- decode(src)
void dequantize_row_ref(GgmlType t, const void* src, float* dst, int64_t n);
// dst <- encode(src[n]); the same rounding rules as ggml's reference quantizers.
void quantize_row_ref(GgmlType t, const float* src, void* dst, int64_t n);
// sum_i decode(w)[i] * x[i], accumulated in double.
double dot_row_ref(GgmlType t, const void* w, const float* x, int64_t n);

}  // namespace minnow
