// Round-to-nearest encoders of the 32-element formats, following ggml's reference quantizers:
// symmetric formats take the scale from the element of largest magnitude (keeping its sign), offset
// formats from the block's min and max.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "quant/blocks.h"
#include "quant/quant_impl.h"
#include "quant/quant_ref.h"

namespace minnow::qimpl {

namespace {
// Truncation toward zero (as a C cast) into [0, hi]; nan gives 0. Inputs here are >= 0 up to rounding.
int trunc_to(float v, int hi) {
  if (!(v > 0.0f)) return 0;
  if (v >= static_cast<float>(hi)) return hi;
  return static_cast<int>(v);
}
void set_qh(uint8_t qh[4], uint32_t bits) {
  for (int k = 0; k < 4; ++k) qh[k] = static_cast<uint8_t>(bits >> (8 * k));
}
}  // namespace

void quant_q4_0(const float* x, uint8_t* dst, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    const float d = signed_absmax(x, kQK) / -8.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    BlockQ4_0 b{};
    b.d = fp32_to_fp16(d);
    for (int j = 0; j < kQK / 2; ++j) {
      const int q0 = trunc_to(x[j] * id + 8.5f, 15);
      const int q1 = trunc_to(x[j + kQK / 2] * id + 8.5f, 15);
      b.qs[j] = static_cast<uint8_t>(q0 | (q1 << 4));
    }
    store(dst, i, b);
  }
}

void quant_q4_1(const float* x, uint8_t* dst, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    const float lo = *std::min_element(x, x + kQK), hi = *std::max_element(x, x + kQK);
    const float d = (hi - lo) / 15.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    BlockQ4_1 b{};
    b.d = fp32_to_fp16(d);
    b.m = fp32_to_fp16(lo);
    for (int j = 0; j < kQK / 2; ++j) {
      const int q0 = trunc_to((x[j] - lo) * id + 0.5f, 15);
      const int q1 = trunc_to((x[j + kQK / 2] - lo) * id + 0.5f, 15);
      b.qs[j] = static_cast<uint8_t>(q0 | (q1 << 4));
    }
    store(dst, i, b);
  }
}

void quant_q5_0(const float* x, uint8_t* dst, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    const float d = signed_absmax(x, kQK) / -16.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    BlockQ5_0 b{};
    b.d = fp32_to_fp16(d);
    uint32_t qh = 0;
    for (int j = 0; j < kQK / 2; ++j) {
      const int q0 = trunc_to(x[j] * id + 16.5f, 31);
      const int q1 = trunc_to(x[j + kQK / 2] * id + 16.5f, 31);
      b.qs[j] = static_cast<uint8_t>((q0 & 0xF) | ((q1 & 0xF) << 4));
      qh |= static_cast<uint32_t>((q0 >> 4) & 1) << j;
      qh |= static_cast<uint32_t>((q1 >> 4) & 1) << (j + 16);
    }
    set_qh(b.qh, qh);
    store(dst, i, b);
  }
}

void quant_q5_1(const float* x, uint8_t* dst, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    const float lo = *std::min_element(x, x + kQK), hi = *std::max_element(x, x + kQK);
    const float d = (hi - lo) / 31.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    BlockQ5_1 b{};
    b.d = fp32_to_fp16(d);
    b.m = fp32_to_fp16(lo);
    uint32_t qh = 0;
    for (int j = 0; j < kQK / 2; ++j) {
      const int q0 = trunc_to((x[j] - lo) * id + 0.5f, 31);
      const int q1 = trunc_to((x[j + kQK / 2] - lo) * id + 0.5f, 31);
      b.qs[j] = static_cast<uint8_t>((q0 & 0xF) | ((q1 & 0xF) << 4));
      qh |= static_cast<uint32_t>((q0 >> 4) & 1) << j;
      qh |= static_cast<uint32_t>((q1 >> 4) & 1) << (j + 16);
    }
    set_qh(b.qh, qh);
    store(dst, i, b);
  }
}

void quant_q8_0(const float* x, uint8_t* dst, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    float amax = 0;
    for (int j = 0; j < kQK; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    BlockQ8_0 b{};
    b.d = fp32_to_fp16(d);
    for (int j = 0; j < kQK; ++j) {
      const float r = std::round(x[j] * id);
      b.qs[j] = static_cast<int8_t>(r >= 127.0f ? 127 : r <= -127.0f ? -127 : (r == r ? static_cast<int>(r) : 0));
    }
    store(dst, i, b);
  }
}

}  // namespace minnow::qimpl
