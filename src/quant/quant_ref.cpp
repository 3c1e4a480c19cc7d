// Dispatch of the scalar reference formats: dequantize, quantize and dot product by type.
#include "quant/quant_ref.h"

#include <cstring>
#include <string>
#include <vector>

#include "common/error.h"
#include "quant/quant_impl.h"

namespace minnow {

namespace {

using DequantFn = void (*)(const uint8_t*, float*, int64_t);
using QuantFn = void (*)(const float*, uint8_t*, int64_t);

struct Kernels {
  DequantFn dequant;
  QuantFn quant;
};

// Block formats only (F32 / F16 / BF16 are handled inline).
Kernels block_kernels(GgmlType t) {
  using namespace qimpl;
  switch (t) {
    case GgmlType::Q4_0: return {dequant_q4_0, quant_q4_0};
    case GgmlType::Q4_1: return {dequant_q4_1, quant_q4_1};
    case GgmlType::Q5_0: return {dequant_q5_0, quant_q5_0};
    case GgmlType::Q5_1: return {dequant_q5_1, quant_q5_1};
    case GgmlType::Q8_0: return {dequant_q8_0, quant_q8_0};
    case GgmlType::Q2_K: return {dequant_q2_k, quant_q2_k};
    case GgmlType::Q3_K: return {dequant_q3_k, quant_q3_k};
    case GgmlType::Q4_K: return {dequant_q4_k, quant_q4_k};
    case GgmlType::Q5_K: return {dequant_q5_k, quant_q5_k};
    case GgmlType::Q6_K: return {dequant_q6_k, quant_q6_k};
    default: break;
  }
  auto tr = type_traits(static_cast<uint32_t>(t));
  throw Error(std::string("tensor type ") + (tr ? tr.value().name : std::to_string(static_cast<uint32_t>(t))) +
              " is not supported");
}

// Validates n against the block size and returns the number of blocks.
int64_t block_count(GgmlType t, int64_t n) {
  auto tr = type_traits(static_cast<uint32_t>(t));
  if (!tr || !tr->supported) {
    throw Error(std::string("tensor type ") + (tr ? tr->name : std::to_string(static_cast<uint32_t>(t))) +
                " is not supported");
  }
  if (n < 0 || n % tr->block_size != 0) {
    throw Error("row of " + std::to_string(n) + " elements is not a multiple of " + tr->name + "'s block size " +
                std::to_string(tr->block_size));
  }
  return n / tr->block_size;
}

}  // namespace

void dequantize_row_ref(GgmlType t, const void* src, float* dst, int64_t n) {
  const int64_t nb = block_count(t, n);
  const auto* p = static_cast<const uint8_t*>(src);
  switch (t) {
    case GgmlType::F32:
      for (int64_t i = 0; i < n; ++i) std::memcpy(dst + i, p + 4 * i, 4);
      return;
    case GgmlType::F16:
    case GgmlType::BF16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, p + 2 * i, 2);
        dst[i] = t == GgmlType::F16 ? fp16_to_fp32(h) : bf16_to_fp32(h);
      }
      return;
    default:
      block_kernels(t).dequant(p, dst, nb);
  }
}

void quantize_row_ref(GgmlType t, const float* src, void* dst, int64_t n) {
  const int64_t nb = block_count(t, n);
  auto* p = static_cast<uint8_t*>(dst);
  switch (t) {
    case GgmlType::F32:
      for (int64_t i = 0; i < n; ++i) std::memcpy(p + 4 * i, src + i, 4);
      return;
    case GgmlType::F16:
    case GgmlType::BF16:
      for (int64_t i = 0; i < n; ++i) {
        const uint16_t h = t == GgmlType::F16 ? fp32_to_fp16(src[i]) : fp32_to_bf16(src[i]);
        std::memcpy(p + 2 * i, &h, 2);
      }
      return;
    default:
      block_kernels(t).quant(src, p, nb);
  }
}

double dot_row_ref(GgmlType t, const void* w, const float* x, int64_t n) {
  const int64_t nb = block_count(t, n);
  const int64_t bs = nb > 0 ? n / nb : 1;
  const size_t bytes = traits(t).type_size;
  const auto* p = static_cast<const uint8_t*>(w);
  float buf[256];  // one block, any supported type
  double acc = 0;
  if (bs == 1) {
    // Scalar element types: decode in chunks of 256.
    for (int64_t i = 0; i < n; i += 256) {
      const int64_t m = n - i < 256 ? n - i : 256;
      dequantize_row_ref(t, p + static_cast<size_t>(i) * bytes, buf, m);
      for (int64_t j = 0; j < m; ++j) acc += static_cast<double>(buf[j]) * static_cast<double>(x[i + j]);
    }
    return acc;
  }
  const DequantFn dq = block_kernels(t).dequant;
  for (int64_t b = 0; b < nb; ++b) {
    dq(p + static_cast<size_t>(b) * bytes, buf, 1);
    const float* xb = x + b * bs;
    for (int64_t j = 0; j < bs; ++j) acc += static_cast<double>(buf[j]) * static_cast<double>(xb[j]);
  }
  return acc;
}

}  // namespace minnow
