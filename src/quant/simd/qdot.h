#pragma once
// Quantized weight x 8-bit activation kernels, one per (weight format, SIMD level).
//
// Canonical arithmetic (what makes every path and every batch size give the same bits): for a weight row
// and an activation row, each weight block b yields exact integers (sumi_b, and for formats with an
// offset sumx_b), combined in block order as
//   acc = fma(dw_b * dx_b, float(sumi_b), acc)              (Q8_0, Q4_0, Q5_0, Q6_K, Q3_K)
//   acc = fma(mw_b * dx_b, float(sumx_b), acc)              (second term: Q4_1, Q5_1 m; Q4_K, Q5_K, Q2_K -dmin)
// starting from acc = 0. The integers can be computed in any order (they are exact), so scalar, AVX2 and
// AVX-512 kernels, one token or many, all produce the same float.
#include <cstddef>
#include <cstdint>

#include "quant/ggml_type.h"
#include "quant/simd/act_quant.h"
#include "quant/simd/simd_level.h"

namespace minnow {

inline constexpr int64_t kQTileMaxTok = 256;  // the most tokens one kernel call handles

// y[t * ldy + r] = row r of W (r < n_rows, rows at W + r * row_stride) . activation row t0 + t
// (t < n_tok <= kQTileMaxTok).
using QTileFn = void (*)(const uint8_t* W, size_t row_stride, int64_t n_rows, const ActQ& act, int64_t t0,
                         int64_t n_tok, float* y, int64_t ldy);

// The kernel for a weight type at a level; nullptr when the type has no integer kernel (float types).
QTileFn qtile_kernel(GgmlType t, SimdLevel l);

// Per-level tables (each defined in its own file, compiled for its instruction set).
QTileFn qtile_scalar(GgmlType t);
QTileFn qtile_avx2(GgmlType t);
QTileFn qtile_avx512(GgmlType t);

}  // namespace minnow
