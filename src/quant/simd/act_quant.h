#pragma once
// Activations quantized to 8 bits once per matrix product, for the integer dot products of the quantized
// kernels (as llama.cpp's Q8_0 / Q8_K). Blocks of 32 (legacy weight formats) or 256 (K-quants).
// Per block: d = max|x| / 127, q = round-to-nearest-even(x * (127 / max|x|)), so |x - d*q| <= d/2.
#include <cstddef>
#include <cstdint>

#include "quant/ggml_type.h"

namespace minnow {

enum class ActKind {
  None,   // float weights: activations stay f32
  Q8_32,  // blocks of 32 with the sum of each block's quants
  Q8_256  // blocks of 256 with the sums of each 16-element group
};

ActKind act_kind(GgmlType weight_type);
int64_t act_block(ActKind k);  // 32 or 256

// A view of n_tok quantized activation rows of n_in elements (nb = n_in / block blocks each).
struct ActQ {
  int64_t n_in = 0, n_tok = 0, nb = 0;
  const int8_t* qs = nullptr;       // [n_tok][n_in]
  const float* d = nullptr;         // [nb][n_tok] block scales
  const int32_t* sum = nullptr;     // [nb][n_tok] sum of a block's quants (Q8_32)
  const int16_t* bsum16 = nullptr;  // [n_tok][nb][16] sums of each 16 quants (Q8_256)
  const int16_t* bsum32 = nullptr;  // [n_tok][nb][8] sums of each 32 quants (Q8_256)
};

// Bytes of the buffer that holds n_tok rows (64-byte aligned sections inside).
size_t act_buffer_bytes(ActKind k, int64_t n_in, int64_t n_tok);
// The view of `buf` (64-byte aligned, act_buffer_bytes long) for n_tok rows of n_in.
ActQ act_view(ActKind k, void* buf, int64_t n_in, int64_t n_tok);
// Quantizes rows [t0, t1) of x[n_tok][n_in] into buf (the layout of act_view). Rows can be done in parallel.
void act_quantize(ActKind k, const float* x, void* buf, int64_t n_in, int64_t n_tok, int64_t t0, int64_t t1);
// r = x - (what buf holds for x), rows [t0, t1): the rounding error of act_quantize, which a second 8-bit
// pass can carry (two passes: |error| <= max|x| / 64516 per block instead of max|x| / 254).
void act_residual(ActKind k, const float* x, const void* buf, float* r, int64_t n_in, int64_t n_tok, int64_t t0,
                  int64_t t1);

// Activation precision of the quantized matrix products: 8 (one 8-bit pass, as llama.cpp; the default) or
// 16 (a second 8-bit pass over the rounding error; twice the integer work). MINNOW_ACT_BITS=8|16.
int act_bits();
int parse_act_bits(const char* s);  // throws Error unless "8" or "16"

}  // namespace minnow
