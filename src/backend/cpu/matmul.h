#pragma once
// The CPU's quantized matrix product: y[b][o] = sum_i W[o][i] * x[b][i].
// W is n_out rows of n_in elements in `type` (row stride row_bytes(type, n_in)), as stored in GGUF
// (ne[0] = n_in, ne[1] = n_out). x is [n_batch][n_in] f32, y is [n_batch][n_out] f32.
// Batch invariance: row b of y depends only on W and row b of x, bit for bit, whatever n_batch is.
#include <cstdint>

#include "quant/ggml_type.h"
#include "quant/simd/simd_level.h"

namespace minnow {

class ThreadPool;

void matmul(GgmlType type, const void* W, int64_t n_in, int64_t n_out, const float* x, float* y,
            int64_t n_batch, ThreadPool& pool);

// The same at an explicit SIMD level (tests run every supported level; matmul() uses simd_level()).
void matmul_level(SimdLevel level, GgmlType type, const void* W, int64_t n_in, int64_t n_out, const float* x,
                  float* y, int64_t n_batch, ThreadPool& pool);

// Plain scalar reference (dequantize + double accumulation), for tests.
void matmul_ref(GgmlType type, const void* W, int64_t n_in, int64_t n_out, const float* x, float* y,
                int64_t n_batch);

}  // namespace minnow
