#pragma once
// Whole-tensor conversions between formats, parallel over rows. A tensor is nrows rows of ne0 elements
// (ne0 a multiple of both types' block sizes; checked, Error otherwise).
#include <cstdint>
#include <vector>

#include "quant/ggml_type.h"

namespace minnow {

class ThreadPool;

// src: nrows x ne0 floats -> bytes of dst_type (row_bytes(dst_type, ne0) * nrows).
std::vector<uint8_t> quantize_tensor(const float* src, GgmlType dst_type, int64_t ne0, int64_t nrows,
                                     ThreadPool& pool);

// Any supported type -> any supported type (dequantize, then quantize, row by row).
std::vector<uint8_t> convert_tensor(GgmlType src_type, const void* src, GgmlType dst_type, int64_t ne0,
                                    int64_t nrows, ThreadPool& pool);

// Any supported type -> f32 (nrows x ne0 floats).
std::vector<float> dequantize_tensor(GgmlType src_type, const void* src, int64_t ne0, int64_t nrows,
                                     ThreadPool& pool);

}  // namespace minnow
